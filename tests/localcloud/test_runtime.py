"""The local runtime isolates functions: environment, modules and loggers are their own."""

from __future__ import annotations

import json
import os
import sys

import pytest

from localcloud.cloud import LocalCloud
from localcloud.runtime import FunctionError
from tests.integration.api_events import load_event


def test_functions_get_their_own_environment_and_modules(cloud: LocalCloud) -> None:
    api, device = cloud.functions["IngestApiFunction"], cloud.functions["IngestDeviceFunction"]
    assert api.environment["POWERTOOLS_SERVICE_NAME"] == "ingest-api"
    assert "IDEMPOTENCY_TABLE" in api.environment and "IDEMPOTENCY_TABLE" not in device.environment
    before = dict(os.environ)
    cloud.invoke("IngestApiFunction", load_event("ingest_api/post_record.json"))
    cloud.invoke("IngestDeviceFunction", load_event("ingest_device/sqs_readings.json"))
    assert dict(os.environ) == before  # nothing leaks into the caller's environment
    api_settings = api._modules["dxops.settings"]
    device_settings = device._modules["dxops.settings"]
    assert api_settings is not device_settings  # each function imported the layer itself
    assert "app" not in sys.modules


def test_each_function_logs_under_its_own_service(cloud: LocalCloud, capsys: pytest.CaptureFixture[str]) -> None:
    cloud.invoke("IngestApiFunction", load_event("ingest_api/post_record.json"))
    cloud.invoke("IngestDeviceFunction", load_event("ingest_device/sqs_readings.json"))
    services = [json.loads(line).get("service") for line in capsys.readouterr().out.splitlines() if '"level"' in line]
    assert services == ["ingest-api", "ingest-device"]


def test_handler_errors_surface_as_function_errors(cloud: LocalCloud) -> None:
    with pytest.raises(FunctionError) as caught:
        cloud.invoke("IngestDeviceFunction", {"Records": "not a list"})
    assert caught.value.error_type == "ValidationError"
    assert caught.value.function == "IngestDeviceFunction"


def test_background_threads_never_see_the_environment_emptied(cloud: LocalCloud) -> None:
    """Pollers, clocks and job workers read os.environ while handlers run on other threads."""
    import threading

    missing: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for key in ("AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID"):
                if key not in os.environ:
                    missing.append(key)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(20):
            cloud.invoke("IngestDeviceFunction", load_event("ingest_device/sqs_readings.json"))
    finally:
        stop.set()
        watcher.join()
    assert missing == []
