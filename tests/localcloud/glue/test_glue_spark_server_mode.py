"""Glue jobs running PySpark on the local cloud in server mode (a moto server other processes share).

Two Spark runs (one JVM each, about 8-15 s): raw CSV in S3 -> curated Parquet in S3, then a second
job reads that Parquet back from S3 and writes a summary: the Parquet is readable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from localcloud import glue
from localcloud.cloud import LocalCloud

TEMPLATE = Path(__file__).parent / "template.yaml"
SPARK_RUN_TIMEOUT = 120.0

RAW_CSV = {
    "raw/batch-1.csv": "record_id,patient,value\nr1,p1,1.5\nr2,p2,2.5\nr1,p1,1.5\n",  # r1 twice
    "raw/batch-2.csv": "record_id,patient,value\nr3,p1,4.0\n",
}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    # The local cloud stops its Glue runs itself (services' shutdown, while moto still answers).
    with (
        glue.configured(workdir=tmp_path_factory.mktemp("glue-spark-runs"), java_options=glue.QUICK_START_JAVA_OPTIONS),
        LocalCloud.start(template_path=TEMPLATE, server=True) as local_cloud,
    ):
        yield local_cloud


def run_job(cloud: LocalCloud, job: str, arguments: dict[str, str]) -> dict[str, Any]:
    client = boto3.client("glue", endpoint_url=cloud.endpoint)
    run_id = client.start_job_run(JobName=job, Arguments=arguments)["JobRunId"]
    glue.wait_for_job_run(job, run_id, SPARK_RUN_TIMEOUT)
    run: dict[str, Any] = client.get_job_run(JobName=job, RunId=run_id)["JobRun"]
    return run


def test_spark_job_turns_raw_csv_into_parquet_in_s3_that_a_second_job_reads(cloud: LocalCloud) -> None:
    assert cloud.endpoint is not None
    s3 = boto3.client("s3", endpoint_url=cloud.endpoint)
    bucket = cloud.outputs["DataBucketName"]
    for key, body in RAW_CSV.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())

    etl = run_job(
        cloud,
        "dxops-test-spark-etl",
        {"--input": f"s3://{bucket}/raw/", "--output": f"s3://{bucket}/curated/", "--dataset_version": "v7"},
    )
    assert etl["JobRunState"] == "SUCCEEDED", etl.get("ErrorMessage")
    assert etl["GlueVersion"] == "5.0"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="curated/")["Contents"])
    parquet = [k for k in keys if k.endswith(".parquet")]
    assert parquet
    assert all(k.startswith("curated/dataset_version=v7/part-") for k in parquet)
    assert "curated/_SUCCESS" in keys
    assert not [k for k in keys if k.endswith(".crc")]  # Hadoop's local checksum files stay local
    first = s3.get_object(Bucket=bucket, Key=parquet[0])["Body"].read()
    assert first[:4] == first[-4:] == b"PAR1"

    summary = run_job(
        cloud,
        "dxops-test-spark-summary",
        {
            "--curated": f"s3://{bucket}/curated/",
            "--summary": f"s3://{bucket}/reports/summary.json",
            "--bucket": bucket,
        },
    )
    assert summary["JobRunState"] == "SUCCEEDED", summary.get("ErrorMessage")
    report = json.loads(s3.get_object(Bucket=bucket, Key="reports/summary.json")["Body"].read())
    assert report == {
        "rows": 3,  # r1 deduplicated
        "columns": ["dataset_version", "patient", "record_id", "value"],
        "total_value": 8.0,
        "versions": ["v7"],
        "sees_bucket": True,  # the script's own boto3 calls reach the moto server
    }
