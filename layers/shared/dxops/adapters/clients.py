"""boto3 clients for the request paths behind API Gateway, which gives up after 29 s.

botocore's default (legacy) retries spend up to 25.6 s on a throttled DynamoDB call (10 attempts)
and up to 15 s on S3 (5 attempts): a sustained throttle would reach the client as a gateway
timeout instead of 503 with Retry-After (bench/load.py measured it). These clients try three
times with standard backoff (at most ~3 s of sleeping) and then let the handler answer 503, so
the client retries later with the same Idempotency-Key. botocore's `max_attempts` counts retries;
`total_max_attempts` counts every attempt.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

API_REQUEST = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 3})


def api_client(service: str) -> Any:
    """A client of `service` with the request path's timeouts and retries."""
    return boto3.client(service, config=API_REQUEST)  # type: ignore[call-overload]
