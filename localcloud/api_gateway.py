"""API Gateway on the local cloud: real HTTP in, the template's REST API routes, real handlers.

Each AWS::ApiGateway::RestApi of the deployed template (its OpenAPI body, as SAM generates it
from the functions' Api events) is served on 127.0.0.1 under its stage name:

    http://127.0.0.1:<port>/<stage>/<path>

A request becomes the API Gateway REST proxy event (payload version 1.0) and runs the integrated
function; the function's proxy response becomes the HTTP response. So curl, a browser or
schemathesis talk to the real API handlers.

Authentication, simulated: a route secured with AWS_IAM (SigV4) needs an `Authorization` header
in SigV4 form (`AWS4-HMAC-SHA256 Credential=<access key>/...`); the signature is not verified
locally (there are no real credentials to verify against), but an unsigned request is refused
with 403 "Missing Authentication Token" as on AWS, and the access key becomes the caller
identity (userArn arn:aws:iam::<account>:user/<access key>). Any SigV4 client works, e.g.
`curl --aws-sigv4 "aws:amz:eu-west-1:execute-api" --user testing:testing ...`.
Stage throttling (MethodSettings ThrottlingRateLimit / BurstLimit) is enforced with a token
bucket (429), and the 10 MB payload limit (413).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from localcloud.provision import ACCOUNT_ID
from localcloud.runtime import FunctionError, registered_function

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud

LOG = logging.getLogger(__name__)
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway REST limit
_SIGV4 = re.compile(r"^AWS4-HMAC-SHA256 Credential=([A-Za-z0-9]+)/")
_INTEGRATION_ARN = re.compile(r"functions/(arn:aws:lambda:[^/]+)/invocations$")


def install() -> None:
    """Nothing to patch: the API is served on demand by `serve_api`."""


@dataclass
class Route:
    method: str  # upper case, or ANY
    template: str  # /devices/{device_id}/binding
    pattern: re.Pattern[str]
    function_arn: str
    iam_auth: bool


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            if self.tokens < 0:
                self.tokens = self.burst
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


@dataclass
class RestApi:
    logical_id: str
    api_id: str
    stage: str
    routes: list[Route]
    throttle: TokenBucket | None

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            found = route.pattern.fullmatch(path)
            if found and route.method in (method, "ANY"):
                return route, found.groupdict()
        return None


def _pattern(template: str) -> re.Pattern[str]:
    regex = ""
    for part in re.split(r"(\{[^}]+\})", template):
        if part.startswith("{") and part.endswith("+}"):
            regex += f"(?P<{part[1:-2]}>.+)"
        elif part.startswith("{"):
            regex += f"(?P<{part[1:-1]}>[^/]+)"
        else:
            regex += re.escape(part)
    return re.compile(regex)


def rest_apis(cloud: LocalCloud) -> list[RestApi]:
    """The template's REST APIs with their routes, stages and throttling, resolved."""
    stages = {
        props["RestApiId"]: props
        for logical_id, props in cloud.stack.properties.items()
        if cloud.stack.types[logical_id] == "AWS::ApiGateway::Stage"
    }
    apis = []
    for logical_id, kind in cloud.stack.types.items():
        if kind != "AWS::ApiGateway::RestApi":
            continue
        api_id = cloud.physical_id(logical_id)
        body = cloud.stack.properties[logical_id].get("Body", {})
        routes = []
        for path, operations in body.get("paths", {}).items():
            for method, operation in operations.items():
                integration = operation.get("x-amazon-apigateway-integration", {})
                found = _INTEGRATION_ARN.search(str(integration.get("uri", "")))
                if integration.get("type") != "aws_proxy" or not found:
                    LOG.warning("route %s %s: only Lambda proxy integrations are served locally", method, path)
                    continue
                routes.append(
                    Route(
                        method="ANY" if method == "x-amazon-apigateway-any-method" else method.upper(),
                        template=path,
                        pattern=_pattern(path),
                        function_arn=found.group(1),
                        iam_auth=any("AWS_IAM" in s for s in operation.get("security", [])),
                    )
                )
        # Literal paths before templated ones, as API Gateway prefers the most specific match.
        routes.sort(key=lambda r: (r.template.count("{"), -len(r.template)))
        stage = stages.get(api_id, {})
        settings: dict[str, Any] = next(iter(stage.get("MethodSettings", [])), {})
        throttle = None
        if "ThrottlingRateLimit" in settings:
            rate = float(settings["ThrottlingRateLimit"])
            throttle = TokenBucket(rate=rate, burst=float(settings.get("ThrottlingBurstLimit", rate)))
        apis.append(RestApi(logical_id, api_id, stage.get("StageName", "Prod"), routes, throttle))
    return apis


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    path: str  # below the stage: /records
    query: str
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # path parameters of the matched route
    caller_key: str | None = None  # the SigV4 access key, when the route is IAM-secured


def proxy_event(api: RestApi, route: Route, request: IncomingRequest) -> dict[str, Any]:
    """The REST API proxy event (payload format 1.0) that API Gateway sends to the function."""
    method, raw_path, query, headers, body = request.method, request.path, request.query, request.headers, request.body
    params, caller_key = request.params, request.caller_key
    multi_query = parse_qs(query, keep_blank_values=True) if query else {}
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode(), True
    now = dt.datetime.now(dt.UTC)
    identity: dict[str, Any] = {
        "accountId": ACCOUNT_ID if caller_key else None,
        "accessKey": caller_key,
        "caller": caller_key,
        "user": caller_key,
        "userArn": f"arn:aws:iam::{ACCOUNT_ID}:user/{caller_key}" if caller_key else None,
        "sourceIp": "127.0.0.1",
        "userAgent": headers.get("User-Agent"),
        "cognitoIdentityId": None,
        "cognitoIdentityPoolId": None,
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
        "principalOrgId": None,
    }
    return {
        "resource": route.template,
        "path": raw_path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": route.template,
            "resourcePath": route.template,
            "httpMethod": method,
            "extendedRequestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{api.stage}{raw_path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": api.stage,
            "domainPrefix": api.api_id,
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": str(uuid.uuid4()),
            "identity": identity,
            "domainName": f"{api.api_id}.execute-api.localhost",
            "apiId": api.api_id,
        },
        "body": text if body else None,
        "isBase64Encoded": is_base64,
    }


class _Handler(BaseHTTPRequestHandler):
    server: _ApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("api %s", format % args)  # method, path and status only: never bodies

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _message(self, status: HTTPStatus, message: str) -> None:
        self._reply(status, json.dumps({"message": message}).encode(), {"Content-Type": "application/json"})

    def _handle(self) -> None:
        url = urlsplit(self.path)
        stage, _, rest = url.path.lstrip("/").partition("/")
        apis = [api for api in self.server.apis if api.stage == stage]
        if not apis:
            return self._message(HTTPStatus.FORBIDDEN, "Missing Authentication Token")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_PAYLOAD_BYTES:
            return self._message(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Too Long")
        body = self.rfile.read(length) if length else b""
        path = "/" + rest
        for api in apis:
            found = api.match(self.command, path)
            if found:
                route, params = found
                headers = {k: v for k, v in self.headers.items()}
                return self._dispatch(api, route, IncomingRequest(self.command, path, url.query, headers, body, params))
        # API Gateway answers an unknown route like an unauthenticated one.
        return self._message(HTTPStatus.FORBIDDEN, "Missing Authentication Token")

    def _dispatch(self, api: RestApi, route: Route, request: IncomingRequest) -> None:
        if api.throttle and not api.throttle.take():
            return self._message(HTTPStatus.TOO_MANY_REQUESTS, "Too Many Requests")
        caller = None
        if route.iam_auth:
            signed = _SIGV4.match(self.headers.get("Authorization", ""))
            if not signed:
                return self._message(HTTPStatus.FORBIDDEN, "Missing Authentication Token")
            caller = signed.group(1)
        function = registered_function(route.function_arn)
        if function is None:
            return self._message(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error")
        event = proxy_event(api, route, replace(request, caller_key=caller))
        try:
            response = function.invoke(event)
        except FunctionError as exc:
            LOG.warning("function %s failed: %s", function.logical_id, exc.error_type)
            return self._message(HTTPStatus.BAD_GATEWAY, "Internal server error")
        self._respond(response)

    def _respond(self, response: Any) -> None:
        if not isinstance(response, dict) or "statusCode" not in response:
            return self._message(HTTPStatus.BAD_GATEWAY, "Internal server error")
        payload = response.get("body") or ""
        data = base64.b64decode(payload) if response.get("isBase64Encoded") else str(payload).encode()
        headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[str(name)] = ", ".join(str(v) for v in values)
        headers.pop("Content-Length", None)
        self._reply(int(response["statusCode"]), data, headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class _ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    # API Gateway accepts every connection. socketserver's listen backlog (5) overflows when tens
    # of clients connect at once: the kernel drops or resets the connections (bench/load.py).
    request_queue_size = 128

    def __init__(self, port: int, apis: list[RestApi]) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.apis = apis


@dataclass
class LocalApi:
    url: str  # http://127.0.0.1:<port>
    apis: list[RestApi]

    def base_url(self, logical_id: str | None = None) -> str:
        """http://127.0.0.1:<port>/<stage> of one REST API (the only one by default)."""
        api = self.apis[0] if logical_id is None else next(a for a in self.apis if a.logical_id == logical_id)
        return f"{self.url}/{api.stage}"


@contextmanager
def serve_api(cloud: LocalCloud, port: int = 0) -> Iterator[LocalApi]:
    """Serve the template's REST APIs over HTTP until the block ends."""
    server = _ApiServer(port, rest_apis(cloud))
    thread = threading.Thread(target=server.serve_forever, name="local-api", daemon=True)
    thread.start()
    try:
        yield LocalApi(f"http://127.0.0.1:{server.server_address[1]}", server.apis)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
