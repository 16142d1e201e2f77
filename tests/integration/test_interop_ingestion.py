"""Phenopackets and FHIR Bundles through the real handlers on the local cloud: POST /phenopackets,
POST /fhir/bundles, and files dropped in the raw bucket's inbox/ (S3 -> EventBridge -> SQS -> Lambda)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3

from localcloud.cloud import LocalCloud
from localcloud.event_sources import drain
from tests.integration.api_events import load_event
from tests.integration.raw_zone import stored_lines

API = "IngestApiFunction"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PHENOPACKETS = sorted((EXAMPLES / "phenopackets").glob("*.json"))
FHIR_BUNDLES = sorted((EXAMPLES / "fhir").glob("*.json"))


def example(path: Path) -> Any:
    return json.loads(path.read_text())


def post(path: str, body: Any, query: dict[str, str] | None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    event = copy.deepcopy(load_event("ingest_api/post_phenopackets.json"))
    event["resource"] = event["path"] = path
    event["headers"] = {k: v for k, v in event["headers"].items() if k != "Idempotency-Key"} | (headers or {})
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    event["body"] = json.dumps(body)
    return event


def call(cloud: LocalCloud, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = cloud.invoke(API, event)
    return response["statusCode"], json.loads(response["body"])


def identifiers(documents: list[Any]) -> set[str]:
    """The patients' identifiers in the documents: none may reach storage or a response."""
    found = set()
    for document in documents:
        members = document.get("members", [document]) if isinstance(document, dict) else []
        found |= {m["subject"]["id"] for m in members if isinstance(m, dict) and m.get("subject", {}).get("id")}
    return found


def everything_stored(cloud: LocalCloud) -> str:
    s3 = boto3.client("s3")
    bucket = cloud.outputs["RawBucketName"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return "\n".join(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode() for key in keys)


def test_phenopackets_are_ingested_reconciled_and_idempotent(cloud: LocalCloud) -> None:
    documents = [example(path) for path in PHENOPACKETS]
    headers = {"Idempotency-Key": "phenopackets-0001"}
    code, result = call(cloud, post("/phenopackets", documents, {"source": "site-a"}, headers))
    assert code == 202
    stored, quarantined = stored_lines(cloud, "raw/clinical/"), stored_lines(cloud, "quarantine/clinical/")
    assert result["received"] == result["accepted"] + result["rejected"] == len(stored) + len(quarantined)
    # one record per phenopacket; a Cohort's members are phenopackets of their own
    assert result["documents"] == result["received"] == len(documents) + 1
    assert {line["record_id"] for line in stored} == set(result["stored_record_ids"])
    assert {line["source"] for line in stored} == {"site-a"}
    assert sorted(q["index"] for q in quarantined) == sorted(e["index"] for e in result["errors"])
    assert result["mapping_notes"] and all(r["notes"] for r in result["mapping_notes"])
    assert not [pid for pid in identifiers(documents) if pid in everything_stored(cloud) + json.dumps(result)]
    # the same request again: answered from the idempotency record, nothing stored twice
    again_code, again = call(cloud, post("/phenopackets", documents, {"source": "site-a"}, headers))
    assert (again_code, again) == (code, result)
    assert len(stored_lines(cloud, "raw/clinical/")) == len(stored)


def test_the_site_is_required_and_checked(cloud: LocalCloud) -> None:
    document = example(EXAMPLES / "phenopackets" / "marfan_full.json")
    for query in (None, {"source": "Site A"}):
        code, body = call(cloud, post("/phenopackets", document, query))
        assert code == 422 and body["fields"][0]["path"] == "query.source", body
    assert stored_lines(cloud, "raw/clinical/") == []


def _inbox_event(bucket: str, key: str, version: str) -> dict[str, Any]:
    """The S3 "Object Created" event the EventBridge rule forwards (as events/ingest_inbox/ has it)."""
    sample = load_event("ingest_inbox/sqs_inbox_file_created.json")
    event: dict[str, Any] = json.loads(sample["Records"][0]["body"])
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"] = {**event["detail"]["object"], "key": key, "version-id": version}
    return event


def sqs_records(messages: list[dict[str, str]]) -> dict[str, Any]:
    sample = load_event("ingest_inbox/sqs_inbox_file_created.json")
    template = sample["Records"][0]
    return {"Records": [{**template, "messageId": f"m-{i}", **m} for i, m in enumerate(messages)]}


def test_an_inbox_file_is_ingested_reported_and_deleted(cloud: LocalCloud) -> None:
    s3, bucket = boto3.client("s3"), cloud.outputs["RawBucketName"]
    documents = [example(path) for path in PHENOPACKETS if not path.name.startswith(("invalid", "cohort"))]
    text = "\n".join([*(json.dumps(d) for d in documents), "{not json"])
    key = "inbox/phenopackets/site-b/export.ndjson"
    s3.put_object(Bucket=bucket, Key=key, Body=text.encode())
    stats = drain(cloud)["IngestInboxFunctionInboxFiles"]
    assert (stats.delivered, stats.failed_invocations) == (1, 0)
    stored, quarantined = stored_lines(cloud, "raw/clinical/"), stored_lines(cloud, "quarantine/clinical/")
    assert (len(stored), len(quarantined)) == (len(documents), 1)
    assert {line["source"] for line in stored} == {"site-b"}
    assert quarantined[0]["errors"][0]["message"] == f"line {len(documents) + 1} is not valid JSON at column 2"
    # the file is deleted for good (every version): it held the patients' identifiers in clear
    assert s3.list_object_versions(Bucket=bucket, Prefix="inbox/").get("Versions", []) == []
    [report_key] = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="reports/inbox/")["Contents"]]
    report = json.loads(s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())
    assert report["documents"] == len(documents) + 1 and key not in json.dumps(report)
    assert (report["accepted"], report["rejected"]) == (len(documents), 1)
    assert not [pid for pid in identifiers(documents) if pid in everything_stored(cloud)]
    # the same event again (SQS delivers at least once): the file is gone, nothing is stored twice
    [message] = [{"body": json.dumps(_inbox_event(bucket, key, "v0"))}]
    assert cloud.invoke("IngestInboxFunction", sqs_records([message])) == {"batchItemFailures": []}
    assert len(stored_lines(cloud, "raw/clinical/")) == len(documents)


def test_fhir_bundles_are_ingested_one_record_per_encounter(cloud: LocalCloud) -> None:
    bundles = [example(path) for path in FHIR_BUNDLES]
    valid = [b for path, b in zip(FHIR_BUNDLES, bundles, strict=True) if not path.name.startswith("invalid")]
    headers = {"Content-Type": "application/fhir+json"}
    code, result = call(cloud, post("/fhir/bundles", bundles, {"source": "site-c"}, headers))
    assert code == 202
    stored, quarantined = stored_lines(cloud, "raw/clinical/"), stored_lines(cloud, "quarantine/clinical/")
    assert result["documents"] == len(bundles)
    assert result["received"] == result["accepted"] + result["rejected"] == len(stored) + len(quarantined)
    encounters = sum(1 for b in valid for e in b["entry"] if e.get("resource", {}).get("resourceType") == "Encounter")
    # every Encounter of a valid Bundle became a record; every invalid Bundle is one rejected item
    assert result["received"] == encounters + len(bundles) - len(valid)
    assert {line["source"] for line in stored} == {"site-c"}
    patients = {
        i["value"]
        for b in bundles
        if isinstance(b, dict)
        for e in b.get("entry", [])
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        for i in e["resource"].get("identifier", [])
        if e["resource"].get("resourceType") == "Patient" and isinstance(i, dict) and "value" in i
    }
    assert patients and not [p for p in patients if p in everything_stored(cloud) + json.dumps(result)]
