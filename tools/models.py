"""Review and operate the model lifecycle through the REST API, signed (SigV4) as your AWS identity.

    python -m tools.models --stack-name dxops-dev list
    python -m tools.models show 3
    python -m tools.models approve 3 --rationale "rare-disease recall reviewed"
    python -m tools.models reject 4 --rationale "calibration worse than the champion's"
    python -m tools.models rollback [--idempotency-key K]
    python -m tools.models train [--dataset-version V] [--set max_depth=6 ...] [--idempotency-key K]
    python -m tools.models triggers [--days 7]     every training trigger, started or suppressed (why)

The API's base URL is --api-url, else $DXOPS_API_URL, else the ApiUrl output of the stack named by
--stack-name (CloudFormation DescribeStacks; AWS_ENDPOINT_URL is honoured). Credentials come from
the usual boto3 chain (--profile, AWS_PROFILE, AWS_ACCESS_KEY_ID, SSO, ...); the reviewer recorded
with a decision is that identity. Requests are signed for execute-api in --region, else the region
of an execute-api URL, else the session's region. With the local cloud (`make localcloud` prints the
API URL and what to export):

    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=eu-west-1
    python -m tools.models --api-url http://127.0.0.1:3000/dev list

Prints the API's JSON answer. An error answer (4xx, 5xx) prints the API's message on stderr and
exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from localcloud.http_client import ApiResponse, call_api

API_URL_ENV = "DXOPS_API_URL"
STACK_OUTPUT = "ApiUrl"
EXECUTE_API_HOST = re.compile(r"[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")


class CliError(Exception):
    """Something the operator must fix (no URL, no credentials, ...): its message, and exit 1."""


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def api_request(args: argparse.Namespace) -> ApiRequest:
    """The API call a command makes."""
    key = {"Idempotency-Key": args.idempotency_key} if getattr(args, "idempotency_key", None) else {}
    if args.command == "list":
        return ApiRequest("GET", "/models")
    if args.command == "show":
        return ApiRequest("GET", f"/models/{args.version}")
    if args.command in ("approve", "reject"):
        decision = {"decision": args.command, "rationale": args.rationale}
        return ApiRequest("POST", f"/models/{args.version}/approval", decision)
    if args.command == "rollback":
        return ApiRequest("POST", "/models/rollback", headers=key)
    if args.command == "triggers":
        return ApiRequest("GET", f"/trainings/triggers?days={args.days}")
    body: dict[str, Any] = {"hyperparameters": dict(args.hyperparameters)}
    if args.dataset_version:
        body["dataset_version"] = args.dataset_version
    return ApiRequest("POST", "/trainings", body, key)


def stack_api_url(cloudformation: Any, stack_name: str) -> str:
    """The ApiUrl output of a deployed stack."""
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    for output in stack.get("Outputs", []):
        if output["OutputKey"] == STACK_OUTPUT:
            return str(output["OutputValue"])
    raise CliError(f"stack {stack_name} has no {STACK_OUTPUT} output")


def api_url(args: argparse.Namespace, session: Any) -> str:
    url = args.api_url or os.environ.get(API_URL_ENV)
    if not url and args.stack_name:
        url = stack_api_url(session.client("cloudformation"), args.stack_name)
    if not url:
        raise CliError(f"no API URL: give --api-url, set {API_URL_ENV}, or name the stack with --stack-name")
    if urlsplit(url).scheme not in ("http", "https"):
        raise CliError(f"the API URL must be http(s): {url}")
    return str(url).rstrip("/")


def signing_region(url: str, region: str | None, session_region: str | None) -> str:
    """--region, else the region an execute-api host names, else the session's."""
    on_aws = EXECUTE_API_HOST.fullmatch(urlsplit(url).hostname or "")
    chosen = region or (on_aws.group(1) if on_aws else None) or session_region
    if not chosen:
        raise CliError("no region to sign for: give --region or set AWS_DEFAULT_REGION")
    return chosen


def error_message(request: ApiRequest, response: ApiResponse) -> str:
    """The API's error (dxops: {error, message, request_id, fields}; API Gateway: {message})."""
    body = response.body if isinstance(response.body, dict) else {}
    message = body.get("message") or body.get("Message") or json.dumps(response.body)
    code = f" {body['error']}" if body.get("error") else ""
    lines = [f"{request.method} {request.path}: HTTP {response.status}{code}: {message}"]
    lines += [f"  {item.get('path', '')}: {item.get('message', '')}" for item in body.get("fields") or []]
    if body.get("request_id"):
        lines.append(f"  request id {body['request_id']}")
    return "\n".join(lines)


def key_value(text: str) -> tuple[str, str]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, not {text!r}")
    return key, value


def version_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a model version is a whole number from 1, not {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m tools.models",
        description="Review and operate the model lifecycle through the dxops API (SigV4-signed).",
    )
    cli.add_argument("--api-url", help=f"the API's base URL, stage included (default: ${API_URL_ENV})")
    cli.add_argument("--stack-name", help=f"read the URL from this stack's {STACK_OUTPUT} output")
    cli.add_argument("--profile", help="AWS profile (default: the usual credential chain)")
    cli.add_argument("--region", help="region to sign for (default: the URL's, else the session's)")
    cli.add_argument("--timeout", type=float, default=35, help="seconds to wait for an answer (default 35)")
    commands = cli.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="every registered model version, newest first")
    show = commands.add_parser("show", help="one model version: metrics, evidence, approval, deployment")
    show.add_argument("version", type=version_number)
    for decision, what in (("approve", "approve (and deploy)"), ("reject", "reject")):
        command = commands.add_parser(decision, help=f"{what} a version waiting for review")
        command.add_argument("version", type=version_number)
        command.add_argument("--rationale", required=True, help="why (stored with the decision, never logged)")
    rollback = commands.add_parser("rollback", help="deploy the previous approved version again")
    rollback.add_argument("--idempotency-key", help="the same key starts one rollback however often sent")
    train = commands.add_parser("train", help="start a training run now")
    train.add_argument("--dataset-version", help="train on this dataset version (default: the published one)")
    train.add_argument(
        "--set",
        dest="hyperparameters",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a hyperparameter (repeatable)",
    )
    train.add_argument("--idempotency-key", help="the same key starts one run however often sent")
    triggers = commands.add_parser("triggers", help="training triggers, started or suppressed by the retraining guard")
    triggers.add_argument("--days", type=int, choices=range(1, 31), default=1, metavar="1..30", help="how far back")
    return cli


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    request = api_request(args)
    try:
        session = boto3.Session(profile_name=args.profile, region_name=args.region)
        url = api_url(args, session)
        credentials = session.get_credentials()
        if credentials is None:
            raise CliError("no AWS credentials (set AWS_PROFILE or AWS_ACCESS_KEY_ID, or sign in with aws sso login)")
        response = call_api(
            url + request.path,
            request.method,
            request.body,
            headers=request.headers,
            credentials=credentials,
            region=signing_region(url, args.region, session.region_name),
            timeout=args.timeout,
        )
    except (CliError, BotoCoreError, ClientError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except json.JSONDecodeError:
        print(f"error: {request.method} {request.path}: the answer is not JSON", file=sys.stderr)
        return 1
    except OSError as error:  # unreachable, refused, timed out, TLS
        print(f"error: {request.method} {request.path}: {error}", file=sys.stderr)
        return 1
    if response.status >= 400:
        print(f"error: {error_message(request, response)}", file=sys.stderr)
        return 1
    print(json.dumps(response.body, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
