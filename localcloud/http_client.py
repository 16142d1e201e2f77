"""A small SigV4-signing HTTP client for the REST API, as a hospital system would call it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

LOCAL_CREDENTIALS = Credentials("AKIDLOCALCLIENT", "local-secret")


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any  # parsed JSON, or {} for an empty body
    headers: dict[str, str]


def call_api(
    url: str,
    method: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    credentials: Credentials | None = LOCAL_CREDENTIALS,
    region: str = "eu-west-1",
    timeout: float = 30,
) -> ApiResponse:
    """Send a JSON request, SigV4-signed for execute-api unless credentials is None."""
    data = (body if isinstance(body, bytes) else json.dumps(body).encode()) if body is not None else None
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if credentials is not None:
        signed = AWSRequest(method=method, url=url, data=data, headers=all_headers)
        SigV4Auth(credentials, "execute-api", region).add_auth(signed)
        all_headers = dict(signed.headers.items())
    if not url.startswith(("http://", "https://")):
        raise ValueError("only http(s) URLs are API URLs")
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked
            raw = response.read()
            return ApiResponse(response.status, json.loads(raw) if raw else {}, dict(response.headers.items()))
    except urllib.error.HTTPError as error:
        raw = error.read()
        return ApiResponse(error.code, json.loads(raw) if raw else {}, dict(error.headers.items()))
