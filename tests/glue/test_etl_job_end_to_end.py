"""glue/etl_job.py run by the local cloud's Glue runner: simulated raw objects in moto S3 -> curated
Parquet, dq_report.json, run_summary.json and the quarantine in S3; the counts reconcile.

One Spark run (a subprocess with its own JVM, ~20-40 s on 2 busy cores).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from cohorts.catalog import build_catalog
from cohorts.patients import CohortConfig, CohortGenerator
from dxops.domain.pseudonymisation import PseudonymKey, pseudonymise
from dxops.domain.raw_zone import raw_key, to_ndjson
from dxops.schemas.clinical import ClinicalRecord, PseudonymisedRecord
from dxops.schemas.device import PseudonymisedReading
from localcloud import glue
from localcloud.cloud import LocalCloud

HERE = Path(__file__).parent
JOB = "dxops-test-etl"
RUN_TIMEOUT = 240.0
RECORDS = 30
KEY = PseudonymKey("k-test", b"test-secret-not-a-real-key")
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    # The local cloud stops its Glue runs itself (services' shutdown, while moto still answers).
    with (
        glue.configured(workdir=tmp_path_factory.mktemp("glue-etl-runs"), java_options=glue.QUICK_START_JAVA_OPTIONS),
        LocalCloud.start(template_path=HERE / "template.yaml") as local_cloud,
    ):
        yield local_cloud


def simulated_raw() -> tuple[list[PseudonymisedRecord], list[PseudonymisedReading]]:
    catalog = build_catalog(rare_count=5)
    config = CohortConfig(records=RECORDS, seed=7, source="site-e2e", start_date=dt.date(2025, 1, 1), days=30)
    records, readings = [], []
    for patient in CohortGenerator(config, catalog):
        clinical = ClinicalRecord.model_validate(patient.record)
        pseudonym = pseudonymise(KEY, clinical.source, clinical.patient_id)
        records.append(
            PseudonymisedRecord.from_record(
                clinical, pseudonym=pseudonym, key_id=KEY.key_id, ingested_at=NOW, schema_version="1.0"
            )
        )
        if patient.index < 3:  # three patients wore a device on their encounter day
            day = dt.datetime.combine(clinical.encounter_date, dt.time(), dt.UTC)
            for hour in (2, 10, 20):
                at = day + dt.timedelta(hours=hour)
                readings.append(
                    PseudonymisedReading(
                        reading_id=f"dev-{patient.index}:{int(at.timestamp() * 1000)}",
                        device_id=f"dev-{patient.index}",
                        source=clinical.source,
                        patient_pseudonym=pseudonym,
                        pseudonym_key_id=KEY.key_id,
                        timestamp=at,
                        received_at=at,
                        ingested_at=NOW,
                        measurements=[{"name": "heart_rate", "value": 60.0 + hour, "unit": "/min"}],
                        schema_version="1.0",
                    )
                )
    return records, readings


def put(s3: Any, bucket: str, key: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def test_etl_job_turns_raw_objects_into_a_curated_version(cloud: LocalCloud, tmp_path: Path, spark: Any) -> None:
    from build_package import build_package  # glue/ is on sys.path (conftest)

    s3 = boto3.client("s3")
    bucket = cloud.outputs["DataBucketName"]
    records, readings = simulated_raw()
    day = NOW.date()
    put(s3, bucket, raw_key("clinical", "site-e2e", day, "b1"), to_ndjson(records[:20]))
    put(s3, bucket, raw_key("clinical", "site-e2e", day, "b2"), to_ndjson(records[20:]))
    replay = to_ndjson(records[:5]) + b'{"record_id": "broken"\n'  # 5 duplicates + 1 corrupt line
    put(s3, bucket, raw_key("clinical", "site-e2e", day, "b3"), replay)
    put(s3, bucket, raw_key("device", "site-e2e", day, "d1"), to_ndjson(readings + readings[:2]))
    put(s3, bucket, "glue/dxops_etl.zip", build_package(tmp_path / "dxops_etl.zip").read_bytes())

    arguments = {
        "--extra-py-files": f"s3://{bucket}/glue/dxops_etl.zip",
        "--raw_path": f"s3://{bucket}/raw/",
        "--output_path": f"s3://{bucket}/curated/v1/",
        "--quarantine_path": f"s3://{bucket}/quarantine/v1/",
        "--dataset_version": "v1",
        "--run_time": NOW.isoformat(),
        "--previous_row_count": "28",
        "--min_term_records": "2",
    }
    glue_client = boto3.client("glue")
    run_id = glue_client.start_job_run(JobName=JOB, Arguments=arguments)["JobRunId"]
    glue.wait_for_job_run(JOB, run_id, RUN_TIMEOUT)
    run = glue_client.get_job_run(JobName=JOB, RunId=run_id)["JobRun"]
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")

    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="")["Contents"]}
    parquet = sorted(k for k in keys if k.startswith("curated/v1/table/") and k.endswith(".parquet"))
    assert parquet
    assert all(k.startswith("curated/v1/table/source=site-e2e/") for k in parquet)
    summary = json.loads(s3.get_object(Bucket=bucket, Key="curated/v1/run_summary.json")["Body"].read())
    report = json.loads(s3.get_object(Bucket=bucket, Key="curated/v1/dq_report.json")["Body"].read())
    assert any(k.startswith("quarantine/v1/lines/kind=clinical/") for k in keys)

    rows = summary["rows"]
    assert rows["clinical_lines_in"] == RECORDS + 5 + 1
    assert (rows["curated"], rows["clinical_duplicates"], rows["clinical_quarantined"]) == (RECORDS, 5, 1)
    assert rows["clinical_lines_in"] == rows["curated"] + rows["clinical_duplicates"] + rows["clinical_quarantined"]
    assert (rows["reading_lines_in"], rows["reading_duplicates"], rows["readings_kept"]) == (11, 2, 9)
    assert rows["orphan_device_patients"] == 0
    assert summary["quarantine_reasons"] == {"malformed": 1}
    assert sum(summary["class_counts"].values()) == RECORDS
    assert summary["dq_status"] == report["status"]
    assert report["status"] in {"pass", "fail"}
    assert {r["rule"] for r in report["rules"]} == {
        "record_id_complete",
        "patient_id_complete",
        "encounter_date_complete",
        "record_id_unique",
        "age_range",
        "labs_plausible",
        "vitals_plausible",
        "label_code",
        "label_known",
        "device_patients_have_records",
        "label_balance",
        "fresh_data",
        "row_count_change",
    }
    assert next(r for r in report["rules"] if r["id"] == "record_id_unique")["status"] == "pass"

    # Lineage: every raw object read, named by its S3 URI, with its lines (valid + quarantined).
    sources = json.loads(s3.get_object(Bucket=bucket, Key="curated/v1/sources.json")["Body"].read())
    raw_objects = {f"s3://{bucket}/{k}" for k in keys if k.startswith("raw/")}
    assert {s["uri"] for s in sources} == raw_objects
    assert sum(s["lines"] for s in sources) == rows["clinical_lines_in"] + rows["reading_lines_in"]
    assert summary["source_objects"] == len(raw_objects)
    assert summary["content_hash"].startswith("sha256:")

    local = tmp_path / "table"
    for key in (k for k in keys if k.startswith("curated/v1/table/")):
        target = local / key.removeprefix("curated/v1/table/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    table = spark.read.parquet(str(local))
    assert table.count() == RECORDS
    assert table.columns[:6] == ["record_id", "patient_id", "encounter_date", "label", "label_status", "ingested_at"]
    assert table.columns[-1] == "source"  # the partition column comes back last
    assert summary["columns"]["phenotypes"]
    assert set(summary["columns"]["phenotypes"]) <= set(table.columns)
    assert table.filter("dev_readings = 3").count() == 3  # the three monitored patients
