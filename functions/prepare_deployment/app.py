"""Deployment step 1: the model, endpoint configuration and blue/green policy for an approved version
(dxops.domain.deployments.prepare_deployment). Invoked by the deployment state machine."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.model_versions import DynamoDbModelVersions
from dxops.adapters.sagemaker import SageMakerEndpointState, SageMakerModelRegistry
from dxops.domain.deployments import prepare_deployment
from dxops.observability import logger, tracer
from dxops.schemas.models import PrepareDeploymentRequest
from dxops.settings import DeploymentSettings, load_settings

settings = load_settings(DeploymentSettings)
versions = DynamoDbModelVersions(settings.model_versions_table)
registry = SageMakerModelRegistry()
endpoint = SageMakerEndpointState()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=PrepareDeploymentRequest)
def lambda_handler(event: PrepareDeploymentRequest, context: LambdaContext) -> dict[str, Any]:
    plan = prepare_deployment(
        event.request,
        run_name=event.run_name,
        settings=settings,
        registry=registry,
        endpoint=endpoint,
        versions=versions,
    )
    logger.info(
        "deployment prepared",
        extra={
            "package_version": event.request.package_version,
            "reason": event.request.reason,
            "endpoint_exists": plan.endpoint_exists,
            "endpoint_config": plan.endpoint_config["EndpointConfigName"],
        },
    )
    return plan.model_dump(mode="json")
