"""The VPC option end to end on the local cloud (docs/security.md): with VpcSubnetIds and
VpcSecurityGroupIds set, a training run trains and compares in the VPC and the approved version's
model is created in it, through the state machines' VPC branches (the requests name a VpcConfig).
Without them, the other lifecycle tests take the branches that name none."""

from __future__ import annotations

import boto3
import pytest

from tests.integration.lifecycle import (
    LIFECYCLE_PARAMETERS,
    announce,
    api_event,
    call,
    deployable_cloud,
    executions,
    publish_dataset,
    states_entered,
    version_id,
    wait_execution,
    wait_for,
)
from tests.unit.ml.tables import clinical_table

pytestmark = pytest.mark.integration
SUBNETS, SECURITY_GROUP = ["subnet-0a1b2c3d4e5f60718", "subnet-1b2c3d4e5f6071829"], "sg-0123456789abcdef0"
VPC_CONFIG = {"SecurityGroupIds": [SECURITY_GROUP], "Subnets": SUBNETS}


def test_jobs_and_model_run_in_the_vpc_given_to_the_stack() -> None:
    parameters = {**LIFECYCLE_PARAMETERS, "VpcSubnetIds": ",".join(SUBNETS), "VpcSecurityGroupIds": SECURITY_GROUP}
    with deployable_cloud(parameters) as cloud:
        version = version_id(1)
        announce(publish_dataset(cloud, version, clinical_table(300, seed=1)))
        wait_for(lambda: call(cloud, "ModelsApiFunction", api_event("GET", "/models/1"))[0] == 200, 300, "version 1")
        body = {"decision": "approve", "rationale": "Trained in the private network."}
        assert call(cloud, "ModelsApiFunction", api_event("POST", "/models/1/approval", body))[0] == 200
        run = wait_execution(cloud, "TrainingStateMachineArn", f"dataset-{version}")
        assert run["status"] == "SUCCEEDED"
        assert states_entered(run["executionArn"])[:4] == [
            "PrepareRun",
            "TrainingNetwork",
            "TrainCandidateInVpc",
            "CompareWithChampion",
        ]
        deployment = wait_execution(
            cloud,
            "DeploymentStateMachineArn",
            wait_for(lambda: executions(cloud, "DeploymentStateMachineArn"), 60, "a deployment")[0]["name"],
        )
        assert deployment["status"] == "SUCCEEDED"
        assert "CreateModelInVpc" in states_entered(deployment["executionArn"])

        sagemaker = boto3.client("sagemaker")
        (training,) = sagemaker.list_training_jobs()["TrainingJobSummaries"]
        assert sagemaker.describe_training_job(TrainingJobName=training["TrainingJobName"])["VpcConfig"] == VPC_CONFIG
        (comparison,) = sagemaker.list_processing_jobs()["ProcessingJobSummaries"]
        network = sagemaker.describe_processing_job(ProcessingJobName=comparison["ProcessingJobName"])["NetworkConfig"]
        assert network["VpcConfig"] == VPC_CONFIG
        (model,) = sagemaker.list_models()["Models"]
        assert sagemaker.describe_model(ModelName=model["ModelName"])["VpcConfig"] == VPC_CONFIG
