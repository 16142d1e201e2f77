"""dxops on the local cloud: clinical records over HTTP (SigV4) to the local REST API, device
bindings through the API, device readings over real MQTT through the template's IoT rule, then
reconcile what landed in S3.

Writes artifacts/demo/summary.json.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from cohorts import CohortConfig, CohortGenerator, build_catalog
from cohorts.malformed import damage, malformed_choice
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

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "demo"
RECORDS, BAD_SHARE, BATCH = 400, 0.08, 100
DEVICES, READINGS, READINGS_PER_MESSAGE, DEVICE_INVALID_RATE = 6, 30, 5, 0.1


CONSOLE = sys.stdout  # the handlers' stdout (JSON logs, EMF metrics) goes to a log file instead


def say(text: str) -> None:
    print(text, file=CONSOLE, flush=True)


def step(text: str) -> None:
    say(f"\n== {text}")


def synthetic_cohort(seed: int = 7) -> tuple[list[dict[str, Any]], dict[int, str], Counter[str]]:
    """Records of the cohort simulator (HPO-grounded common and rare diseases), BAD_SHARE damaged."""
    generator = CohortGenerator(
        CohortConfig(records=RECORDS, seed=seed, monitored_rate=0.0), build_catalog(rare_count=50)
    )
    records, defects, kinds = [], {}, Counter[str]()
    for patient in generator:
        kinds[patient.kind] += 1
        defect = malformed_choice(seed, patient.index, BAD_SHARE)
        records.append(damage(patient.record, defect, seed, patient.index) if defect else patient.record)
        if defect:
            defects[patient.index] = defect
    return records, defects, kinds


def ingest_clinical(api_url: str) -> dict[str, Any]:
    records, defects, kinds = synthetic_cohort()
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


def ingest_devices(cloud: LocalCloud, api_url: str) -> dict[str, Any]:
    step(
        f"MQTT: {DEVICES} devices x {READINGS} readings, {READINGS_PER_MESSAGE} per message, "
        f"{DEVICE_INVALID_RATE:.0%} defective messages"
    )
    devices = make_devices(DEVICES, "site-a", seed=7)
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
    polls = drain(cloud)
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


def reconcile(cloud: LocalCloud, clinical: dict[str, Any], devices: dict[str, Any]) -> dict[str, Any]:
    bucket = cloud.outputs["RawBucketName"]
    stored = {
        "raw_clinical_records": len(cloud.ndjson_lines(bucket, "raw/clinical/")),
        "quarantined_clinical_records": len(cloud.ndjson_lines(bucket, "quarantine/clinical/")),
        "raw_device_readings": len(cloud.ndjson_lines(bucket, "raw/device/")),
        "quarantined_device_messages": len(cloud.ndjson_lines(bucket, "quarantine/device/ingest_date")),
        "device_rule_errors": len(cloud.ndjson_lines(bucket, "quarantine/device/rule-errors/")),
    }
    checks = {
        "clinical_sent_equals_stored_plus_quarantined": clinical["sent"]
        == stored["raw_clinical_records"] + stored["quarantined_clinical_records"],
        # every damaged record is refused, except duplicates (valid records: the ETL deduplicates them)
        "clinical_quarantined_equal_damaged_records": stored["quarantined_clinical_records"]
        == sum(clinical["defects_injected"].values()) - clinical["duplicates_sent"],
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


def main() -> int:
    started = time.perf_counter()
    step("Starting the local cloud (moto server) and deploying template.yaml")
    with LocalCloud.start(server=True) as cloud, serve_api(cloud) as api:
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
        with open(ARTIFACTS / "lambda.log", "w") as log, contextlib.redirect_stdout(log):
            clinical = ingest_clinical(api_url)
            devices = ingest_devices(cloud, api_url)
        result = reconcile(cloud, clinical, devices)
        clocks = {
            "scheduled_rules": scheduled_rules,
            "scheduled_fires": len(schedule_clock.fired),
            "alarm_evaluations": alarm_clock.evaluations,
        }
    summary = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "backend": "localcloud (moto server, REST API over HTTP, MQTT broker)",
        "ingestion": {"clinical": clinical, "devices": devices, **result},
        "clocks": clocks,
        "seconds": round(time.perf_counter() - started, 2),
    }
    (ARTIFACTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    say(f"\nsummary: {ARTIFACTS / 'summary.json'} ({summary['seconds']} s)")
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
