"""Fault injection: AWS answers with the errors a fault plan names, in each service's protocol."""

from __future__ import annotations

import math
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from localcloud import faults
from localcloud.faults import Fault, inject

NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    faults.install()
    with mock_aws():
        yield


def error_of(call: object) -> tuple[str, int]:
    with pytest.raises(ClientError) as raised:
        call()  # type: ignore[operator]
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_a_transient_throttle_is_absorbed_by_botocores_retries_and_counted() -> None:
    s3 = boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 3}))
    s3.create_bucket(Bucket="bucket-b", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with inject(Fault("s3", "PutObject", "SlowDown", 503, times=2)) as log:
        s3.put_object(Bucket="bucket-b", Key="k", Body=b"x")
    assert log.injected == {"s3.PutObject": 2}
    assert s3.get_object(Bucket="bucket-b", Key="k")["Body"].read() == b"x"


@pytest.mark.parametrize(
    ("service", "operation", "code", "status"),
    [
        ("s3", "ListObjectsV2", "SlowDown", 503),
        ("dynamodb", "ListTables", "ProvisionedThroughputExceededException", 400),
        ("sagemaker", "ListTrainingJobs", "ThrottlingException", 400),
        ("stepfunctions", "ListStateMachines", "ServiceUnavailable", 503),
        ("sns", "ListTopics", "Throttling", 400),
    ],
)
def test_each_protocol_reads_the_injected_error(service: str, operation: str, code: str, status: int) -> None:
    client = boto3.client(service, config=NO_RETRIES)  # type: ignore[call-overload]
    method = getattr(client, {api: name for name, api in client.meta.method_to_api_mapping.items()}[operation])
    if service == "s3":
        client.create_bucket(Bucket="bucket-b", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    kwargs = {"Bucket": "bucket-b"} if service == "s3" else {}
    with inject(Fault(service, operation, code, status, times=math.inf)) as log:
        assert error_of(lambda: method(**kwargs)) == (code, status)
    method(**kwargs)  # the plan is over: calls pass again
    assert log.total == 1


def test_a_fault_can_be_narrowed_to_some_requests() -> None:
    s3 = boto3.client("s3", config=NO_RETRIES)
    dynamodb = boto3.client("dynamodb", config=NO_RETRIES)
    for name in ("raw-zone", "other-zone"):
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    plan = (
        Fault("s3", "PutObject", "InternalError", 500, times=math.inf, when=faults.bucket("raw-zone")),
        Fault("dynamodb", "PutItem", "ThrottlingException", 400, times=math.inf, when=faults.table("raw-zone")),
    )
    item = {"id": {"S": "1"}}
    with inject(*plan) as log:
        s3.put_object(Bucket="other-zone", Key="k", Body=b"x")
        dynamodb.put_item(TableName="other-zone", Item=item)
        assert error_of(lambda: s3.put_object(Bucket="raw-zone", Key="k", Body=b"x")) == ("InternalError", 500)
        assert error_of(lambda: dynamodb.put_item(TableName="raw-zone", Item=item)) == ("ThrottlingException", 400)
    assert log.injected == {"s3.PutObject": 1, "dynamodb.PutItem": 1}


def test_every_nth_call_fails_with_all_its_attempts_at_most_calls_times() -> None:
    # Two attempts per call (standard retries): a failing call's retry fails too, so the error reaches the caller.
    s3 = boto3.client("s3", config=Config(retries={"mode": "standard", "total_max_attempts": 2}))
    s3.create_bucket(Bucket="bucket-b", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    failed = []
    with inject(Fault("s3", "PutObject", "SlowDown", 503, times=math.inf, every=3, calls=2)) as log:
        for call in range(1, 10):
            try:
                s3.put_object(Bucket="bucket-b", Key=f"k{call}", Body=b"x")
            except ClientError as exc:
                assert (exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]) == (
                    "SlowDown",
                    503,
                )
                failed.append(call)
    assert failed == [3, 6]  # the 9th call would be the third: calls=2
    assert (log.injected, log.calls) == ({"s3.PutObject": 4}, {"s3.PutObject": 2})


def test_times_caps_the_attempts_failed_even_within_a_failing_call() -> None:
    s3 = boto3.client("s3", config=Config(retries={"mode": "standard", "total_max_attempts": 2}))
    s3.create_bucket(Bucket="bucket-b", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with inject(Fault("s3", "PutObject", "SlowDown", 503, times=3, every=2)) as log:
        s3.put_object(Bucket="bucket-b", Key="k1", Body=b"x")
        assert error_of(lambda: s3.put_object(Bucket="bucket-b", Key="k2", Body=b"x")) == ("SlowDown", 503)
        s3.put_object(Bucket="bucket-b", Key="k3", Body=b"x")
        s3.put_object(Bucket="bucket-b", Key="k4", Body=b"x")  # its first attempt is the third error: the retry passes
    assert (log.injected, log.calls) == ({"s3.PutObject": 3}, {"s3.PutObject": 2})
    assert s3.get_object(Bucket="bucket-b", Key="k4")["Body"].read() == b"x"


def test_every_is_one_or_more() -> None:
    with pytest.raises(ValueError, match="every"):
        Fault("s3", "PutObject", "SlowDown", every=0)


def test_a_request_answered_by_a_fault_has_no_effect() -> None:
    # botocore runs every before-send handler: moto's stubber must not carry out a refused request.
    s3 = boto3.client("s3", config=NO_RETRIES)
    s3.create_bucket(Bucket="bucket-c", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with inject(Fault("s3", "PutObject", "SlowDown", 503, times=1)):
        assert error_of(lambda: s3.put_object(Bucket="bucket-c", Key="k", Body=b"x")) == ("SlowDown", 503)
    assert "Contents" not in s3.list_objects_v2(Bucket="bucket-c")
