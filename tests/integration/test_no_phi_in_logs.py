"""No patient identifier, name, date of birth or free text in any log line of the ingestion and
prediction paths.

The scenario runs in a subprocess with LOG_LEVEL=DEBUG so that every byte either function writes
to stdout or stderr is captured, whatever logger or print produced it. It also checks what was
stored: the raw zone, the quarantine and the idempotency table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.records import PATIENT_IDS

REPO = Path(__file__).resolve().parents[2]
SECRETS = (*PATIENT_IDS, "Jane Roe", "Elm Street 12", "1961-03-04", "complains of dizziness", "Dr Hidden")

SCENARIO = r"""
import json, boto3
from localcloud.cloud import LocalCloud
from tests.integration.api_events import load_event, post_records, sqs_event
from tests.integration.api_events import put_binding
from tests.records import clinical_record, device_publication, rule_envelope, with_change

with LocalCloud.start() as cloud:
    for function in cloud.functions.values():
        function.environment["LOG_LEVEL"] = "DEBUG"
    api = "IngestApiFunction"
    RESPONSES = []
    invoke = cloud.invoke
    def record_response(function, event):
        response = invoke(function, event)
        RESPONSES.append(response)
        return response
    cloud.invoke = record_response
    records = [clinical_record(i) for i in range(3)]
    cloud.invoke(api, post_records(records, {"Idempotency-Key": "phi-test-0001"}))
    cloud.invoke(api, post_records(records, {"Idempotency-Key": "phi-test-0001"}))
    cloud.invoke(api, post_records([
        clinical_record(0, notes="Jane Roe complains of dizziness"),
        clinical_record(1, date_of_birth="1961-03-04", address="Elm Street 12"),
        with_change(clinical_record(2), "phenotypes.0.hpo_id", "HP:9999999"),
        with_change(clinical_record(0), "sex", "Jane Roe"),
        clinical_record(1, patient={"name": "Jane Roe", "dob": "1961-03-04"}, aliases=["Jane Roe"]),
        clinical_record(2, **{"Jane Roe 1961-03-04": 1}),
        with_change(clinical_record(0), "vitals.0.unit", "Jane Roe"),
        with_change(clinical_record(1), "history.0", {"name": "Dr Hidden"}),
        clinical_record(2, record_id="Jane Roe 1961-03-04"),
    ]))
    cloud.invoke(api, post_records("{broken " + records[0]["patient_id"]))
    cloud.invoke(api, post_records(clinical_record(1), signed=False))
    cloud.invoke(api, put_binding("monitor-0001", {"source": "site-a", "patient_id": records[0]["patient_id"]}))
    cloud.invoke(api, put_binding("monitor-0002", {"source": "site-a", "patient_id": "Jane Roe"}))
    cloud.invoke(api, put_binding("monitor-0003", {"source": "site-a", "patient_id": "x", "name": "Jane Roe"}))
    bad = with_change(device_publication(), "readings.0.measurements.0.value", 999)
    cloud.invoke("IngestDeviceFunction", sqs_event([
        rule_envelope(device_publication()),
        rule_envelope(bad, "monitor-0002"),
        rule_envelope(b"Jane Roe complains of dizziness"),
        rule_envelope({**device_publication(), "patient_id": records[1]["patient_id"], "notes": "Jane Roe"}),
        "Jane Roe complains of dizziness",
    ]))
    # The prediction API: bad records, a record while no model is deployed (503), late labels.
    predict = load_event("predict_api/post_predict.json")
    for body in (records[0], {"records": records, "top_k": 3},
                 clinical_record(0, notes="Jane Roe complains of dizziness"),
                 with_change(clinical_record(1), "phenotypes.0.hpo_id", "Jane Roe")):
        cloud.invoke("PredictApiFunction", {**predict, "body": json.dumps(body)})
    labels = load_event("predict_api/post_diagnoses.json")
    confirmed = {"diagnoses": [{"record_id": "rec-00000", "source": "site-a", "patient_id": records[0]["patient_id"],
                                "diagnosis": {"code": "ORPHA:558", "status": "confirmed"},
                                "confirmed_at": "2026-11-20"}]}
    cloud.invoke("PredictApiFunction", {**labels, "body": json.dumps(confirmed)})
    cloud.invoke("PredictApiFunction", {**labels, "body": json.dumps({"diagnoses": [{"record_id": "Jane Roe"}]})})
    s3 = boto3.client("s3")
    stored = [s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode()
              for bucket in (cloud.outputs["RawBucketName"], cloud.outputs["MonitoringBucketName"])
              for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    items = boto3.client("dynamodb").scan(TableName=cloud.outputs["IdempotencyTableName"])["Items"]
    with open(OUT, "w") as fh:
        json.dump({"objects": stored, "idempotency_items": items, "responses": RESPONSES}, fh, default=str)
"""


def test_no_phi_in_logs_or_storage(tmp_path: Path) -> None:
    out = tmp_path / "stored.json"
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'layers/shared'}{os.pathsep}{REPO}"}
    completed = subprocess.run(
        [sys.executable, "-c", f"OUT = {str(out)!r}\n{SCENARIO}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    logs = completed.stdout + completed.stderr
    log_lines = [line for line in logs.splitlines() if line.strip()]
    assert sum('"message":"records ingested"' in line for line in log_lines) >= 2  # the logs were captured
    assert any('"level":"DEBUG"' in line for line in log_lines), "the scenario must log at DEBUG"
    for secret in SECRETS:
        leaked = [line for line in log_lines if secret in line]
        assert not leaked, f"{secret!r} appears in {len(leaked)} log lines, e.g. {leaked[0][:300]}"
    stored = out.read_text()
    assert json.loads(stored)["objects"], "nothing was stored: the scenario did not run"
    for secret in SECRETS:
        assert secret not in stored, f"{secret!r} reached S3, DynamoDB or an API response"
