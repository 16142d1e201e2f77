"""dxops on the local cloud: clinical records over HTTP (SigV4) to the local REST API (as dxops
records, GA4GH Phenopackets and FHIR Bundles, and a bulk file dropped in the inbox), device
bindings through the API, device readings over real MQTT through the template's IoT rule, then
reconcile what landed in S3; the raw objects trigger the data-processing state machine (Glue ETL in
local Spark, data-quality gate, a published dataset version); its DatasetReady event starts the
training state machine (SageMaker training job, comparison, registration), a reviewer approves the
version through the API, the deployment state machine puts it on the endpoint (blue/green, smoke
test) and POST /predict answers; one patient is erased (GDPR); finally a larger model is trained
under the SageMaker container contract and evaluated on an independent cohort.

Writes artifacts/demo/summary.json and the model's evaluation report in artifacts/model/.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3

from cohorts import CohortConfig, CohortGenerator, build_catalog
from cohorts.drift import scenario as drift_scenario
from cohorts.malformed import damage, malformed_choice
from cohorts.output import write_cohort
from devices.simulator import (
    MqttEndpoint,
    SimulationConfig,
    bindings,
    generate_fleet_messages,
    make_devices,
    publish_messages,
)
from localcloud import cloudwatch, events
from localcloud.api_gateway import serve_api
from localcloud.cloud import LocalCloud
from localcloud.event_sources import drain
from localcloud.http_client import call_api
from localcloud.iot import start_rules_bridge
from localcloud.mqtt_broker import LocalMqttBroker
from ml.evaluate import evaluate as evaluate_model
from ml.model import DiagnosisModel

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "demo"
RECORDS, BAD_SHARE, BATCH = 400, 0.08, 100
DEVICES, READINGS, READINGS_PER_MESSAGE, DEVICE_INVALID_RATE = 6, 30, 5, 0.1
# Raw objects landing within one window start one data-processing run (template default 900 s;
# short here so that the demo's run starts soon after ingestion).
TRIGGER_WINDOW_SECONDS = 20
RARE_DISEASES = 50
# Monitoring at demo speed: a one-minute window, one drifted window alarms, retraining may start a
# minute after the previous training started (the template's defaults: an hour, 3 windows, 6 hours).
MONITORING_PERIOD_SECONDS, DRIFT_SCENARIO, TRAFFIC = 60, "new-site", 300


CONSOLE = sys.stdout  # the handlers' stdout (JSON logs, EMF metrics) goes to a log file instead


def say(text: str) -> None:
    print(text, file=CONSOLE, flush=True)


def step(text: str) -> None:
    say(f"\n== {text}")


def synthetic_cohort(seed: int = 7) -> tuple[list[dict[str, Any]], dict[int, str], Counter[str]]:
    """Records of the cohort simulator (HPO-grounded common and rare diseases), BAD_SHARE damaged."""
    generator = CohortGenerator(
        CohortConfig(records=RECORDS, seed=seed, monitored_rate=0.0), build_catalog(rare_count=RARE_DISEASES)
    )
    records, defects, kinds = [], {}, Counter[str]()
    for patient in generator:
        kinds[patient.kind] += 1
        defect = malformed_choice(seed, patient.index, BAD_SHARE)
        records.append(damage(patient.record, defect, seed, patient.index) if defect else patient.record)
        if defect:
            defects[patient.index] = defect
    return records, defects, kinds


def ingest_clinical(
    api_url: str, records: list[dict[str, Any]], defects: dict[int, str], kinds: Counter[str]
) -> dict[str, Any]:
    step(
        f"POST /records: {RECORDS} simulated records ({kinds['common']} common, {kinds['rare']} rare diseases), "
        f"batches of {BATCH}, {len(defects)} damaged on purpose"
    )
    accepted = rejected = 0
    statuses: Counter[int] = Counter()
    for start in range(0, RECORDS, BATCH):
        key = {"Idempotency-Key": f"demo-batch-{start:05d}"}
        response = call_api(f"{api_url}/records", "POST", records[start : start + BATCH], headers=key)
        statuses[response.status] += 1
        accepted += response.body["accepted"]
        rejected += response.body["rejected"]
        say(
            f"  batch {start // BATCH + 1}: HTTP {response.status}, accepted {response.body['accepted']}, "
            f"rejected {response.body['rejected']}"
        )
    retry = call_api(f"{api_url}/records", "POST", records[:BATCH], headers={"Idempotency-Key": "demo-batch-00000"})
    say(f"  retry of batch 1 with the same Idempotency-Key: HTTP {retry.status} (answered, not stored again)")
    return {
        "sent": RECORDS,
        "accepted": accepted,
        "rejected": rejected,
        "diseases": dict(kinds),
        "defects_injected": dict(Counter(defects.values())),
        "duplicates_sent": sum(1 for d in defects.values() if d == "duplicate"),
        "http_statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _examples(folder: str, valid_only: bool = False) -> list[Any]:
    paths = sorted((EXAMPLES / folder).glob("*.json"))
    return [json.loads(p.read_text()) for p in paths if not (valid_only and p.name.startswith("invalid"))]


def ingest_standards(cloud: LocalCloud, api_url: str, site: str) -> dict[str, Any]:
    """Phenopackets and FHIR Bundles (examples/, hand-written from the specs, invalid ones included)
    by API and as a bulk file in the inbox: the same validation, pseudonymisation and quarantine."""
    step("GA4GH Phenopackets and FHIR R4 Bundles: POST /phenopackets, POST /fhir/bundles, a bulk file in inbox/")
    phenopackets, bundles = _examples("phenopackets"), _examples("fhir")
    totals: Counter[str] = Counter()
    for route, documents in (("phenopackets", phenopackets), ("fhir/bundles", bundles)):
        response = call_api(
            f"{api_url}/{route}?source={site}",
            "POST",
            documents,
            headers={"Idempotency-Key": f"demo-{route.replace('/', '-')}"},
        )
        result = response.body
        notes = sum(len(r["notes"]) for r in result["mapping_notes"])
        say(
            f"  POST /{route}: HTTP {response.status}, {len(documents)} files -> {result['documents']} documents -> "
            f"{result['received']} records: {result['accepted']} stored, {result['rejected']} rejected (quarantined), "
            f"{notes} parts not mapped (reported)"
        )
        for error in result["errors"][:3]:
            say(f"    rejected #{error['index']}: {error['errors'][0]['path']}: {error['errors'][0]['message']}")
        for key in ("received", "accepted", "rejected"):
            totals[key] += result[key]
        totals["parts_not_mapped"] += notes
    valid = _examples("phenopackets", valid_only=True)
    s3 = boto3.client("s3", endpoint_url=cloud.endpoint)
    bucket = cloud.outputs["RawBucketName"]
    # a consortium's export for another site: NDJSON, one phenopacket (or Cohort) per line
    inbox_key = f"inbox/phenopackets/{site}-consortium/export.ndjson"
    s3.put_object(Bucket=bucket, Key=inbox_key, Body="\n".join(json.dumps(d) for d in valid).encode())
    stats = drain(cloud).get("IngestInboxFunctionInboxFiles")
    reports = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="reports/inbox/").get("Contents", [])]
    [report] = [json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in reports]
    say(
        f"  inbox file of {report['documents']} phenopackets: {report['accepted']} stored, {report['rejected']} "
        f"rejected; report {reports[0]}; the file is deleted"
    )
    for key in ("received", "accepted", "rejected"):
        totals[key] += report[key]
    left_in_inbox = s3.list_objects_v2(Bucket=bucket, Prefix="inbox/").get("KeyCount", 0)
    return {
        **totals,
        "inbox_files_ingested": stats.deleted if stats else 0,
        "checks": {
            "standards_received_equal_accepted_plus_rejected": totals["received"]
            == totals["accepted"] + totals["rejected"],
            "standards_invalid_documents_rejected": totals["rejected"] > 0,
            "inbox_file_ingested_and_deleted": bool(stats and stats.deleted == 1) and left_in_inbox == 0,
        },
    }


def monitored_patients(records: list[dict[str, Any]], defects: dict[int, str]) -> tuple[str, list[str]]:
    """DEVICES patients of one site among the undamaged records: the devices are bound to them."""
    intact = [r for i, r in enumerate(records) if i not in defects]
    site = str(intact[0]["source"])
    return site, [str(r["patient_id"]) for r in intact if r["source"] == site][:DEVICES]


def ingest_devices(cloud: LocalCloud, api_url: str, site: str, patient_ids: list[str]) -> dict[str, Any]:
    step(
        f"MQTT: {DEVICES} devices x {READINGS} readings, {READINGS_PER_MESSAGE} per message, "
        f"{DEVICE_INVALID_RATE:.0%} defective messages"
    )
    devices = make_devices(DEVICES, site, seed=7, patient_ids=patient_ids)
    for device_id, body in bindings(devices).items():
        response = call_api(f"{api_url}/devices/{device_id}/binding", "PUT", body)
        if response.status != 200:
            raise RuntimeError(f"binding {device_id} failed: HTTP {response.status}")
    say(f"  PUT /devices/{{id}}/binding for {DEVICES} devices (the API pseudonymises; devices send no identity)")
    with LocalMqttBroker() as broker:
        say(f"  broker mqtt://{broker.address}; IoT rule from template.yaml subscribed")
        bridge, actions = start_rules_bridge(cloud, broker.host, broker.port)
        try:
            start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
            config = SimulationConfig(
                start=start, readings=READINGS, batch=READINGS_PER_MESSAGE, seed=7, invalid_rate=DEVICE_INVALID_RATE
            )
            messages = generate_fleet_messages(devices, config)
            published = publish_messages(messages, MqttEndpoint(broker.host, broker.port))
            say(f"  published {published.messages} messages ({published.invalid} defective), all acknowledged")
            deadline = time.monotonic() + 10
            while sum(a.delivered + a.errors for a in actions.values()) < published.messages:
                if time.monotonic() > deadline:
                    raise RuntimeError("the rules bridge did not deliver every message in time")
                time.sleep(0.05)
        finally:
            bridge.stop()
    # Drains every queue (the dataset trigger's too: the readings' S3 objects are raw data).
    polls = {name: stats for name, stats in drain(cloud).items() if name.startswith("IngestDeviceFunction")}
    for name, stats in polls.items():
        say(f"  {name}: {stats.invocations} invocations of the device function, {stats.deleted} messages processed")
    return {
        "messages_published": published.messages,
        "defective_messages": published.invalid,
        "readings_in_valid_messages": published.readings,
        "rule_deliveries": sum(a.delivered for a in actions.values()),
        "rule_errors": sum(a.errors for a in actions.values()),
        "function_invocations": sum(s.invocations for s in polls.values()),
        "messages_processed_by_function": sum(s.deleted for s in polls.values()),
    }


def reconcile(
    cloud: LocalCloud, clinical: dict[str, Any], standards: dict[str, Any], devices: dict[str, Any]
) -> dict[str, Any]:
    bucket = cloud.outputs["RawBucketName"]
    stored = {
        "raw_clinical_records": len(cloud.ndjson_lines(bucket, "raw/clinical/")),
        "quarantined_clinical_records": len(cloud.ndjson_lines(bucket, "quarantine/clinical/")),
        "raw_device_readings": len(cloud.ndjson_lines(bucket, "raw/device/")),
        "quarantined_device_messages": len(cloud.ndjson_lines(bucket, "quarantine/device/ingest_date")),
        "device_rule_errors": len(cloud.ndjson_lines(bucket, "quarantine/device/rule-errors/")),
    }
    checks = {
        # records sent, and records found in the Phenopackets and FHIR Bundles (or documents refused whole)
        "clinical_sent_equals_stored_plus_quarantined": clinical["sent"] + standards["received"]
        == stored["raw_clinical_records"] + stored["quarantined_clinical_records"],
        # every damaged record is refused, except duplicates (valid records: the ETL deduplicates them)
        "clinical_quarantined_equal_damaged_records": stored["quarantined_clinical_records"]
        == sum(clinical["defects_injected"].values()) - clinical["duplicates_sent"] + standards["rejected"],
        "device_published_equals_rule_deliveries_plus_rule_errors": devices["messages_published"]
        == devices["rule_deliveries"] + devices["rule_errors"],
        "device_rule_deliveries_all_processed": devices["rule_deliveries"] == devices["messages_processed_by_function"],
        "device_readings_stored_equal_readings_in_valid_messages": stored["raw_device_readings"]
        == devices["readings_in_valid_messages"],
        "device_defects_all_quarantined": devices["defective_messages"]
        == stored["quarantined_device_messages"] + stored["device_rule_errors"],
    }
    step("What landed in S3 (raw zone and quarantine)")
    for name, count in stored.items():
        say(f"  {name:32s} {count}")
    for name, ok in checks.items():
        say(f"  {'OK  ' if ok else 'FAIL'} {name}")
    return {"stored": stored, "checks": checks}


def _executions(cloud: LocalCloud, machine_output: str) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions", endpoint_url=cloud.endpoint)
    return [dict(e) for e in sfn.list_executions(stateMachineArn=cloud.outputs[machine_output])["executions"]]


def _wait_for_runs(cloud: LocalCloud, machine_output: str, timeout: float) -> list[dict[str, Any]]:
    """Every execution of a state machine, once none is running (the trigger window's wait included)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = _executions(cloud, machine_output)
        if runs and all(r["status"] != "RUNNING" for r in runs):
            sfn = boto3.client("stepfunctions", endpoint_url=cloud.endpoint)
            return [dict(sfn.describe_execution(executionArn=r["executionArn"])) for r in runs]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{machine_output}: runs still going after {timeout} s")
        time.sleep(1)


def process_data(cloud: LocalCloud, stored: dict[str, int]) -> dict[str, Any]:
    step(
        f"Data processing: raw objects -> trigger window ({TRIGGER_WINDOW_SECONDS} s) -> Glue ETL (local Spark) "
        "-> data-quality gate -> dataset version"
    )
    drain(cloud)  # the device objects' S3 events reach the trigger too
    runs = _wait_for_runs(cloud, "DataProcessingStateMachineArn", timeout=900)
    summaries = []
    for run in sorted(runs, key=lambda r: r["startDate"]):
        output = json.loads(run.get("output") or "{}")
        seconds = (run["stopDate"] - run["startDate"]).total_seconds()
        say(f"  run {run['name']}: {run['status']} in {seconds:.0f} s {run.get('error', '')}")
        summaries.append(
            {
                "name": run["name"],
                "status": run["status"],
                "error": run.get("error"),
                "seconds": round(seconds, 1),
                **output,
            }
        )
    glue = boto3.client("glue", endpoint_url=cloud.endpoint)
    table = glue.get_table(DatabaseName=cloud.outputs["CatalogDatabaseName"], Name=cloud.outputs["CuratedTableName"])
    parameters = table["Table"].get("Parameters", {})
    if "manifest_uri" not in parameters:
        return {"runs": summaries, "published": None, "checks": {"a_dataset_version_was_published": False}}
    s3 = boto3.client("s3", endpoint_url=cloud.endpoint)
    bucket, key = parameters["manifest_uri"].removeprefix("s3://").split("/", 1)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    report = json.loads(s3.get_object(Bucket=bucket, Key=key.replace("manifest.json", "dq_report.json"))["Body"].read())
    rows = manifest["rows"]
    (ARTIFACTS / "dataset").mkdir(exist_ok=True)
    (ARTIFACTS / "dataset" / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (ARTIFACTS / "dataset" / "dq_report.json").write_text(json.dumps(report, indent=2) + "\n")
    say(f"  published {manifest['dataset_version']} ({manifest['content_hash'][:19]}...)")
    say(
        f"  rows: {rows['clinical_lines_in']} raw lines = {rows['curated']} curated + "
        f"{rows['clinical_duplicates']} duplicates + {rows['clinical_quarantined']} quarantined"
    )
    outcomes, rules = Counter(r["status"] for r in report["rules"]), {r["rule"] for r in report["rules"]}
    say(
        f"  data quality: {report['status']} ({len(rules)} rules, {len(report['rules'])} checks: "
        f"{outcomes['pass']} passed, {outcomes['fail']} failed, {outcomes['skipped']} skipped)"
    )
    checks = {
        "a_dataset_version_was_published": True,
        "every_run_ended_published_or_unchanged": all(r["status"] == "SUCCEEDED" for r in runs),
        "raw_clinical_lines_reconcile_with_the_dataset": rows["clinical_lines_in"] == stored["raw_clinical_records"]
        and rows["clinical_lines_in"] == rows["curated"] + rows["clinical_duplicates"] + rows["clinical_quarantined"],
        "device_readings_reconcile_with_the_dataset": rows["reading_lines_in"] == stored["raw_device_readings"],
    }
    for name, ok in checks.items():
        say(f"  {'OK  ' if ok else 'FAIL'} {name}")
    return {
        "runs": summaries,
        "published": {
            "dataset_version": manifest["dataset_version"],
            "content_hash": manifest["content_hash"],
            "rows": rows,
            "class_counts": manifest["class_counts"],
            "source_objects": manifest["source_objects"],
            "dq": {
                "status": report["status"],
                "ruleset": manifest["dq_ruleset"],
                "rules": {r["id"]: r["status"] for r in report["rules"]},
            },
            "manifest": str(ARTIFACTS / "dataset" / "manifest.json"),
        },
        "checks": checks,
    }


LIFECYCLE_HYPERPARAMETERS = {"candidates": "logreg+class_weights,xgboost+class_weights", "repeats": "1"}
PREDICTION_REQUESTS, PREDICTION_BATCH = 20, 10


def _sfn(cloud: LocalCloud) -> Any:
    return boto3.client("stepfunctions", endpoint_url=cloud.endpoint)


def _wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(1)
    return value


def model_lifecycle(cloud: LocalCloud, api_url: str, dataset_version: str) -> dict[str, Any]:
    step("Model lifecycle: DatasetReady -> training job -> comparison -> registry -> approval -> deployment")
    run_name = f"dataset-{dataset_version}"
    training = _wait(
        lambda: [e for e in _executions(cloud, "TrainingStateMachineArn") if e["name"] == run_name], 60, run_name
    )[0]
    say(f"  DatasetReady started training run {training['name']}")
    versions = _wait(lambda: call_api(f"{api_url}/models", "GET").body, 900, "a registered model version")
    version = versions[0]
    say(
        f"  registered model version {version['package_version']} ({version['model_version']}): "
        + ", ".join(f"{k} {v:.3f}" for k, v in version["metrics"].items() if v is not None)
    )
    approval_url = f"{api_url}/models/{version['package_version']}/approval"
    say(f"  awaiting review (waitForTaskToken); the demo reviews it: POST {approval_url.removeprefix(api_url)}")
    decision = call_api(
        approval_url,
        "POST",
        {"decision": "approve", "rationale": "Demo review: metrics and model card read; approved for the demo."},
    )
    say(f"  approval: HTTP {decision.status}, {decision.body.get('status')} by {decision.body.get('decided_by')}")
    sfn = _sfn(cloud)
    deployments = _wait(lambda: _executions(cloud, "DeploymentStateMachineArn"), 120, "a deployment")
    deployment = _wait(
        lambda: (d := sfn.describe_execution(executionArn=deployments[0]["executionArn"]))["status"] != "RUNNING" and d,
        600,
        "the deployment",
    )
    say(f"  deployment {deployment['name']}: {deployment['status']}")
    endpoint_name = cloud.outputs["EndpointName"]
    endpoint = boto3.client("sagemaker", endpoint_url=cloud.endpoint).describe_endpoint(EndpointName=endpoint_name)
    say(f"  endpoint {endpoint_name}: {endpoint['EndpointStatus']} ({endpoint['EndpointConfigName']})")
    step(
        f"POST /predict: {PREDICTION_REQUESTS} requests of 1 record and 1 batch of {PREDICTION_BATCH}; POST /diagnoses"
    )
    # Patients the model never saw (another seed of the simulator), as a hospital would send them.
    records, defects, _ = synthetic_cohort(seed=11)
    intact = [r for i, r in enumerate(records) if i not in defects and r.get("diagnosis")][: PREDICTION_REQUESTS + 10]
    statuses: Counter[int] = Counter()
    served, hits = 0, 0
    for record in intact[:PREDICTION_REQUESTS]:
        answer = call_api(f"{api_url}/predict", "POST", {"records": [record], "top_k": 3, "explain": True})
        statuses[answer.status] += 1
        if answer.status == 200:
            served += len(answer.body["predictions"])
            top3 = [d["code"] for d in answer.body["predictions"][0]["diagnoses"][:3]]
            hits += record["diagnosis"]["code"] in top3
    batch = call_api(f"{api_url}/predict", "POST", {"records": intact[:PREDICTION_BATCH], "top_k": 3, "explain": False})
    statuses[batch.status] += 1
    served += len(batch.body.get("predictions", [])) if batch.status == 200 else 0
    say(
        f"  HTTP statuses {dict(statuses)}; {served} predictions served; confirmed diagnosis in the top 3 for "
        f"{hits} of {PREDICTION_REQUESTS} new patients (a model of {RECORDS} records: a demonstration, not a figure)"
    )
    confirmed = [
        {
            "record_id": r["record_id"],
            "source": r["source"],
            "patient_id": r["patient_id"],
            "diagnosis": {"code": r["diagnosis"]["code"], "status": "confirmed"},
            "confirmed_at": r["encounter_date"],
        }
        for r in intact[:PREDICTION_REQUESTS]
    ]
    labels = call_api(f"{api_url}/diagnoses", "POST", {"diagnoses": confirmed})
    say(f"  POST /diagnoses: HTTP {labels.status}, {labels.body.get('stored')} confirmed diagnoses stored")
    # An EHR: a FHIR Bundle in, FHIR RiskAssessments (one per Encounter) out, in its own references.
    ehr_bundle = json.loads((EXAMPLES / "fhir" / "two-encounters-urn-uuid.json").read_text())
    fhir_json = {"Content-Type": "application/fhir+json"}
    fhir = call_api(f"{api_url}/fhir/predict?source={intact[0]['source']}", "POST", ehr_bundle, headers=fhir_json)
    assessments = [e["resource"] for e in fhir.body.get("entry", [])] if fhir.status == 200 else []
    served += len(assessments)
    for assessment in assessments[:2]:
        top = assessment.get("prediction", [{}])[0]
        outcome = top.get("outcome", {}).get("coding", [{}])[0]
        say(
            f"  POST /fhir/predict: RiskAssessment for {assessment['subject']['reference']}: "
            f"{outcome.get('system')}|{outcome.get('code')} p={top.get('probabilityDecimal')}"
        )
    (ARTIFACTS / "fhir-risk-assessments.json").write_text(json.dumps(fhir.body, indent=2) + "\n")
    stored = len(cloud.ndjson_lines(cloud.outputs["MonitoringBucketName"], "predictions/"))
    shown = call_api(f"{api_url}/models/{version['package_version']}", "GET").body
    checks = {
        "dataset_ready_started_one_training": len(_executions(cloud, "TrainingStateMachineArn")) == 1,
        "version_approved_through_the_api": decision.status == 200 and shown["approval_status"] == "Approved",
        "deployment_succeeded": deployment["status"] == "SUCCEEDED" and endpoint["EndpointStatus"] == "InService",
        "predict_answered_every_request": set(statuses) == {200},
        "fhir_predict_answered_risk_assessments": fhir.status == 200
        and len(assessments) > 0
        and all(a["resourceType"] == "RiskAssessment" for a in assessments),
        "predictions_stored_for_monitoring": stored == served,
    }
    for name, ok in checks.items():
        say(f"  {'OK  ' if ok else 'FAIL'} {name}")
    return {
        "training_run": training["name"],
        "model": {
            "package_version": shown["package_version"],
            "model_version": shown["model_version"],
            "dataset_version": shown["dataset_version"],
            "metrics": shown["metrics"],
            "evidence_uri": shown["evidence_uri"],
        },
        "approval": shown["approval"],
        "endpoint": {
            "name": endpoint_name,
            "status": endpoint["EndpointStatus"],
            "config": endpoint["EndpointConfigName"],
            "deployment": deployment["name"],
        },
        "predictions_served": served,
        "predictions_stored": stored,
        "top3_hits_new_patients": f"{hits}/{PREDICTION_REQUESTS}",
        "diagnoses_stored": labels.body.get("stored"),
        "checks": checks,
    }


def _serve(api_url: str, records: list[dict[str, Any]]) -> int:
    """POST /predict in batches of 100; the predictions served."""
    served = 0
    for first in range(0, len(records), 100):
        answer = call_api(f"{api_url}/predict", "POST", {"records": records[first : first + 100], "explain": False})
        if answer.status != 200:
            raise RuntimeError(f"POST /predict answered {answer.status}")
        served += len(answer.body["predictions"])
    return served


def _monitor(cloud: LocalCloud) -> dict[str, Any]:
    """One run of the monitoring state machine (as EventBridge Scheduler starts it); its summary."""
    sfn = _sfn(cloud)
    arn = sfn.start_execution(stateMachineArn=cloud.outputs["MonitoringStateMachineArn"])["executionArn"]
    run = _wait(lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d, 300, "monitoring")
    if run["status"] != "SUCCEEDED":
        raise RuntimeError(f"monitoring run {run['name']}: {run['status']}")
    return dict(json.loads(run["output"]))


def _drift_line(summary: dict[str, Any]) -> str:
    if summary["drift_status"] not in {"ok", "drift"}:
        return f"{summary['drift_status']} ({summary['drift_samples']} predictions)"
    drifted = ", ".join(
        f"{f['name']} ({f['test']} {f['statistic']:.3g}"
        + (f", p {f['p_value']:.2g})" if f["p_value"] is not None else ")")
        for f in summary["drifted_features"][:5]
    )
    return (
        f"{summary['drift_status']}: {len(summary['drifted_features'])} of {summary['features_tested']} features "
        f"drifted over {summary['drift_samples']} predictions" + (f" - {drifted}" if drifted else "")
    )


def monitoring_and_retraining(cloud: LocalCloud, api_url: str, first: dict[str, Any]) -> dict[str, Any]:
    step(
        f"Monitoring: traffic like the training data, then a drift scenario ({DRIFT_SCENARIO}) -> drift detected -> "
        "alarm -> retraining through the guard -> review -> deployment"
    )
    catalog = build_catalog(rare_count=RARE_DISEASES)

    def cohort(name: str, start: int) -> list[dict[str, Any]]:
        config = CohortConfig(records=start + TRAFFIC, seed=11, monitored_rate=0.0, scenario=drift_scenario(name))
        return [p.record for p in CohortGenerator(config, catalog).stream(start, start + TRAFFIC)]

    served = _serve(api_url, cohort("baseline", 1000))
    baseline_served = time.monotonic()
    quiet = _monitor(cloud)
    say(f"  {served} predictions of new patients like the training data; the monitor: {_drift_line(quiet)}")
    say(f"  waiting for the next monitoring window ({MONITORING_PERIOD_SECONDS} s at demo speed)")
    time.sleep(max(0.0, MONITORING_PERIOD_SECONDS + 1 - (time.monotonic() - baseline_served)))
    drifted_served = _serve(api_url, cohort(DRIFT_SCENARIO, 2000))
    drift = _monitor(cloud)
    say(
        f"  {drifted_served} predictions of the {DRIFT_SCENARIO} scenario: {drift_scenario(DRIFT_SCENARIO).description}"
    )
    say(f"  the monitor: {_drift_line(drift)}")
    say(f"  report: {drift['report_uri']}")
    cw = boto3.client("cloudwatch", endpoint_url=cloud.endpoint)
    alarm_name = cloud.physical_id("DriftAlarm")
    _wait(
        lambda: cw.describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"][0]["StateValue"] == "ALARM",
        60,
        "the drift alarm",
    )
    say(f"  alarm {alarm_name}: ALARM -> EventBridge -> StartTrainingFunction (retraining guard)")
    retrain = _wait(
        lambda: [e for e in _executions(cloud, "TrainingStateMachineArn") if e["name"].startswith("retrain-")],
        60,
        "a retraining run",
    )[0]
    say(f"  retraining run {retrain['name']}")
    # The alarm fires again while it trains (a flapping metric): the guard suppresses and records it.
    cw.set_alarm_state(AlarmName=alarm_name, StateValue="OK", StateReason="demo: back to normal")
    cw.set_alarm_state(AlarmName=alarm_name, StateValue="ALARM", StateReason="demo: drifted again")
    triggers = _wait(
        lambda: [
            t
            for t in call_api(f"{api_url}/trainings/triggers", "GET").body
            if t["outcome"] == "suppressed" and dt.datetime.fromisoformat(t["at"]) > retrain["startDate"]
        ],
        30,
        "the suppressed trigger",
    )
    say(f"  alarm again while it trains: suppressed ({triggers[-1]['suppressed_because']}: {triggers[-1]['detail']})")
    second = _wait(
        lambda: [
            v for v in call_api(f"{api_url}/models", "GET").body if v["package_version"] != first["package_version"]
        ],
        900,
        "the retrained version",
    )[0]
    say(
        f"  registered model version {second['package_version']} ({second['model_version']}); the demo reviews it "
        f"(ApprovalPolicy manual): POST /models/{second['package_version']}/approval"
    )
    decision = call_api(
        f"{api_url}/models/{second['package_version']}/approval",
        "POST",
        {"decision": "approve", "rationale": "Demo review: retrained after drift; comparison and evidence read."},
    )
    sfn = _sfn(cloud)
    deployment = _wait(
        lambda: [
            d
            for e in _executions(cloud, "DeploymentStateMachineArn")
            if (d := sfn.describe_execution(executionArn=e["executionArn"]))["status"] != "RUNNING"
            and json.loads(d["input"]).get("package_version") == second["package_version"]
        ],
        600,
        "the new version's deployment",
    )[0]
    models = {v["package_version"]: v for v in call_api(f"{api_url}/models", "GET").body}
    evidence_uri = models[second["package_version"]]["evidence_uri"]
    bucket, key = evidence_uri.removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3", endpoint_url=cloud.endpoint)
    request = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["request"]
    say(
        f"  deployment {deployment['name']}: {deployment['status']}; versions: "
        + ", ".join(
            f"{v} ({m['deployment_status'] or m['approval_status']}{', champion' if m['champion'] else ''})"
            for v, m in sorted(models.items())
        )
    )
    checks = {
        "no_drift_on_traffic_like_the_training_data": quiet["drift_status"] == "ok",
        "drift_scenario_detected": drift["drift_status"] == "drift",
        "drift_alarm_started_one_retraining": len(
            [e for e in _executions(cloud, "TrainingStateMachineArn") if e["name"].startswith("retrain-")]
        )
        == 1,
        "retrained_version_carries_the_drift_evidence": request["reason"] == "retraining-trigger"
        and request["evidence"]["monitoring"]["drift_status"] == "drift",
        "retrained_version_approved_and_deployed": decision.status == 200
        and deployment["status"] == "SUCCEEDED"
        and models[second["package_version"]]["champion"],
    }
    for name, ok in checks.items():
        say(f"  {'OK  ' if ok else 'FAIL'} {name}")
    return {
        "scenario": DRIFT_SCENARIO,
        "no_drift_window": {k: quiet[k] for k in ("drift_status", "drift_samples", "features_tested", "drift_share")},
        "drift_window": {
            k: drift[k]
            for k in (
                "drift_status",
                "drift_samples",
                "features_tested",
                "drift_share",
                "drifted_features",
                "report_uri",
            )
        },
        "retraining_run": retrain["name"],
        "trigger_evidence": request["evidence"]["alarm"],
        "suppressed_triggers": [{k: t[k] for k in ("run_name", "suppressed_because", "detail")} for t in triggers],
        "versions": {
            v: {k: m[k] for k in ("model_version", "approval_status", "deployment_status", "champion", "metrics")}
            for v, m in sorted(models.items())
        },
        "checks": checks,
    }


def erase_patient(cloud: LocalCloud, api_url: str, site: str, patient_id: str) -> dict[str, Any]:
    step("GDPR erasure of one patient (a monitored one: records, device readings and binding)")
    raw = cloud.outputs["RawBucketName"]
    response = call_api(f"{api_url}/erasure-requests", "POST", {"source": site, "patient_id": patient_id})
    request_id = response.body["request_id"]
    say(f"  POST /erasure-requests: HTTP {response.status}, request {request_id}")
    deadline = time.monotonic() + 600
    while (status := call_api(f"{api_url}/erasure-requests/{request_id}", "GET")).body.get("status") != "completed":
        if time.monotonic() > deadline or any(
            r["status"] == "FAILED" for r in _executions(cloud, "ErasureStateMachineArn")
        ):
            raise RuntimeError(f"erasure {request_id} did not complete")
        time.sleep(1)
    body = status.body
    say(
        f"  completed: {body['raw_lines_removed']} raw lines and {body['curated_rows_removed']} curated rows "
        f"removed, versions amended: {', '.join(body['versions_amended']) or 'none'}"
    )
    s3 = boto3.client("s3", endpoint_url=cloud.endpoint)
    sfn = boto3.client("stepfunctions", endpoint_url=cloud.endpoint)
    execution = _executions(cloud, "ErasureStateMachineArn")[0]
    pseudonym = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])["patient_pseudonym"]
    remaining = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=raw):
        for version in page.get("Versions", []):
            body = s3.get_object(Bucket=raw, Key=version["Key"], VersionId=version["VersionId"])["Body"].read()
            remaining += pseudonym.encode() in body
    checks = {
        "erased_patient_in_no_raw_object_version": remaining == 0,
        "erasure_request_completed": status.status == 200,
    }
    for name, ok in checks.items():
        say(f"  {'OK  ' if ok else 'FAIL'} {name}")
    return {"request_id": request_id, **{k: v for k, v in status.body.items() if k != "request_id"}, "checks": checks}


MODEL_ARTIFACTS = ARTIFACTS.parent / "model"
MODEL_COHORT, EVALUATION_COHORT = 3000, 1000
MODEL_HYPERPARAMETERS = {"candidates": "logreg+class_weights,xgboost+class_weights,xgboost+focal", "repeats": "1"}


def _simulated_table(records: int, seed: int, folder: Path) -> Path:
    catalog = build_catalog()
    write_cohort(folder, CohortConfig(records=records, seed=seed), catalog, curated=True, progress=False)
    return folder / "curated.csv"


def train_model() -> dict[str, Any]:
    """dxops-train under the SageMaker training container contract (a subprocess with SM_* set, as
    the local cloud's training jobs run it), dxops-evaluate on an independent cohort, dxops-rank."""
    step(f"Training the model on {MODEL_COHORT:,} simulated records (SageMaker container contract)")
    work = MODEL_ARTIFACTS / "work"
    channel = work / "input" / "data" / "train"
    _simulated_table(MODEL_COHORT, 7, channel)
    model_dir = MODEL_ARTIFACTS / "model"
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "SM_MODEL_DIR": str(model_dir),
        "SM_CHANNEL_TRAIN": str(channel),
        "SM_OUTPUT_DIR": str(work / "output"),
        "SM_HPS": json.dumps({**MODEL_HYPERPARAMETERS, "dataset_version": f"simulated-{MODEL_COHORT}-seed-7"}),
        "PYTHONPATH": os.pathsep.join([str(root / "layers" / "shared"), str(root)]),
    }
    began = time.perf_counter()
    job = subprocess.run([sys.executable, "-m", "ml.train"], env=env, check=False, capture_output=True, text=True)
    (work / "training.log").write_text(job.stderr + job.stdout, encoding="utf-8")
    train_seconds = round(time.perf_counter() - began, 1)
    evaluation = json.loads((model_dir / "evaluation.json").read_text()) if job.returncode == 0 else {}
    selected = evaluation.get("cross_validation", {}).get("selected")
    say(f"  trained in {train_seconds} s: selected {selected}; metric lines: {job.stdout.count('dxops-metric')}")
    step(f"Evaluating it on {EVALUATION_COHORT:,} other simulated records (dxops-evaluate)")
    holdout = _simulated_table(EVALUATION_COHORT, 8, work / "evaluation")
    metrics = evaluate_model(DiagnosisModel.load(model_dir), holdout, MODEL_ARTIFACTS) if job.returncode == 0 else {}
    for key in ("accuracy", "macro_f1", "top3_accuracy", "auc_macro_ovr", "ece"):
        say(f"  {key:24s} {metrics.get(key)}")
    say(f"  {'report':24s} {MODEL_ARTIFACTS / 'report.md'}")
    checks = {
        "model_trained": job.returncode == 0 and (model_dir / "model_card.md").exists(),
        "model_evaluated": bool(metrics) and (MODEL_ARTIFACTS / "report.md").exists(),
        "model_beats_chance": bool(metrics) and metrics["top3_accuracy"] > 0.5,
    }
    return {
        "train_seconds": train_seconds,
        "selected": selected,
        "test_split": {k: evaluation.get("test", {}).get(k) for k in ("accuracy", "macro_f1", "top3_accuracy")},
        "independent_cohort": {k: metrics.get(k) for k in ("accuracy", "macro_f1", "top3_accuracy", "ece")},
        "checks": checks,
    }


def main() -> int:
    started = time.perf_counter()
    step("Starting the local cloud (moto server) and deploying template.yaml")
    parameters = {
        "TriggerWindowSeconds": str(TRIGGER_WINDOW_SECONDS),
        "TriggerSettleSeconds": "2",
        # The model lifecycle at demo speed: instance hosting (blue/green, data capture) with short
        # waits, manual review (the demo is the reviewer), quick training settings.
        "InferenceMode": "instance",
        "BakeSeconds": "2",
        "DeploymentPollSeconds": "2",
        "ApprovalPolicy": "manual",
        "TrainingHyperparameters": json.dumps(LIFECYCLE_HYPERPARAMETERS),
        "MonitoringPeriodSeconds": str(MONITORING_PERIOD_SECONDS),
        "DriftAlarmPeriods": "1",
        "RetrainingCooldownSeconds": "60",
    }
    with LocalCloud.start(server=True, parameters=parameters) as cloud, serve_api(cloud) as api:
        api_url = api.base_url()
        say(f"  {'AWS endpoint':24s} {cloud.endpoint}")
        say(f"  {'REST API':24s} {api_url}")
        for name, value in cloud.outputs.items():
            say(f"  {name:24s} {value}")
        # The clocks of the local cloud, as `make localcloud` runs them: scheduled rules fire in
        # real time, alarms are evaluated every 2 s. Both stop with the local cloud.
        schedule_clock = events.start_scheduler(cloud)
        alarm_clock = cloudwatch.start_alarm_evaluator(2.0)
        scheduled_rules = sum(
            1
            for logical_id, kind in cloud.stack.types.items()
            if kind == "AWS::Events::Rule" and "ScheduleExpression" in cloud.stack.properties[logical_id]
        )
        say(f"  {'Clocks':24s} {scheduled_rules} scheduled rules on the clock, alarms evaluated every 2 s")
        # Handler logs (JSON, no PHI) would drown the story: they go to artifacts/demo/lambda.log.
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        records, defects, kinds = synthetic_cohort()
        site, monitored = monitored_patients(records, defects)
        with open(ARTIFACTS / "lambda.log", "w") as log, contextlib.redirect_stdout(log):
            clinical = ingest_clinical(api_url, records, defects, kinds)
            standards = ingest_standards(cloud, api_url, site)
            devices = ingest_devices(cloud, api_url, site, monitored)
        result = reconcile(cloud, clinical, standards, devices)
        with open(ARTIFACTS / "lambda.log", "a") as log, contextlib.redirect_stdout(log):
            processing = process_data(cloud, result["stored"])
            published = processing["published"]
            lifecycle = (
                model_lifecycle(cloud, api_url, published["dataset_version"])
                if published
                else {"checks": {"model_lifecycle_ran": False}}
            )
            monitoring = (
                monitoring_and_retraining(cloud, api_url, lifecycle["model"])
                if "model" in lifecycle
                else {"checks": {"monitoring_ran": False}}
            )
            erasure = erase_patient(cloud, api_url, site, monitored[0])
        clocks = {
            "scheduled_rules": scheduled_rules,
            "scheduled_fires": len(schedule_clock.fired),
            "alarm_evaluations": alarm_clock.evaluations,
        }
    model = train_model()
    summary = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "backend": "localcloud (moto server, REST API over HTTP, MQTT broker)",
        "ingestion": {"clinical": clinical, "standards": standards, "devices": devices, **result},
        "data_processing": processing,
        "model_lifecycle": lifecycle,
        "monitoring": monitoring,
        "erasure": erasure,
        "model": model,
        "clocks": clocks,
        "seconds": round(time.perf_counter() - started, 2),
    }
    (ARTIFACTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    say(f"\nsummary: {ARTIFACTS / 'summary.json'} ({summary['seconds']} s)")
    checks = {
        **result["checks"],
        **standards["checks"],
        **processing["checks"],
        **lifecycle["checks"],
        **monitoring["checks"],
        **erasure["checks"],
        **model["checks"],
    }
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
