"""Training script (SageMaker script mode) that checks the container contract it runs under.

Every expectation is an assert: a broken contract fails the job, and the test shows FailureReason.
The model is a threshold on `age` between the two labels' means; the inference code travels in the
model's code/ folder, as the SageMaker SDK repacks it.
"""

import argparse
import csv
import json
import os
import shutil
import sys
from pathlib import Path

from model_lib import fit  # a sibling module: the source directory is the working directory

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--learning-rate", type=float, required=True)
parser.add_argument("--label", required=True)
args = parser.parse_args()
assert (args.epochs, args.learning_rate, args.label) == (3, 0.5, "diagnosis"), sys.argv

env = os.environ
assert json.loads(env["SM_CHANNELS"]) == ["train", "validation"]
train_dir = Path(env["SM_CHANNEL_TRAIN"])
assert sorted(p.relative_to(train_dir).as_posix() for p in train_dir.rglob("*.csv")) == [
    "part-2/records.csv",
    "records.csv",
]
assert (Path(env["SM_CHANNEL_VALIDATION"]) / "records.csv").is_file()
assert json.loads(env["SM_HPS"]) == {"epochs": 3, "learning-rate": 0.5, "label": "diagnosis"}
assert (env["SM_HP_EPOCHS"], env["SM_HP_LEARNING-RATE"], env["SM_HP_LABEL"]) == ("3", "0.5", "diagnosis")
assert json.loads(env["SM_USER_ARGS"]) == ["--epochs", "3", "--label", "diagnosis", "--learning-rate", "0.5"]
config = Path(env["SM_INPUT_CONFIG_DIR"])
hyperparameters = json.loads((config / "hyperparameters.json").read_text())
assert hyperparameters["epochs"] == "3" and hyperparameters["sagemaker_program"] == '"train.py"', hyperparameters
assert set(json.loads((config / "inputdataconfig.json").read_text())) == {"train", "validation"}
assert json.loads((config / "resourceconfig.json").read_text())["current_host"] == "algo-1"
assert (env["SM_CURRENT_HOST"], json.loads(env["SM_HOSTS"])) == ("algo-1", ["algo-1"])
assert int(env["SM_NUM_CPUS"]) >= 1 and env["SM_NUM_GPUS"] == "0"
assert env["SM_USER_ENTRY_POINT"] == "train.py" and env["SM_MODULE_DIR"].startswith("s3://")
assert env["SM_INPUT_DIR"] == str(config.parent) and env["SM_OUTPUT_DIR"].endswith("/opt/ml/output")
training_env = json.loads(env["SM_TRAINING_ENV"])
assert training_env["job_name"] == env["TRAINING_JOB_NAME"] and training_env["hyperparameters"]["epochs"] == 3
assert env["DXOPS_STAGE"] == "test"  # the job's Environment
assert Path.cwd().name == "code"

rows = [row for path in sorted(train_dir.rglob("*.csv")) for row in csv.DictReader(path.open())]
threshold = fit(rows, args.label)
for epoch in range(1, args.epochs + 1):
    print(f"epoch={epoch} train:loss={1 / (epoch + 1):.4f}")
validation = list(csv.DictReader((Path(env["SM_CHANNEL_VALIDATION"]) / "records.csv").open()))
correct = sum((float(r["age"]) >= threshold) == (r[args.label] == "rare") for r in validation)
print(f"validation:accuracy={correct / len(validation):.4f}")

model_dir = Path(env["SM_MODEL_DIR"])
(model_dir / "model.json").write_text(json.dumps({"threshold": threshold, "version": "trained"}))
(model_dir / "code").mkdir()
shutil.copy(Path(__file__).with_name("inference.py"), model_dir / "code" / "inference.py")
(Path(env["SM_OUTPUT_DATA_DIR"]) / "evaluation.json").write_text(json.dumps({"accuracy": correct / len(validation)}))
