"""python -m tools.models against a stub of the API (http.server in a thread): the routes and bodies
it sends, its SigV4 signature, the URL and region it chooses, its output and exit codes."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tools import models

ACCESS_KEY = "AKIDMODELSCLI"
SIGV4 = re.compile(
    rf"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/(\d{{8}})/eu-west-1/execute-api/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}"
)
VERSION = {"package_version": 3, "approval_status": "PendingManualApproval", "champion": False}


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class StubApi:
    """Canned answers by (method, path); records what it was sent."""

    url: str
    answers: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubApi]:
    stub = StubApi(url="")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            stub.received.append(Received(self.command, self.path, headers, json.loads(raw) if raw else None))
            if not SIGV4.fullmatch(headers.get("authorization", "")) or "x-amz-date" not in headers:
                status, body = 403, {"message": "Missing Authentication Token"}
            else:
                status, body = stub.answers.get((self.command, self.path), (404, {"message": "no such route"}))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_port}/dev"
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", models.API_URL_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "cli-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()


def run(api: StubApi, *argv: str) -> int:
    return models.main(["--api-url", api.url, *argv])


def test_list_sends_a_sigv4_signed_get_and_prints_the_json(api: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answers[("GET", "/dev/models")] = (200, [VERSION])
    assert run(api, "list") == 0
    assert json.loads(capsys.readouterr().out) == [VERSION]
    (request,) = api.received
    signed = SIGV4.fullmatch(request.headers["authorization"])
    assert signed is not None and {"host", "x-amz-date"} <= set(signed.group(2).split(";"))


def test_show_reads_one_version(api: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answers[("GET", "/dev/models/3")] = (200, VERSION)
    assert run(api, "show", "3") == 0
    assert json.loads(capsys.readouterr().out) == VERSION


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_decision_posts_it_with_the_rationale(
    api: StubApi, capsys: pytest.CaptureFixture[str], decision: str
) -> None:
    record = {"package_version": 3, "status": "Approved" if decision == "approve" else "Rejected"}
    api.answers[("POST", "/dev/models/3/approval")] = (200, record)
    assert run(api, decision, "3", "--rationale", "recall on rare diseases reviewed") == 0
    (request,) = api.received
    assert request.body == {"decision": decision, "rationale": "recall on rare diseases reviewed"}
    assert json.loads(capsys.readouterr().out) == record


def test_triggers_lists_the_recent_days_started_or_suppressed(api: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    listed = [{"run_name": "retrain-x", "outcome": "suppressed", "suppressed_because": "cooldown"}]
    api.answers[("GET", "/dev/trainings/triggers?days=7")] = (200, listed)
    assert run(api, "triggers", "--days", "7") == 0
    assert json.loads(capsys.readouterr().out) == listed


def test_rollback_posts_with_its_idempotency_key(api: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    started = {"from_version": 4, "to_version": 3, "run_name": "rollback-4-to-3"}
    api.answers[("POST", "/dev/models/rollback")] = (202, started)
    assert run(api, "rollback", "--idempotency-key", "incident-17") == 0
    (request,) = api.received
    assert (request.body, request.headers["idempotency-key"]) == (None, "incident-17")
    assert json.loads(capsys.readouterr().out) == started


def test_train_sends_the_dataset_version_hyperparameters_and_key(
    api: StubApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers[("POST", "/dev/trainings")] = (202, {"run_name": "manual-k1", "started": True})
    argv = ["train", "--dataset-version", "v20260101T000000Z-0123abcd", "--set", "max_depth=6", "--set", "eta=0.1"]
    assert run(api, *argv, "--idempotency-key", "k1") == 0
    (request,) = api.received
    assert request.body == {
        "dataset_version": "v20260101T000000Z-0123abcd",
        "hyperparameters": {"max_depth": "6", "eta": "0.1"},
    }
    assert request.headers["idempotency-key"] == "k1"
    assert json.loads(capsys.readouterr().out)["started"] is True


def test_train_without_options_sends_an_empty_request(api: StubApi) -> None:
    api.answers[("POST", "/dev/trainings")] = (202, {"run_name": "manual-x", "started": True})
    assert run(api, "train") == 0
    (request,) = api.received
    assert request.body == {"hyperparameters": {}} and "idempotency-key" not in request.headers


def test_an_api_error_exits_1_with_its_message(api: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answers[("POST", "/dev/models/3/approval")] = (
        409,
        {"error": "conflict", "message": "version 3 was decided already", "request_id": "req-1"},
    )
    assert run(api, "approve", "3", "--rationale", "ok") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "HTTP 409 conflict: version 3 was decided already" in captured.err and "req-1" in captured.err


def test_field_errors_and_gateway_errors_are_shown(api: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answers[("POST", "/dev/trainings")] = (
        422,
        {
            "error": "validation_failed",
            "message": "the request does not match its schema",
            "fields": [{"path": "dataset_version", "message": "String should match pattern", "type": "x"}],
        },
    )
    assert run(api, "train", "--dataset-version", "latest") == 1
    assert "dataset_version: String should match pattern" in capsys.readouterr().err
    assert run(api, "show", "9") == 1  # the stub's 404 for an unknown route: API Gateway's {message}
    assert "HTTP 404: no such route" in capsys.readouterr().err


def test_the_url_comes_from_the_environment(
    api: StubApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers[("GET", "/dev/models")] = (200, [])
    monkeypatch.setenv(models.API_URL_ENV, api.url + "/")
    assert models.main(["list"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_without_a_url_or_credentials_it_says_what_to_give(
    api: StubApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert models.main(["list"]) == 1
    assert "--api-url" in capsys.readouterr().err
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setattr(boto3.Session, "get_credentials", lambda self: None)
    assert run(api, "list") == 1
    assert "no AWS credentials" in capsys.readouterr().err
    assert api.received == []


def test_an_unreachable_api_exits_1(api: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert models.main(["--api-url", "http://127.0.0.1:9/dev", "--timeout", "2", "list"]) == 1
    assert "GET /models" in capsys.readouterr().err


def test_the_url_of_a_stack_is_its_api_url_output() -> None:
    client = boto3.client("cloudformation", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/dev"
    stack = {
        "StackName": "dxops-dev",
        "CreationTime": "2026-01-01T00:00:00Z",
        "StackStatus": "UPDATE_COMPLETE",
        "Outputs": [{"OutputKey": "RawBucketName", "OutputValue": "b"}, {"OutputKey": "ApiUrl", "OutputValue": url}],
    }
    with Stubber(client) as stubber:
        stubber.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": "dxops-dev"})
        assert models.stack_api_url(client, "dxops-dev") == url
        stubber.add_response("describe_stacks", {"Stacks": [{**stack, "Outputs": []}]}, {"StackName": "dxops-dev"})
        with pytest.raises(models.CliError, match="no ApiUrl output"):
            models.stack_api_url(client, "dxops-dev")


def test_the_signing_region_is_the_flag_else_the_execute_api_host_else_the_session() -> None:
    aws = "https://abc123.execute-api.us-east-2.amazonaws.com/prod"
    assert models.signing_region(aws, "eu-central-1", "eu-west-1") == "eu-central-1"
    assert models.signing_region(aws, None, "eu-west-1") == "us-east-2"
    assert models.signing_region("http://127.0.0.1:3000/dev", None, "eu-west-1") == "eu-west-1"
    with pytest.raises(models.CliError, match="--region"):
        models.signing_region("http://127.0.0.1:3000/dev", None, None)


@pytest.mark.parametrize("argv", [["show", "0"], ["approve", "3"], ["train", "--set", "no-equals"], []])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        models.main(["--api-url", "http://127.0.0.1:1/dev", *argv])
    assert exited.value.code == 2
