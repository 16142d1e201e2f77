"""The template's REST API over real HTTP: routes, SigV4 auth (simulated), throttling, proxy events."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.api_gateway import LocalApi, serve_api
from localcloud.cloud import LocalCloud
from localcloud.http_client import LOCAL_CREDENTIALS, call_api
from tests.records import binding_request, clinical_record


def call(url: str, method: str, body: Any = None, signed: bool = True) -> tuple[int, dict[str, Any], dict[str, str]]:
    # A real SigV4 signature (botocore), as a hospital client sends it.
    response = call_api(url, method, body, credentials=LOCAL_CREDENTIALS if signed else None)
    return response.status, response.body, response.headers


@pytest.fixture
def api(cloud: LocalCloud) -> Iterator[LocalApi]:
    with serve_api(cloud) as local_api:
        yield local_api


def test_signed_post_reaches_the_handler_with_the_caller_identity(cloud: LocalCloud, api: LocalApi) -> None:
    status, body, _ = call(f"{api.base_url()}/records", "POST", clinical_record())
    assert status == 202, body
    assert body["stored_record_ids"] == ["rec-00000"]


def test_unsigned_or_unknown_routes_are_refused_like_api_gateway(api: LocalApi) -> None:
    assert call(f"{api.base_url()}/records", "POST", clinical_record(), signed=False)[:2] == (
        403,
        {"message": "Missing Authentication Token"},
    )
    assert call(f"{api.base_url()}/nowhere", "GET")[0] == 403
    assert call(f"{api.url}/other-stage/records", "POST", clinical_record())[0] == 403


def test_every_route_of_the_template_refuses_unsigned_requests_including_approvals(
    cloud: LocalCloud, api: LocalApi
) -> None:
    (rest_api,) = [r for r in cloud.template.cfn["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    routes = [(path, verb.upper()) for path, ops in rest_api["Properties"]["Body"]["paths"].items() for verb in ops]
    assert ("/models/{version}/approval", "POST") in routes and len(routes) >= 14
    for path, method in routes:
        url = api.base_url() + re.sub(r"\{[^}]+\}", "1", path)
        body = None if method in {"GET", "DELETE"} else {"decision": "approve", "rationale": "unsigned"}
        assert call(url, method, body, signed=False)[:2] == (403, {"message": "Missing Authentication Token"}), (
            method,
            path,
        )
    # Signed, the approval reaches the handler, which records the signed caller as the reviewer
    # (decided_by; tests/integration/test_model_lifecycle.py): here there is no version 1 to decide.
    status, body, _ = call(f"{api.base_url()}/models/1/approval", "POST", {"decision": "approve", "rationale": "ok"})
    assert status == 404, body


def test_path_parameters_and_methods(api: LocalApi) -> None:
    url = f"{api.base_url()}/devices/monitor-42/binding"
    status, body, _ = call(url, "PUT", binding_request())
    assert (status, body["device_id"]) == (200, "monitor-42")
    assert call(url, "DELETE")[0] == 204
    assert call(url, "DELETE")[0] == 404


def test_handler_error_bodies_and_headers_pass_through(api: LocalApi) -> None:
    status, body, headers = call(f"{api.base_url()}/records", "POST", [])
    assert (status, body["error"]) == (400, "malformed_request")
    assert headers["Content-Type"] == "application/json"


def test_bodies_that_are_not_utf8_and_unknown_query_parameters_are_refused_not_crashes(api: LocalApi) -> None:
    # Found by make fuzz: Powertools decodes a validated route's body as UTF-8 (a 500 before), and a
    # misspelt query parameter was silently ignored.
    for path in ("/erasure-requests", "/trainings", "/devices/monitor-1/binding"):
        method = "PUT" if path.endswith("binding") else "POST"
        status, body, _ = call(f"{api.base_url()}{path}", method, b"\xff\xfe{")
        assert (status, body["error"], body["fields"][0]["path"]) == (422, "validation_failed", "body"), path
    status, body, _ = call(f"{api.base_url()}/trainings/triggers?day=7", "GET")
    assert (status, body["fields"]) == (
        422,
        [{"path": "query.(unknown field)", "message": "unknown query parameter", "type": "extra_forbidden"}],
    )
    assert call(f"{api.base_url()}/trainings/triggers?days=7", "GET")[0] == 200


def test_stage_throttling_answers_429() -> None:
    throttled = {"ApiThrottlingRateLimit": "1", "ApiThrottlingBurstLimit": "2"}
    with LocalCloud.start(parameters=throttled) as cloud, serve_api(cloud) as api:
        statuses = [call(f"{api.base_url()}/openapi.json", "GET")[0] for _ in range(4)]
    assert statuses[:2] == [200, 200]
    assert 429 in statuses[2:]


def test_served_against_a_moto_server_shared_with_other_processes() -> None:
    import os
    import subprocess
    import sys

    with LocalCloud.start(server=True) as cloud, serve_api(cloud) as api:
        assert call(f"{api.base_url()}/records", "POST", clinical_record())[0] == 202
        probe = (
            "import boto3; s3 = boto3.client('s3'); "
            f"print(len(s3.list_objects_v2(Bucket={cloud.outputs['RawBucketName']!r})['Contents']))"
        )
        env = {**os.environ, **cloud.environment}
        other = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
        assert other.stdout.strip() == "1"  # another process sees what the API stored
