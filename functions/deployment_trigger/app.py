"""Starts a deployment when a model package of this environment's group changes *to* Approved.

The registry emits "SageMaker Model Package State Change" on every change of a package (metadata
updates of an approved package included); dxops.domain.deployments.start_deployment_on_approval
deploys on a real change to Approved only, once per change.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.model_versions import DynamoDbModelVersions
from dxops.adapters.stepfunctions import StepFunctionsExecutions
from dxops.domain.deployments import start_deployment_on_approval
from dxops.observability import logger, metrics, tracer
from dxops.schemas.models import PackageStateChangeEvent
from dxops.settings import DeploymentTriggerSettings, load_settings

settings = load_settings(DeploymentTriggerSettings)
versions = DynamoDbModelVersions(settings.model_versions_table)
deployments = StepFunctionsExecutions(settings.deployment_state_machine_arn)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=PackageStateChangeEvent)
def lambda_handler(event: PackageStateChangeEvent, context: LambdaContext) -> dict[str, Any]:
    run = start_deployment_on_approval(
        event.detail,
        event_id=event.id,
        group=settings.model_package_group,
        versions=versions,
        deployments=deployments,
    )
    metrics.add_metric(name="DeploymentsTriggered", unit=MetricUnit.Count, value=int(run is not None))
    logger.info(
        "model package state change",
        extra={
            "package_version": event.detail.ModelPackageVersion,
            "status": event.detail.ModelApprovalStatus,
            "deployment_run": run,
        },
    )
    return {"deployment_run": run}
