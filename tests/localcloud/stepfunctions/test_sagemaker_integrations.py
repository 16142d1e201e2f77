"""SageMaker through Step Functions on the local cloud (in-process moto), as the training and deployment
machines will use it: the optimised integration (createModel, createEndpointConfig, createEndpoint,
updateEndpoint; createProcessingJob.sync) and aws-sdk:sagemaker (describeEndpoint, the Model
Registry, addTags), with errors under the names AWS gives them so that Catch clauses match."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from localcloud.cloud import LocalCloud
from localcloud.stepfunctions import execution_history, run_execution, start_execution, wait_for_execution
from tests.localcloud.sagemaker.support import archive, script
from tests.localcloud.stepfunctions.support import TRAINING_IMAGE, started, unique

ISO_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
ADULT = {"age": 70}
ALL_AT_ONCE = {
    "BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
        "TerminationWaitInSeconds": 0,
    }
}


@pytest.fixture(scope="module")
def sfn_cloud() -> Iterator[LocalCloud]:
    with started() as cloud:
        yield cloud


def output(execution: dict[str, Any]) -> Any:
    assert execution["status"] == "SUCCEEDED", execution
    return json.loads(execution["output"])


def artifact(cloud: LocalCloud, version: str, program: str = "inference.py") -> str:
    """A model.tar.gz (model.json and code/inference.py) in the artifact bucket; its S3 URI."""
    bucket = cloud.outputs["ArtifactBucketName"]
    key = f"artifacts/{unique(version)}/model.tar.gz"
    files = {
        "model.json": json.dumps({"threshold": 65, "version": version}).encode(),
        "code/inference.py": script(program),
    }
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=archive(files))
    return f"s3://{bucket}/{key}"


def deployment(
    cloud: LocalCloud, version: str, endpoint: str, *, program: str = "inference.py", update: Any = None
) -> dict[str, Any]:
    """The deployment machine's input: a new model and endpoint configuration for `endpoint`."""
    request = {
        "model_name": unique(f"model-{version}"),
        "config_name": unique("config"),
        "endpoint_name": endpoint,
        "image": TRAINING_IMAGE,
        "model_data_url": artifact(cloud, version, program),
    }
    if update is not None:
        request["update"] = {"deployment": update}
    return request


def served(endpoint: str, calls: int = 1) -> set[str]:
    runtime = boto3.client("sagemaker-runtime")
    answers = [
        runtime.invoke_endpoint(EndpointName=endpoint, Body=json.dumps(ADULT), ContentType="application/json")
        for _ in range(calls)
    ]
    return {json.loads(a["Body"].read())["predictions"][0]["model"] for a in answers}


def test_a_model_is_deployed_then_updated_by_the_optimised_integration(sfn_cloud: LocalCloud) -> None:
    endpoint = unique("endpoint")
    first = deployment(sfn_cloud, "v1", endpoint)
    execution = run_execution(sfn_cloud, "SageMakerDeployStateMachine", first, timeout=60)
    result = output(execution)
    # Request-response: the API's answer, PascalCase as the optimised integration returns it.
    assert result["model"]["ModelArn"].endswith(f":model/{first['model_name']}")
    assert result["config"]["EndpointConfigArn"].endswith(f":endpoint-config/{first['config_name']}")
    assert result["endpoint"]["EndpointArn"].endswith(f":endpoint/{endpoint}")
    described = result["described"]  # aws-sdk:sagemaker:describeEndpoint, as the SDK returns it
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", first["config_name"])
    assert ISO_MILLIS.fullmatch(described["CreationTime"])
    history = execution_history(sfn_cloud, execution["executionArn"])
    assert history[:4] == ["CreateModel", "CreateEndpointConfig", "NewOrExisting", "CreateEndpoint"]
    assert history[-1] == "Deployed"
    assert served(endpoint) == {"v1"}

    second = deployment(sfn_cloud, "v2", endpoint, update=ALL_AT_ONCE)
    result = output(run_execution(sfn_cloud, "SageMakerDeployStateMachine", second, timeout=60))
    assert result["described"]["EndpointConfigName"] == second["config_name"]
    assert "outcome" not in result
    assert served(endpoint, 3) == {"v2"}

    # A model that cannot load fails its health check: the update rolls back and v2 keeps serving.
    broken = deployment(sfn_cloud, "bad", endpoint, program="broken_inference.py", update=ALL_AT_ONCE)
    result = output(run_execution(sfn_cloud, "SageMakerDeployStateMachine", broken, timeout=60))
    assert result["outcome"] == "rolled back"
    assert result["described"]["EndpointStatus"] == "InService"
    assert result["described"]["EndpointConfigName"] == second["config_name"]
    assert "the model artifact is corrupt" in result["described"]["FailureReason"]
    assert served(endpoint, 3) == {"v2"}


def test_a_canary_alarm_rolls_back_an_endpoint_that_step_functions_deployed(sfn_cloud: LocalCloud) -> None:
    endpoint = unique("endpoint")
    output(run_execution(sfn_cloud, "SageMakerDeployStateMachine", deployment(sfn_cloud, "v1", endpoint), timeout=60))
    cloudwatch = boto3.client("cloudwatch")
    alarm = unique("canary-errors")
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    canary = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                "WaitIntervalInSeconds": 30,
            },
            "TerminationWaitInSeconds": 0,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]},
    }
    arn = start_execution(
        sfn_cloud, "SageMakerDeployStateMachine", deployment(sfn_cloud, "v3", endpoint, update=canary)
    )
    deadline = time.monotonic() + 30
    while "v3" not in served(endpoint, 4):  # the canary takes half the traffic during its bake
        assert time.monotonic() < deadline, "the canary never served"
    assert boto3.client("sagemaker").describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "Updating"
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="5XX errors on the canary")

    result = output(wait_for_execution(sfn_cloud, arn, timeout=60))

    assert result["outcome"] == "rolled back"
    assert f"alarm {alarm} went into ALARM state" in result["described"]["FailureReason"]
    assert served(endpoint, 10) == {"v1"}
    assert execution_history(sfn_cloud, arn)[-1] == "RolledBack"


def test_the_model_registry_through_aws_sdk(sfn_cloud: LocalCloud) -> None:
    group = sfn_cloud.outputs["ModelPackageGroupName"]
    model = artifact(sfn_cloud, "candidate")
    request = {"group": group, "image": TRAINING_IMAGE, "model_data_url": model, "dataset_version": "2026-11-27"}
    result = output(run_execution(sfn_cloud, "SageMakerRegistryStateMachine", request))

    arn = result["registered"]["ModelPackageArn"]
    assert arn.endswith(f":model-package/{group}/1")
    assert result["approved"] == {"ModelPackageArn": arn}
    assert result["tagged"] == {"Tags": [{"Key": "stage", "Value": "approved"}]}
    assert result["described"]["status"] == "Approved"
    assert result["described"]["version"] == 1
    assert result["described"]["metadata"] == {"dataset_version": "2026-11-27"}
    assert result["described"]["model"] == model
    assert ISO_MILLIS.fullmatch(result["described"]["created"])
    assert result["latest"] == {"arn": arn}
    assert result["missing"]["Error"] == "SageMaker.ValidationException"
    assert "not found" in result["missing"]["Cause"]
    sagemaker = boto3.client("sagemaker")
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "approved"}]


def test_sagemaker_errors_have_the_names_aws_gives_them(sfn_cloud: LocalCloud) -> None:
    execution = run_execution(sfn_cloud, "SageMakerErrorsStateMachine", {"missing": unique("missing")})
    errors = output(execution)["errors"]
    assert execution_history(sfn_cloud, execution["executionArn"])[-1] == "Caught"
    # aws-sdk: ServiceName.ErrorCode, with an Exception suffix where the code has none.
    assert errors["describe"]["Error"] == "SageMaker.ValidationException"
    assert re.search(r"Could not find endpoint .*\(Service: SageMaker, Status Code: 400, ", errors["describe"]["Cause"])
    assert errors["associate"]["Error"] == "SageMaker.ResourceNotFoundException"
    # The optimised integration: the AWS Java SDK's exception, with the service's code in the cause.
    assert errors["config"]["Error"] == "SageMaker.AmazonSageMakerException"
    assert "Error Code: ValidationException" in errors["config"]["Cause"]
    assert "Could not find model" in errors["config"]["Cause"]


def test_a_processing_job_runs_to_completion_or_is_caught(sfn_cloud: LocalCloud) -> None:
    bucket = sfn_cloud.outputs["ArtifactBucketName"]
    boto3.client("s3").put_object(Bucket=bucket, Key="code/process.py", Body=script("process.py"))
    arguments = [
        "--input",
        "/opt/ml/processing/input/data",
        "--output",
        "/opt/ml/processing/output",
        "--message",
        "/opt/ml/output/message",
    ]
    name = unique("process")
    request = {"job_name": name, "image": TRAINING_IMAGE, "arguments": arguments}
    processing = output(run_execution(sfn_cloud, "SageMakerProcessingStateMachine", request, timeout=60))["processing"]
    assert (processing["name"], processing["status"]) == (name, "Completed")
    assert processing["message"] == "summarised 2 records"  # the script really ran on the channel's CSV
    assert isinstance(processing["ended"], int)  # epoch milliseconds, as the optimised integration returns
    summary = boto3.client("s3").get_object(Bucket=bucket, Key=f"processed/{name}/summary.json")["Body"].read()
    assert json.loads(summary) == {"records": 2, "stage": "test"}

    failing = {"job_name": unique("process"), "image": TRAINING_IMAGE, "arguments": [*arguments, "--fail"]}
    result = output(run_execution(sfn_cloud, "SageMakerProcessingStateMachine", failing, timeout=60))
    assert result["outcome"] == "handled"
    assert result["error"]["Error"] == "States.TaskFailed"
    cause = json.loads(result["error"]["Cause"])  # the job's DescribeProcessingJob
    assert cause["ProcessingJobStatus"] == "Failed"
    assert cause["ExitMessage"] == "the input holds no usable records"


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:states:::sagemaker:describeEndpoint",  # aws-sdk:sagemaker:describeEndpoint is the way
        "arn:aws:states:::sagemaker:createEndpoint.sync",  # no .sync for endpoints
    ],
)
def test_what_the_optimised_integration_does_not_offer_is_refused_at_creation(
    sfn_cloud: LocalCloud, resource: str
) -> None:
    definition = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": resource, "End": True}}}
    with pytest.raises(ClientError, match=r"not (recognized|supported)"):
        boto3.client("stepfunctions").create_state_machine(
            name=unique("refused"),
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/local",
        )
