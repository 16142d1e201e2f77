"""Every function has sample events in events/<function folder>/, usable with `sam local invoke -e`,
and each of them runs through the real handler on the local cloud."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localcloud.cloud import LocalCloud
from localcloud.template import load_template

EVENTS = Path(__file__).resolve().parents[2] / "events"
FUNCTIONS = {logical: source.code_dir.name for logical, source in load_template().functions.items()}
SAMPLES = [
    (logical, path) for logical, folder in FUNCTIONS.items() for path in sorted((EVENTS / folder).glob("*.json"))
]


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_every_function_has_sample_events(logical_id: str) -> None:
    assert list((EVENTS / FUNCTIONS[logical_id]).glob("*.json")), f"events/{FUNCTIONS[logical_id]}/ has no sample"


@pytest.mark.parametrize(("logical_id", "path"), SAMPLES, ids=[f"{f}:{p.name}" for f, p in SAMPLES])
def test_sample_event_runs_through_the_handler(cloud: LocalCloud, logical_id: str, path: Path) -> None:
    response = cloud.invoke(logical_id, json.loads(path.read_text()))
    if "statusCode" in response:  # API Gateway proxy response
        assert response["statusCode"] in {200, 202}, response["body"][:500]
    else:  # SQS partial batch response: nothing failed item by item
        assert response == {"batchItemFailures": []}
