"""moto behaviours the local cloud works around. Each test pins moto's current behaviour, so an
upgrade that changes it fails here loudly and the workaround can be revisited."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from localcloud.cloud import LOCAL_CREDENTIALS
from localcloud.provision import enforceable_statements


@pytest.fixture
def s3() -> Iterator[Any]:
    saved = dict(os.environ)
    os.environ.update(LOCAL_CREDENTIALS)
    try:
        with mock_aws():
            client = boto3.client("s3")
            client.create_bucket(
                Bucket="dxops-moto-check", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
            )
            yield client
    finally:
        os.environ.clear()
        os.environ.update(saved)


BUCKET = "dxops-moto-check"
TLS_ONLY = {
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": ["arn:aws:s3:::dxops-moto-check", "arn:aws:s3:::dxops-moto-check/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


def test_moto_ignores_conditions_of_bucket_policy_denies(s3: Any) -> None:
    # On AWS this TLS-only deny lets HTTPS requests through; moto denies everything.
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [TLS_ONLY]}))
    with pytest.raises(s3.exceptions.ClientError, match=r"Forbidden|AccessDenied"):
        s3.put_object(Bucket=BUCKET, Key="k", Body=b"x")


def test_conditional_denies_are_not_applied_locally_but_others_are() -> None:
    plain_deny = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:DeleteBucket",
        "Resource": "arn:aws:s3:::dxops-moto-check",
    }
    document = enforceable_statements({"Version": "2012-10-17", "Statement": [TLS_ONLY, plain_deny]})
    assert document["Statement"] == [plain_deny]


def test_moto_lambda_invocation_points_the_local_runtime_replaces() -> None:
    """lambda_service replaces these; if moto renames or reshapes them, invocations would
    silently go back to moto's Docker path or its synchronous notifications."""
    import inspect

    import moto
    import moto.s3.notifications as s3_notifications
    from moto.awslambda.models import LambdaBackend, LambdaFunction

    from localcloud import lambda_service

    assert moto.__version__ == "5.2.5"
    assert list(inspect.signature(lambda_service._moto_invoke_lambda).parameters) == ["self", "event"]
    assert list(inspect.signature(lambda_service._moto_s3_invoke).parameters) == [
        "account_id",
        "event_body",
        "fn_arn",
        "region_name",
    ]
    assert list(inspect.signature(lambda_service._moto_sns_invoke).parameters)[:3] == [
        "self",
        "function_name",
        "message",
    ]
    lambda_service.install()
    assert LambdaFunction._invoke_lambda is lambda_service._invoke_local
    assert s3_notifications._invoke_awslambda is lambda_service._s3_notification
    assert LambdaBackend.send_sns_message is lambda_service._sns_notification
