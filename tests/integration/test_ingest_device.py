"""Device path through the real handlers on the local cloud: bindings over the API, then SQS
events of rule envelopes in, raw zone and quarantine out."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from localcloud.cloud import LocalCloud
from localcloud.runtime import FunctionError
from tests.integration.api_events import put_binding, sqs_event
from tests.integration.raw_zone import stored_lines
from tests.records import PATIENT_IDS, binding_request, device_publication, rule_envelope, with_change

DEVICE = "IngestDeviceFunction"
API = "IngestApiFunction"


def bind(cloud: LocalCloud, device: str, patient: int, site: str = "site-a") -> dict[str, Any]:
    response = cloud.invoke(API, put_binding(device, binding_request(patient, site)))
    assert response["statusCode"] == 200, response["body"]
    body: dict[str, Any] = json.loads(response["body"])
    return body


def test_binding_returns_and_stores_only_the_pseudonym(cloud: LocalCloud) -> None:
    body = bind(cloud, "monitor-7", 1)
    assert body["device_id"] == "monitor-7" and len(body["patient_pseudonym"]) == 64
    items = boto3.client("dynamodb").scan(TableName=cloud.physical_id("DeviceBindingsTable"))["Items"]
    assert len(items) == 1
    assert PATIENT_IDS[1] not in json.dumps(items) + json.dumps(body)


@pytest.mark.parametrize(
    ("device", "body", "status"),
    [
        ("monitor-7", {"source": "site-a"}, 422),  # no patient
        ("monitor-7", {**binding_request(), "name": "Jane Roe"}, 422),
        ("monitor-7", "{not json", 422),
        ("bad device id!", binding_request(), 422),
    ],
)
def test_bad_bindings_are_refused(cloud: LocalCloud, device: str, body: object, status: int) -> None:
    response = cloud.invoke(API, put_binding(device, body))
    assert response["statusCode"] == status, response["body"]
    assert "Jane Roe" not in response["body"]


def test_unsigned_binding_is_refused(cloud: LocalCloud) -> None:
    assert cloud.invoke(API, put_binding("monitor-7", binding_request(), signed=False))["statusCode"] == 401


def test_messages_reconcile_per_path(cloud: LocalCloud) -> None:
    for i in range(5):
        bind(cloud, f"monitor-{i}", i)
    good = [rule_envelope(device_publication(readings=4), f"monitor-{i}") for i in range(5)]
    bad = [
        rule_envelope(b"not json at all", "monitor-1"),
        rule_envelope(with_change(device_publication(), "readings.1.measurements.0.value", -5), "monitor-2"),
        rule_envelope({**device_publication(), "patient_id": PATIENT_IDS[0]}, "monitor-3"),
        rule_envelope(device_publication(), "never-bound"),
    ]
    result = cloud.invoke(DEVICE, sqs_event([*good, *bad]))
    assert result == {"batchItemFailures": []}
    stored, quarantined = stored_lines(cloud, "raw/device/"), stored_lines(cloud, "quarantine/device/")
    assert len(stored) == 5 * 4
    assert len(quarantined) == len(bad)
    assert len({s["reading_id"] for s in stored}) == 20
    assert sorted(q["errors"][0]["type"] for q in quarantined) == [
        "extra_forbidden",
        "json_invalid",
        "unbound_device",
        "value_error",
    ]
    assert PATIENT_IDS[0] not in json.dumps(quarantined)


def test_unbinding_stops_attribution(cloud: LocalCloud) -> None:
    bind(cloud, "monitor-1", 0)
    delete = put_binding("monitor-1", "")
    delete["httpMethod"] = "DELETE"
    delete["body"] = None
    assert cloud.invoke(API, delete)["statusCode"] == 204
    assert cloud.invoke(API, delete)["statusCode"] == 404
    cloud.invoke(DEVICE, sqs_event([rule_envelope(device_publication(), "monitor-1")]))
    assert stored_lines(cloud, "raw/device/") == []
    assert [q["errors"][0]["type"] for q in stored_lines(cloud, "quarantine/device/")] == ["unbound_device"]


def test_storage_failure_fails_the_batch_for_redelivery(cloud: LocalCloud) -> None:
    bind(cloud, "monitor-0001", 0)
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
        cloud.invoke(DEVICE, sqs_event([rule_envelope(device_publication())]))
    assert caught.value.error_type == "ClientError"
