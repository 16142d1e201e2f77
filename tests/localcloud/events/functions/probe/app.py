"""Probe handler for the EventBridge tests: records every event it gets in S3 (what the tests
observe) and, when asked, writes a raw object (an S3 -> EventBridge chain) or fails."""

import json
import os
import uuid
from typing import Any

import boto3


def handler(event: Any, context: Any) -> dict[str, bool]:
    detail = event.get("detail", {}) if isinstance(event, dict) else {}
    if isinstance(detail, dict) and detail.get("fail"):
        raise RuntimeError("the probe was asked to fail")
    s3 = boto3.client("s3")
    s3.put_object(
        Bucket=os.environ["PROBE_BUCKET"], Key=f"received/{uuid.uuid4()}.json", Body=json.dumps(event).encode()
    )
    if isinstance(detail, dict) and detail.get("forward_to_raw"):
        s3.put_object(Bucket=os.environ["DATA_BUCKET"], Key=f"raw/{detail['forward_to_raw']}", Body=b"{}")
    return {"ok": True}
