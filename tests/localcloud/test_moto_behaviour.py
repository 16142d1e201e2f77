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
