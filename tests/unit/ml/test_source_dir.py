"""The SageMaker source dir is self-contained: its entry points train, serve and compare from the
extracted archive alone, as the training container, the endpoint and the processing job run them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from ml.build_source_dir import COMPARE_ENTRY, INFERENCE_ENTRY, MONITOR_ENTRY, TRAIN_ENTRY, build_source_dir
from tests.unit.ml.tables import clinical_table, write_table

SERVE = """
import json, sys
import ml, dxops_inference as entry
assert ml.__file__.startswith(sys.argv[2]), ml.__file__  # the archive's code, not the repository's
model = entry.model_fn(sys.argv[1])
body = entry.input_fn(json.dumps({"phenotypes": [{"hpo_id": "HP:0000822"}]}), "application/json")
print(entry.output_fn(entry.predict_fn(body, model), "application/json")[0])
"""


def test_the_source_dir_trains_serves_and_compares_on_its_own(tmp_path: Path) -> None:
    archive = build_source_dir(tmp_path / "sourcedir.tar.gz")
    assert archive.read_bytes() == build_source_dir(tmp_path / "again.tar.gz").read_bytes()  # reproducible
    code = tmp_path / "code"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        tar.extractall(code, filter="data")
    expected = {"requirements.txt", TRAIN_ENTRY, INFERENCE_ENTRY, COMPARE_ENTRY, MONITOR_ENTRY, "ml/monitor.py"}
    assert expected | {"dxops/vocab/units.py"} <= set(names)
    assert not any(name.endswith(("report.py", "evaluate.py")) for name in names)  # tooling stays out
    channel = tmp_path / "input" / "data" / "train"
    write_table(channel / "table.csv", clinical_table(160, seed=8))
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(
        SM_MODEL_DIR=str(tmp_path / "model"),
        SM_CHANNEL_TRAIN=str(channel),
        SM_OUTPUT_DIR=str(tmp_path / "output"),
        SM_HPS=json.dumps({"candidates": "logreg+class_weights", "threads": "1"}),
    )
    train = subprocess.run(
        [sys.executable, TRAIN_ENTRY], cwd=code, env=env, check=False, capture_output=True, text=True, timeout=300
    )
    assert train.returncode == 0, train.stderr
    serve = subprocess.run(
        [sys.executable, "-c", SERVE, str(tmp_path / "model"), str(code)],
        cwd=code,
        env={**env, "PYTHONPATH": str(code)},
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert serve.returncode == 0, serve.stderr
    answer = json.loads(serve.stdout)
    assert answer["predictions"][0]["diagnoses"] and answer["model_version"]
    # The promotion gate's processing job on the same model and table (a first model: no champion).
    processing = tmp_path / "opt" / "ml" / "processing"
    shutil.copytree(tmp_path / "model", processing / "input" / "candidate")
    shutil.copytree(channel, processing / "input" / "data")
    compare = subprocess.run(
        [sys.executable, COMPARE_ENTRY, "--bootstrap", "20"],
        cwd=code,
        env={**env, "DXOPS_PROCESSING_ROOT": str(processing)},
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert compare.returncode == 0, compare.stderr
    document = json.loads((processing / "output" / "comparison.json").read_text())
    assert document["verdict"] == "pass" and document["champion"] is None
