"""Monitoring on the local cloud, end to end, with the real handlers, state machines, monitor job
and alarms: a champion trained on a simulated cohort serves traffic like its training data (no
drift), then a drift scenario's traffic (drift detected, the drift alarm fires, one retraining run
starts with the evidence, a burst of alarms starts nothing more), then late diagnoses that
contradict its predictions (a quality drop).

One local cloud for the module; the tests build on the account the earlier ones leave.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from localcloud import cloudwatch, events
from localcloud.cloud import LocalCloud
from tests.integration.api_events import load_event
from tests.integration.lifecycle import (
    LIFECYCLE_PARAMETERS,
    announce,
    api_event,
    call,
    deployable_cloud,
    executions,
    publish_dataset,
    version_id,
    wait_execution,
    wait_for,
)
from tests.unit.ml.drift_cohorts import curated_table, patients

pytestmark = pytest.mark.integration
TRAINING, DEPLOYMENT, MONITORING = "TrainingStateMachineArn", "DeploymentStateMachineArn", "MonitoringStateMachineArn"
PARAMETERS = {
    **LIFECYCLE_PARAMETERS,
    "MonitoringPeriodSeconds": "60",  # the window: the minute before a run
    "DriftAlarmPeriods": "1",
    "DriftMinSamples": "100",
    "QualityMinLabels": "40",
}
SEED, TRAFFIC_SEED = 3, 9


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with deployable_cloud(PARAMETERS) as local_cloud:
        yield local_cloud


@pytest.fixture(scope="module")
def champion(cloud: LocalCloud) -> dict[str, Any]:
    """A model of 1,200 simulated patients, approved and serving."""
    detail = publish_dataset(cloud, version_id(1), curated_table(patients("baseline", 1200, SEED), devices=False))
    announce(detail)
    wait_for(lambda: versions(cloud).get(1), 300, "model version 1")
    body = {"decision": "approve", "rationale": "Reviewed for the monitoring tests."}
    assert call(cloud, "ModelsApiFunction", api_event("POST", "/models/1/approval", body))[0] == 200
    deployment = wait_execution(
        cloud, DEPLOYMENT, wait_for(lambda: executions(cloud, DEPLOYMENT), 60, "a deployment")[0]["name"]
    )
    assert deployment["status"] == "SUCCEEDED"
    return versions(cloud)[1]


def versions(cloud: LocalCloud) -> dict[int, dict[str, Any]]:
    code, body = call(cloud, "ModelsApiFunction", api_event("GET", "/models"))
    assert code == 200
    return {m["package_version"]: m for m in body}


def serve(cloud: LocalCloud, scenario: str, count: int, start: int) -> list[dict[str, Any]]:
    """POST /predict of `count` simulated patients (batches of 100); the predictions served."""
    records = [p.record for p in patients(scenario, count, TRAFFIC_SEED, start)]
    served = []
    for first in range(0, count, 100):
        event = copy.deepcopy(load_event("predict_api/post_predict.json"))
        event["requestContext"]["requestId"] = str(uuid.uuid4())
        event["body"] = json.dumps({"records": records[first : first + 100], "top_k": 3, "explain": False})
        response = cloud.invoke("PredictApiFunction", event)
        assert response["statusCode"] == 200, response["body"][:300]
        served += [
            {**p, "truth": r["diagnosis"]["code"], "source": r["source"]}
            for p, r in zip(json.loads(response["body"])["predictions"], records[first : first + 100], strict=True)
        ]
    return served


def monitor(cloud: LocalCloud) -> dict[str, Any]:
    """One monitoring run, as the schedule starts it; the summary it leaves (monitoring/latest.json)."""
    arn = boto3.client("stepfunctions").start_execution(stateMachineArn=cloud.outputs[MONITORING])["executionArn"]
    run = wait_execution(cloud, MONITORING, arn.rsplit(":", 1)[1], timeout=300)
    assert run["status"] == "SUCCEEDED", run
    return json.loads(run["output"])


def report(summary: dict[str, Any]) -> Any:
    """The run's monitoring.json (for a failure's message)."""
    bucket, key = summary["report_uri"].removeprefix("s3://").split("/", 1)
    key = key.removesuffix("monitoring.md") + "monitoring.json"
    document = json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    drift = {k: v for k, v in document["drift"].items() if k not in {"features", "presentation"}}
    drifted = [f for f in document["drift"]["features"] if f["drifted"]]
    return json.dumps(
        {k: document.get(k) for k in ("window", "counts")} | {"drift": drift, "drifted": drifted}, indent=1
    )


def alarm_state(cloud: LocalCloud, logical_id: str) -> str:
    """The template's alarm after an evaluation (and the deliveries of its state change)."""
    cloudwatch.evaluate_alarms()
    events.flush()
    alarm = boto3.client("cloudwatch").describe_alarms(AlarmNames=[cloud.physical_id(logical_id)])["MetricAlarms"][0]
    return str(alarm["StateValue"])


def retraining_runs(cloud: LocalCloud) -> list[str]:
    return [e["name"] for e in executions(cloud, TRAINING) if e["name"].startswith("retrain-")]


def test_served_predictions_are_captured_with_what_the_model_read(cloud: LocalCloud, champion: dict[str, Any]) -> None:
    served = serve(cloud, "baseline", 200, start=0)
    lines = cloud.ndjson_lines(cloud.outputs["MonitoringBucketName"], "predictions/")
    assert sorted(line["prediction_id"] for line in lines) == sorted(p["prediction_id"] for p in served)
    keys = boto3.client("s3").list_objects_v2(Bucket=cloud.outputs["MonitoringBucketName"], Prefix="predictions/")
    assert all("/hour=" in o["Key"] for o in keys["Contents"])  # partitioned by hour
    assert {line["model_version"] for line in lines} == {champion["model_version"]}
    inputs = lines[0]["inputs"]
    assert set(inputs) == {"record_id", "sex", "age_years", "phenotypes", "history", "labs", "vitals"}
    assert "patient_id" not in json.dumps(lines)


def test_traffic_like_the_training_data_raises_no_drift(cloud: LocalCloud, champion: dict[str, Any]) -> None:
    summary = monitor(cloud)
    assert summary["drift_status"] == "ok" and summary["drift_samples"] >= 100, report(summary)
    assert summary["drifted_features"] == [] and summary["features_tested"] > 10
    assert alarm_state(cloud, "DriftAlarm") != "ALARM" and retraining_runs(cloud) == []


def test_drift_is_detected_alarmed_and_retrains_once_with_its_evidence(
    cloud: LocalCloud, champion: dict[str, Any]
) -> None:
    serve(cloud, "new-site", 400, start=1000)  # older, more female patients at a new site
    summary = monitor(cloud)
    assert summary["drift_status"] == "drift", summary
    assert "age_years" in [f["name"] for f in summary["drifted_features"]]

    assert wait_for(lambda: alarm_state(cloud, "DriftAlarm") == "ALARM", 30, "the drift alarm")
    (run,) = wait_for(lambda: retraining_runs(cloud), 60, "a retraining run")
    drift_alarm = cloud.physical_id("DriftAlarm")
    assert run.startswith(f"retrain-{drift_alarm}-")

    # A burst of ten alarm episodes while it trains starts nothing more; each one is recorded.
    client = boto3.client("cloudwatch")
    for _ in range(10):
        client.set_alarm_state(AlarmName=drift_alarm, StateValue="OK", StateReason="test: recovered")
        client.set_alarm_state(AlarmName=drift_alarm, StateValue="ALARM", StateReason="test: drift again")
    events.flush()
    assert retraining_runs(cloud) == [run]
    code, triggers = call(cloud, "ModelsApiFunction", api_event("GET", "/trainings/triggers"))
    alarms = [t for t in triggers if t["reason"] == "retraining-trigger"]
    assert code == 200 and len(alarms) == 11, [(t["outcome"], t["detail"]) for t in alarms]
    assert sum(t["outcome"] == "started" for t in alarms) == 1
    assert {t["suppressed_because"] for t in alarms if t["outcome"] == "suppressed"} == {"training-running"}

    # The version it makes carries the alarm and the monitor's evidence.
    version = wait_for(lambda: versions(cloud).get(2), 300, "model version 2")
    bucket, key = version["evidence_uri"].removeprefix("s3://").split("/", 1)
    evidence = json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    request = evidence["request"]
    assert (request["reason"], request["requested_by"]) == ("retraining-trigger", f"alarm:{drift_alarm}")
    assert request["evidence"]["monitoring"]["drift_status"] == "drift"
    assert request["evidence"]["alarm"]["state"] == "ALARM"


def test_late_diagnoses_that_contradict_the_predictions_are_a_quality_drop(
    cloud: LocalCloud, champion: dict[str, Any]
) -> None:
    served = serve(cloud, "baseline", 100, start=3000)
    wrong = [
        {
            "prediction_id": p["prediction_id"],
            "source": p["source"],
            "diagnosis": {
                "code": "ORPHA:558" if p["diagnoses"][0]["code"] != "ORPHA:558" else "ICD10:J45",
                "status": "confirmed",
            },
            "confirmed_at": "2026-11-27",
        }
        for p in served
    ]
    event = copy.deepcopy(load_event("predict_api/post_diagnoses.json"))
    event["body"] = json.dumps({"diagnoses": wrong})
    assert cloud.invoke("PredictApiFunction", event)["statusCode"] == 202

    summary = monitor(cloud)

    assert summary["quality_status"] == "drop" and summary["labelled"] >= 100, summary
    assert summary["quality"]["macro_f1"] < summary["reference_quality"]["macro_f1"]
    assert wait_for(lambda: alarm_state(cloud, "QualityDropAlarm") == "ALARM", 30, "the quality alarm")
    # The drift's run waits for its reviewer, which does not hold the training slot: a run starts.
    code, triggers = call(cloud, "ModelsApiFunction", api_event("GET", "/trainings/triggers"))
    quality = [t for t in triggers if t["requested_by"] == f"alarm:{cloud.physical_id('QualityDropAlarm')}"]
    assert code == 200 and [t["outcome"] for t in quality] == ["started"], quality
    assert len(retraining_runs(cloud)) == 2
