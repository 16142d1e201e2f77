"""Test training script (SageMaker script mode): writes a tiny model where the contract says."""

import json
import os
from pathlib import Path

model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
model_dir.mkdir(parents=True, exist_ok=True)
(model_dir / "model.json").write_text(json.dumps({"weights": [0.5, 0.25]}))
print("train_loss=0.125")
