"""POST /records through the real handler on the local cloud (S3, DynamoDB, Secrets Manager in moto)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from localcloud.cloud import LocalCloud
from tests.integration.api_events import load_event, post_records
from tests.integration.raw_zone import stored_lines
from tests.records import clinical_record, with_change

API = "IngestApiFunction"
PUBLISHED_OPENAPI = Path(__file__).resolve().parents[2] / "layers" / "shared" / "dxops" / "api" / "openapi.json"


def call(cloud: LocalCloud, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = cloud.invoke(API, event)
    return response["statusCode"], json.loads(response["body"])


def test_single_record_is_stored(cloud: LocalCloud) -> None:
    code, body = call(cloud, post_records(clinical_record()))
    assert code == 202
    assert body["stored_record_ids"] == ["rec-00000"]
    [line] = stored_lines(cloud, "raw/clinical/")
    assert line["record_id"] == "rec-00000" and len(line["patient_pseudonym"]) == 64


def test_batch_reconciles_stored_plus_quarantined(cloud: LocalCloud) -> None:
    items: list[Any] = [clinical_record(i) for i in range(20)]
    items[3] = with_change(items[3], "phenotypes.0.hpo_id", "HP:9999999")
    items[7] = with_change(items[7], "labs.0.value", "high")
    items[11] = {**items[11]}
    del items[11]["patient_id"]
    items[15] = [1, 2]
    code, body = call(cloud, post_records(items))
    assert code == 202
    stored, quarantined = stored_lines(cloud, "raw/clinical/"), stored_lines(cloud, "quarantine/clinical/")
    assert (body["accepted"], body["rejected"]) == (16, 4)
    assert len(stored) + len(quarantined) == len(items) == body["received"]
    assert {e["index"]: e["errors"][0]["path"] for e in body["errors"]} == {
        3: "phenotypes[0].hpo_id",
        7: "labs[0].value",
        11: "patient_id",
        15: "(root)",
    }
    assert sorted(q["index"] for q in quarantined) == [3, 7, 11, 15]


def test_all_invalid_is_422_and_quarantined(cloud: LocalCloud) -> None:
    code, body = call(cloud, post_records(with_change(clinical_record(), "vitals.0.value", 400)))
    assert code == 422
    assert body["error"] == "validation_failed"
    assert body["errors"][0]["errors"][0] == {
        "path": "vitals[0]",
        "message": "heart_rate 400.0 /min is outside the plausible range [20, 300]",
        "type": "value_error",
    }
    assert len(stored_lines(cloud, "quarantine/clinical/")) == 1


def test_retry_with_idempotency_key_stores_nothing_twice(cloud: LocalCloud) -> None:
    event = post_records([clinical_record(0), clinical_record(1)], {"Idempotency-Key": "retry-test-0001"})
    first = call(cloud, event)
    second = call(cloud, event)
    assert first == second
    s3 = boto3.client("s3")
    versions = s3.list_object_versions(Bucket=cloud.outputs["RawBucketName"], Prefix="raw/").get("Versions", [])
    assert len(versions) == 1  # the retry was answered from the idempotency record, not rewritten
    assert len(stored_lines(cloud, "raw/clinical/")) == 2


def test_retry_without_key_is_deduplicated_by_body(cloud: LocalCloud) -> None:
    event = post_records(clinical_record())
    assert call(cloud, event) == call(cloud, event)
    versions = boto3.client("s3").list_object_versions(Bucket=cloud.outputs["RawBucketName"]).get("Versions", [])
    assert len(versions) == 1


def test_a_rejected_record_can_be_fixed_and_resent_under_the_same_record_id(cloud: LocalCloud) -> None:
    broken = with_change(clinical_record(0), "phenotypes.0.hpo_id", "HP:9999999")
    assert call(cloud, post_records(broken))[0] == 422
    code, body = call(cloud, post_records(clinical_record(0)))
    assert (code, body["stored_record_ids"]) == (202, ["rec-00000"])


def test_resending_a_record_id_with_other_content_is_refused(cloud: LocalCloud) -> None:
    assert call(cloud, post_records(clinical_record(0)))[0] == 202
    code, body = call(cloud, post_records(clinical_record(0, sex="male")))
    assert (code, body["error"]) == (422, "idempotency_key_reused")


def test_idempotency_key_reused_with_another_body_is_refused(cloud: LocalCloud) -> None:
    headers = {"Idempotency-Key": "reused-key-0001"}
    assert call(cloud, post_records(clinical_record(0), headers))[0] == 202
    code, body = call(cloud, post_records(clinical_record(1), headers))
    assert (code, body["error"]) == (422, "idempotency_key_reused")


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ('{"record_id": ', 400, "malformed_request"),
        ("[]", 400, "malformed_request"),
        ('"text"', 400, "malformed_request"),
        (json.dumps([clinical_record(i) for i in range(501)]), 413, "payload_too_large"),
        ("[" + " " * 1_048_577 + "]", 413, "payload_too_large"),
        ("[" * 5000 + "]" * 5000, 400, "malformed_request"),
        ("[" * 100_000 + "]" * 100_000, 400, "malformed_request"),
    ],
)
def test_bad_requests_get_clear_errors(cloud: LocalCloud, body: str, status: int, error: str) -> None:
    code, answer = call(cloud, post_records(body))
    assert (code, answer["error"]) == (status, error)
    assert answer["request_id"]
    assert stored_lines(cloud, "raw/") == []


def test_base64_body_that_is_not_base64_is_400(cloud: LocalCloud) -> None:
    event = post_records(clinical_record())
    event["isBase64Encoded"] = True
    event["body"] = "%%% not base64 %%%"
    code, body = call(cloud, event)
    assert (code, body["error"]) == (400, "malformed_request")


def test_base64_body_is_decoded(cloud: LocalCloud) -> None:
    import base64

    event = post_records(clinical_record())
    event["isBase64Encoded"] = True
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    assert call(cloud, event)[0] == 202


def test_unsigned_request_is_refused(cloud: LocalCloud) -> None:
    code, body = call(cloud, post_records(clinical_record(), signed=False))
    assert (code, body["error"]) == (401, "unauthorized")
    assert stored_lines(cloud, "") == []


def test_storage_outage_is_503_with_retry_after(cloud: LocalCloud) -> None:
    s3 = boto3.client("s3")
    bucket = cloud.outputs["RawBucketName"]
    s3.delete_bucket_policy(Bucket=bucket)
    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:PutObject",
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                    }
                ],
            }
        ),
    )
    response = cloud.invoke(API, post_records(clinical_record()))
    assert response["statusCode"] == 503
    assert response["multiValueHeaders"]["Retry-After"] == ["5"]


def test_openapi_document_is_generated_from_the_schemas(cloud: LocalCloud) -> None:
    code, document = call(cloud, load_event("ingest_api/get_openapi.json"))
    assert code == 200
    body_schema = document["paths"]["/records"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema["anyOf"][0] == {"$ref": "#/components/schemas/ClinicalRecord"}
    record = document["components"]["schemas"]["ClinicalRecord"]
    assert "patient_id" in record["required"] and record["additionalProperties"] is False
    assert "Phenotype" in document["components"]["schemas"]
    assert document["components"]["securitySchemes"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert set(document["paths"]["/records"]["post"]["responses"]) >= {"202", "400", "413", "422", "503"}
    # The whole API's document (make openapi), not only this function's routes.
    assert {"/predict", "/diagnoses", "/models/{version}/approval", "/models/rollback"} <= set(document["paths"])
    assert document == json.loads(PUBLISHED_OPENAPI.read_text())
