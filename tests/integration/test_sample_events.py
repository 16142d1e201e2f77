"""Every function has sample events in events/<function folder>/, usable with `sam local invoke -e`,
and each of them runs through the real handler on the local cloud."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localcloud.cloud import LocalCloud
from localcloud.template import load_template
from tests.integration.raw_zone import stored_lines

EVENTS = Path(__file__).resolve().parents[2] / "events"
FUNCTIONS = {logical: source.code_dir.name for logical, source in load_template().functions.items()}
SAMPLES = [
    (logical, path) for logical, folder in FUNCTIONS.items() for path in sorted((EVENTS / folder).glob("*.json"))
]


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_every_function_has_sample_events(logical_id: str) -> None:
    assert list((EVENTS / FUNCTIONS[logical_id]).glob("*.json")), f"events/{FUNCTIONS[logical_id]}/ has no sample"


# What each sample must produce: HTTP status, and the lines it leaves in the raw zone and quarantine.
EXPECTED = {
    "post_record.json": (202, 1, 0),
    "post_records_batch.json": (202, 2, 1),
    "get_openapi.json": (200, 0, 0),
    "put_device_binding.json": (200, 0, 0),
    "delete_device_binding.json": (204, 0, 0),
    # monitor-0001 (bound first): two readings stored, one message out of range; thermo-0002 unbound
    "sqs_readings.json": (None, 2, 2),
}
# Samples that need another one run first (as they would against a deployed stack).
PREREQUISITES = {
    "delete_device_binding.json": ("IngestApiFunction", "ingest_api/put_device_binding.json"),
    "sqs_readings.json": ("IngestApiFunction", "ingest_api/put_device_binding.json"),
}


def test_every_sample_has_an_expectation() -> None:
    assert {path.name for _, path in SAMPLES} == set(EXPECTED)


@pytest.mark.parametrize(("logical_id", "path"), SAMPLES, ids=[f"{f}:{p.name}" for f, p in SAMPLES])
def test_sample_event_runs_through_the_handler(cloud: LocalCloud, logical_id: str, path: Path) -> None:
    status, stored, quarantined = EXPECTED[path.name]
    if path.name in PREREQUISITES:
        function, event = PREREQUISITES[path.name]
        cloud.invoke(function, json.loads((EVENTS / event).read_text()))
    response = cloud.invoke(logical_id, json.loads(path.read_text()))
    if status is None:  # SQS: partial batch response
        assert response == {"batchItemFailures": []}
    else:
        assert response["statusCode"] == status, response["body"][:500]
    assert (len(stored_lines(cloud, "raw/")), len(stored_lines(cloud, "quarantine/"))) == (stored, quarantined)
