"""Training script that runs for a long time (MaxRuntime and StopTrainingJob tests); it saves a
checkpoint of its model first, which the local cloud uploads when the job is stopped."""

import os
import time
from pathlib import Path

(Path(os.environ["SM_MODEL_DIR"]) / "checkpoint.json").write_text("{}")
print("training started", flush=True)
time.sleep(60)
