"""Device readings through the real handler on the local cloud: SQS event in, raw zone and quarantine out."""

from __future__ import annotations

import json
from typing import Any

import boto3

from localcloud.cloud import LocalCloud
from tests.integration.api_events import sqs_event
from tests.records import device_message, with_change

DEVICE = "IngestDeviceFunction"


def lines(cloud: LocalCloud, prefix: str) -> list[dict[str, Any]]:
    s3 = boto3.client("s3")
    bucket = cloud.outputs["RawBucketName"]
    return [
        json.loads(line)
        for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        for line in s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode().splitlines()
    ]


def test_messages_reconcile_per_path(cloud: LocalCloud) -> None:
    good = [device_message(f"monitor-{i}", i, readings=4) for i in range(5)]
    bad = [
        "not json at all",
        with_change(device_message("monitor-9"), "readings.1.measurements.0.value", -5),
        {k: v for k, v in device_message("monitor-10").items() if k != "patient_id"},
    ]
    result = cloud.invoke(DEVICE, sqs_event([*good, *bad]))
    assert result == {"batchItemFailures": []}
    stored, quarantined = lines(cloud, "raw/device/"), lines(cloud, "quarantine/device/")
    assert len(stored) == 5 * 4
    assert len(quarantined) == len(bad)
    assert len({s["reading_id"] for s in stored}) == 20
    paths = sorted(q["errors"][0]["path"] for q in quarantined)
    assert paths == ["(root)", "patient_id", "readings[1].measurements[0]"]


def test_storage_failure_fails_the_batch_for_redelivery(cloud: LocalCloud) -> None:
    import pytest

    from localcloud.runtime import FunctionError

    boto3.client("s3").put_bucket_policy(
        Bucket=cloud.outputs["RawBucketName"],
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "*"}],
            }
        ),
    )
    with pytest.raises(FunctionError) as caught:
        cloud.invoke(DEVICE, sqs_event([device_message()]))
    assert caught.value.error_type == "ClientError"
