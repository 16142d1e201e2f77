"""Executions still running when a local cloud stops are stopped with it, not carried into the next."""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
from moto.stepfunctions.parser.utils import TMP_THREADS

from localcloud.cloud import LocalCloud

PATHS_TEMPLATE = Path(__file__).resolve().parents[1] / "paths" / "template.yaml"
WAITING = {
    "StartAt": "Wait",
    "States": {"Wait": {"Type": "Wait", "Seconds": 30, "Next": "Done"}, "Done": {"Type": "Succeed"}},
}


def test_running_executions_stop_with_the_local_cloud() -> None:
    before = {t for t in TMP_THREADS if t.is_alive()}
    began = time.monotonic()
    with LocalCloud.start(template_path=PATHS_TEMPLATE) as cloud:
        sfn = boto3.client("stepfunctions")
        role = f"arn:aws:iam::123456789012:role/{cloud.physical_id('RecorderRole')}"
        machine = sfn.create_state_machine(name="waits", definition=json.dumps(WAITING), roleArn=role)
        execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="left-running")
        assert sfn.describe_execution(executionArn=execution["executionArn"])["status"] == "RUNNING"
    still_running = [t for t in TMP_THREADS if t.is_alive() and t not in before]
    assert still_running == []
    assert time.monotonic() - began < 25  # stopped, not waited out
