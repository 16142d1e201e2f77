"""Training script that fails as the contract says: the reason in /opt/ml/output/failure, exit 1."""

import os
import sys
from pathlib import Path

(Path(os.environ["SM_OUTPUT_DIR"]) / "failure").write_text("DataError: the train channel has no label column")
print("reading the train channel", flush=True)
sys.exit(1)
