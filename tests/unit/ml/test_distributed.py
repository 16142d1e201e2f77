"""Multi-instance training: two workers on this machine under the SageMaker contract (SM_HOSTS,
SM_CURRENT_HOST), each with its shard, joined by XGBoost's tracker: one model, trained on both."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from ml.model import DiagnosisModel
from ml.table import conform
from ml.validation import hashed_split
from tests.unit.ml.tables import clinical_table, write_table

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_two_hosts_train_one_model_on_their_shards(tmp_path: Path) -> None:
    table = clinical_table(360, seed=9, records_per_patient=1)
    shards = [table.iloc[0::2], table.iloc[1::2]]  # as ShardedByS3Key splits the files
    hosts = ["algo-1", "algo-2"]
    port = free_port()
    workers = []
    for rank, host in enumerate(hosts):
        channel = tmp_path / host / "train"
        write_table(channel / f"part-{rank}.parquet", shards[rank])
        env = {
            **os.environ,
            "SM_HOSTS": json.dumps(hosts),
            "SM_CURRENT_HOST": host,
            "SM_MODEL_DIR": str(tmp_path / host / "model"),
            "SM_CHANNEL_TRAIN": str(channel),
            "SM_OUTPUT_DIR": str(tmp_path / host / "output"),
            "SM_HPS": json.dumps({"candidates": "xgboost+class_weights", "xgb_rounds": "8", "threads": "1"}),
            "DXOPS_TRACKER_HOST": "127.0.0.1",
            "DXOPS_TRACKER_PORT": str(port),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "shared"), str(ROOT)]),
        }
        command = [sys.executable, "-m", "ml.train"]
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
    digests = [re.findall(r"booster sha256 ([0-9a-f]{64})", stderr) for _stdout, stderr in outputs]
    assert len(digests[0]) == 1 and digests[0] == digests[1]  # the same booster on both hosts
    assert (tmp_path / "algo-1" / "model" / "model.json").exists()
    assert not (tmp_path / "algo-2" / "model").exists()  # only the leader writes the model
    model = DiagnosisModel.load(tmp_path / "algo-1" / "model")
    train_rows = sum(len(hashed_split(s["patient_id"].to_numpy(dtype=str), 0.2, 0)[0]) for s in shards)
    assert model.manifest["hosts"] == 2 and model.manifest["rows"]["train"] == train_rows
    assert sum(model.counts.values()) == train_rows  # class counts of both shards
    assert set(model.classes) == set(table["label"])  # classes seen on either shard
    proba = model.supervised.predict_proba(conform(table.head(5), model.roles))
    assert proba.shape == (5, len(model.classes)) and np.allclose(proba.sum(axis=1), 1)


def test_the_hashed_split_agrees_across_shards() -> None:
    patients = np.array([f"p{i}" for i in range(2000)])
    train, test = hashed_split(patients, 0.2, seed=0)
    assert len(train) + len(test) == len(patients) and abs(len(test) / len(patients) - 0.2) < 0.03
    # A patient's side does not depend on which rows share the shard with it.
    _train_half, test_half = hashed_split(patients[::2], 0.2, seed=0)
    assert set(patients[::2][test_half]) == set(patients[test]) & set(patients[::2])
