"""Records each event it receives in the recordings bucket, keyed by the path that invoked it."""

import json
import os
import uuid

import boto3


def _path(event):
    if event.get("Records"):
        record = event["Records"][0]
        return "s3" if "s3" in record else "sns" if "Sns" in record else "records"
    if event.get("source") == "dxops.test":
        return "eventbridge"
    return "direct"


def handler(event, context):
    path = _path(event)
    boto3.client("s3").put_object(
        Bucket=os.environ["RECORDINGS_BUCKET"], Key=f"{path}/{uuid.uuid4()}.json", Body=json.dumps(event).encode()
    )
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"path": path, "function": context.function_name}
