"""SageMaker adapters: the Model Registry (one model package group), Experiments and the endpoint's
state. The endpoint's invocations are in sagemaker_runtime.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
from botocore.exceptions import ClientError


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class SageMakerModelRegistry:
    def __init__(self, client: Any | None = None) -> None:
        self._client = client or boto3.client("sagemaker")

    def register(self, request: dict[str, Any]) -> tuple[str, int]:
        arn = str(self._client.create_model_package(**request)["ModelPackageArn"])
        described = self._client.describe_model_package(ModelPackageName=arn)
        return arn, int(described["ModelPackageVersion"])

    def set_status(self, package_arn: str, status: str, description: str) -> None:
        self._client.update_model_package(
            ModelPackageArn=package_arn, ModelApprovalStatus=status, ApprovalDescription=description
        )

    def annotate(self, package_arn: str, properties: dict[str, str]) -> None:
        self._client.update_model_package(ModelPackageArn=package_arn, CustomerMetadataProperties=properties)

    def describe(self, package_arn: str) -> dict[str, Any]:
        return dict(self._client.describe_model_package(ModelPackageName=package_arn))


class SageMakerExperiments:
    """One experiment per environment, one trial per training run (named after its training job),
    one trial component holding the run's parameters, artifacts and metrics."""

    def __init__(self, experiment_name: str, client: Any | None = None, metrics_client: Any | None = None) -> None:
        self.experiment_name = experiment_name
        self._client = client or boto3.client("sagemaker")
        self._metrics = metrics_client or boto3.client("sagemaker-metrics")  # BatchPutMetrics lives there

    def _create(self, action: str, **kwargs: Any) -> None:
        try:
            getattr(self._client, action)(**kwargs)
        except ClientError as error:  # created before: by an earlier run, or a retry of this step
            if _code(error) not in ("ResourceInUse", "ValidationException"):
                raise

    def record_run(
        self,
        run_name: str,
        parameters: dict[str, str | float],
        metrics: dict[str, float],
        artifacts: dict[str, str],
    ) -> None:
        component = f"{run_name}-evaluation"
        self._create("create_experiment", ExperimentName=self.experiment_name)
        self._create("create_trial", TrialName=run_name, ExperimentName=self.experiment_name)
        self._create(
            "create_trial_component",
            TrialComponentName=component,
            Status={"PrimaryStatus": "Completed"},
            Parameters={
                key: {"NumberValue": value} if isinstance(value, float) else {"StringValue": str(value)[:2500]}
                for key, value in parameters.items()
            },
            InputArtifacts={"dataset": {"Value": artifacts["dataset"]}},
            OutputArtifacts={key: {"Value": uri} for key, uri in artifacts.items() if key != "dataset"},
        )
        self._create("associate_trial_component", TrialComponentName=component, TrialName=run_name)
        now = dt.datetime.now(dt.UTC)
        if metrics:
            self._metrics.batch_put_metrics(
                TrialComponentName=component,
                MetricData=[{"MetricName": name, "Timestamp": now, "Value": value} for name, value in metrics.items()],
            )


class SageMakerEndpointState:
    def __init__(self, client: Any | None = None) -> None:
        self._client = client or boto3.client("sagemaker")

    def current_config(self, endpoint_name: str) -> str | None:
        try:
            described = self._client.describe_endpoint(EndpointName=endpoint_name)
        except ClientError as error:
            if _code(error) == "ValidationException":  # "Could not find endpoint"
                return None
            raise
        return str(described["EndpointConfigName"])
