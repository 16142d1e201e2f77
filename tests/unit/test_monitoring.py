"""The monitor's runs (dxops.domain.monitoring): the window, the champion and the processing job's
inputs (manifests of the captured traffic), and the summary of its results."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dxops.domain.monitoring import MonitoringResultMissing, prepare_monitoring_run, summarise_monitoring_run
from dxops.schemas.monitoring import MonitoringPlan, MonitoringRunRequest
from dxops.settings import MonitoringSettings
from tests.fakes import InMemoryJsonDocuments, InMemoryKeyListing
from tests.unit.test_training_runs import CODE_SHA, CODE_URI, Account

MONITORING = "dxops-dev-monitoring"
STARTED = dt.datetime(2026, 11, 27, 14, 0, 3, 117000, tzinfo=dt.UTC)
KEYS = [
    "predictions/date=2026-11-27/hour=12/a.ndjson",  # before the window
    "predictions/date=2026-11-27/hour=13/b.ndjson",
    "predictions/date=2026-11-27/hour=14/c.ndjson",  # the window ends at 14:00:03: its first seconds
    "predictions/date=2026-10-20/hour=13/d.ndjson",  # older than the quality window
    "diagnoses/date=2026-11-20/x.ndjson",
]


def settings(**environment: str) -> MonitoringSettings:
    return MonitoringSettings.model_validate(
        {
            "MODEL_VERSIONS_TABLE": "dxops-dev-model-versions",
            "MONITORING_BUCKET": MONITORING,
            "DATA_KEY_ARN": "arn:aws:kms:eu-west-1:123456789012:key/k",
            "TRAINING_IMAGE_URI": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.0-5",
            "TRAINING_CODE_URI": CODE_URI,
            "MONITORING_PERIOD_SECONDS": "3600",
            **environment,
        }
    )


def plan(keys: list[str], champion: bool = True) -> tuple[MonitoringPlan, InMemoryJsonDocuments]:
    account = Account()
    if champion:
        account.earlier_versions(1)
    run = MonitoringRunRequest(run_name="7e0c2b9a", started_at=STARTED)
    planned = prepare_monitoring_run(
        run,
        settings=settings(),
        versions=account.versions,
        monitoring_keys=InMemoryKeyListing(keys),
        documents=account.documents,
    )
    return planned, account.documents


def test_the_window_is_the_period_before_the_run_and_the_job_judges_the_champion() -> None:
    planned, documents = plan(KEYS)
    assert (planned.window_start, planned.window_end) == (
        dt.datetime(2026, 11, 27, 13, 0, 3, 117000, tzinfo=dt.UTC),
        STARTED,
    )
    assert planned.action == "monitor" and planned.package_version == 1
    assert (planned.prediction_objects, planned.quality_prediction_objects, planned.diagnosis_objects) == (2, 3, 1)
    job = planned.processing_job
    assert job is not None and job["ProcessingJobName"].startswith("dxops-dev-monitor-20261127140003-")
    run_uri = f"s3://{MONITORING}/monitoring/runs/{job['ProcessingJobName']}/"
    assert documents.read(run_uri + "predictions.manifest") == [
        {"prefix": f"s3://{MONITORING}/predictions/"},
        "date=2026-11-27/hour=12/a.ndjson",
        "date=2026-11-27/hour=13/b.ndjson",
        "date=2026-11-27/hour=14/c.ndjson",
    ]
    assert documents.read(run_uri + "diagnoses.manifest") == [
        {"prefix": f"s3://{MONITORING}/diagnoses/"},
        "date=2026-11-20/x.ndjson",
    ]
    inputs = {i["InputName"]: i["S3Input"] for i in job["ProcessingInputs"]}
    assert inputs["code"]["S3Uri"] == f"{CODE_URI}{CODE_SHA}/source/"
    assert inputs["model"]["S3Uri"].endswith("/output/model.tar.gz")
    assert inputs["predictions"]["S3DataType"] == inputs["diagnoses"]["S3DataType"] == "ManifestFile"
    assert job["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        "/opt/ml/processing/input/code/dxops_monitor.py",
    ]
    arguments = job["AppSpecification"]["ContainerArguments"]
    assert dict(zip(arguments[::2], arguments[1::2], strict=True)) == {
        "--model-version": "3f9c2ab1-0123456789ab-5e6f7a8b",
        "--window-start": "2026-11-27T13:00:03.117000+00:00",
        "--window-end": "2026-11-27T14:00:03.117000+00:00",
        "--false-alarm-rate": "0.05",
        "--min-samples": "100",
        "--share-threshold": "0.0",
        "--min-labels": "50",
        "--quality-tolerance": "0.05",
    }
    assert job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == planned.output_uri == run_uri + "output/"


def test_the_monitor_job_runs_in_the_vpc_when_the_stack_has_one() -> None:
    account = Account()
    account.earlier_versions(1)
    run = MonitoringRunRequest(run_name="7e0c2b9a", started_at=STARTED)
    vpc = {"VPC_SUBNET_IDS": "subnet-0a1b2c3d4e5f60718", "VPC_SECURITY_GROUP_IDS": "sg-0123456789abcdef0"}
    jobs = {
        name: prepare_monitoring_run(
            run,
            settings=settings(**environment),
            versions=account.versions,
            monitoring_keys=InMemoryKeyListing(KEYS),
            documents=account.documents,
        ).processing_job
        for name, environment in (("outside", {}), ("inside", vpc))
    }
    assert jobs["outside"] is not None and jobs["inside"] is not None
    assert jobs["outside"]["NetworkConfig"] == {"EnableNetworkIsolation": False}
    assert jobs["inside"]["NetworkConfig"]["VpcConfig"] == {
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "Subnets": ["subnet-0a1b2c3d4e5f60718"],
    }


@pytest.mark.parametrize(
    ("keys", "champion", "reason"),
    [
        (KEYS, False, "no model serves yet"),
        (["predictions/date=2026-11-27/hour=09/a.ndjson"], True, "no predictions in the window and no diagnoses"),
    ],
)
def test_nothing_to_judge_skips_the_job(keys: list[str], champion: bool, reason: str) -> None:
    planned, documents = plan(keys, champion)
    assert (planned.action, planned.reason, planned.processing_job) == ("skip", reason, None)
    assert not [uri for uri in documents.written if "/monitoring/" in uri]  # no manifests


def monitoring_json(**drift: Any) -> dict[str, Any]:
    """monitoring.json as ml/monitor.py writes it (abridged)."""
    return {
        "schema_version": 1,
        "drift": {
            "status": "drift",
            "samples": 150,
            "share_drifted": 0.05,
            "share_threshold": 0.0,
            "presentation_drifted": 0,
            "features": [
                {
                    "name": "age_years",
                    "test": "ks",
                    "statistic": 0.41,
                    "p_value": 0.0,
                    "threshold": 0.0025,
                    "drifted": True,
                    "status": "tested",
                    "summary": {"reference_mean": 43.1, "current_mean": 54.5},
                },
                {
                    "name": "sex",
                    "test": "z",
                    "statistic": 0.4,
                    "p_value": 0.6,
                    "threshold": 0.0025,
                    "drifted": False,
                    "status": "tested",
                    "summary": {},
                },
                {
                    "name": "lab:1988-5",
                    "test": None,
                    "statistic": None,
                    "p_value": None,
                    "threshold": None,
                    "drifted": False,
                    "status": "insufficient_data",
                    "summary": {},
                },
            ],
            "prediction": {"drifted": False, "quantities": []},
            **drift,
        },
        "quality": {
            "status": "insufficient_labels",
            "labelled": 12,
            "macro_f1": None,
            "rare_recall": None,
            "ece": None,
            "accuracy": None,
            "macro_f1_drop": None,
            "reference": {"macro_f1": 0.81},
        },
    }


def test_the_summary_names_the_drifted_features_and_becomes_the_latest() -> None:
    planned, documents = plan(KEYS)
    assert planned.output_uri is not None
    documents.write(planned.output_uri + "monitoring.json", monitoring_json())

    summary = summarise_monitoring_run(planned, documents, MONITORING)

    assert (summary.drift_status, summary.drift_samples, summary.drift_share) == ("drift", 150, 0.05)
    assert summary.feature_drift == {"age_years": True, "sex": False}  # untested features publish nothing
    assert [(f.name, f.test, f.summary["current_mean"]) for f in summary.drifted_features] == [
        ("age_years", "ks", 54.5)
    ]
    assert (summary.quality_status, summary.labelled, summary.reference_quality["macro_f1"]) == (
        "insufficient_labels",
        12,
        0.81,
    )
    assert summary.report_uri == planned.output_uri + "monitoring.md"
    assert documents.read(f"s3://{MONITORING}/monitoring/latest.json") == summary.model_dump(mode="json")


def test_a_skipped_run_is_summarised_as_not_run_and_a_missing_result_is_an_error() -> None:
    skipped, documents = plan(KEYS, champion=False)
    assert summarise_monitoring_run(skipped, documents, MONITORING).drift_status == "not-run"
    planned, documents = plan(KEYS)
    with pytest.raises(MonitoringResultMissing):
        summarise_monitoring_run(planned, documents, MONITORING)


def test_an_input_with_nothing_to_list_is_left_out() -> None:
    """SageMaker refuses an input that lists no object; the monitor reads a missing one as empty."""
    planned, documents = plan([k for k in KEYS if k.startswith("predictions/")])
    assert planned.processing_job is not None
    inputs = [i["InputName"] for i in planned.processing_job["ProcessingInputs"]]
    assert inputs == ["code", "model", "predictions"]
    assert not [uri for uri in documents.written if uri.endswith("diagnoses.manifest")]
