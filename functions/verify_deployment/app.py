"""Deployment step 3: smoke-test the endpoint with real (pseudonymised) records, then make the version
the champion (dxops.domain.deployments.verify_deployment). A failed smoke test raises
SmokeTestFailed, which the deployment state machine answers with a rollback; an endpoint that cannot
answer yet raises SmokeTestUnavailable, which it retries."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.model_versions import DynamoDbModelVersions
from dxops.adapters.s3 import S3SampleRecords
from dxops.adapters.sagemaker import SageMakerModelRegistry
from dxops.adapters.sagemaker_runtime import SageMakerEndpoint
from dxops.domain.deployments import verify_deployment
from dxops.observability import logger, tracer
from dxops.schemas.models import VerifyDeploymentRequest
from dxops.settings import DeploymentSettings, load_settings

settings = load_settings(DeploymentSettings)
versions = DynamoDbModelVersions(settings.model_versions_table)
registry = SageMakerModelRegistry()
endpoint = SageMakerEndpoint(settings.endpoint_name, read_timeout_seconds=60)  # a serverless cold start
samples = S3SampleRecords(settings.raw_bucket)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@event_parser(model=VerifyDeploymentRequest)
def lambda_handler(event: VerifyDeploymentRequest, context: LambdaContext) -> dict[str, Any]:
    result = verify_deployment(
        event.plan,
        now=dt.datetime.now(dt.UTC),
        settings=settings,
        endpoint=endpoint,
        samples=samples,
        versions=versions,
        registry=registry,
    )
    logger.info(
        "deployment verified",
        extra={"package_version": result.package_version, "smoke_records": result.smoke_records},
    )
    return result.model_dump(mode="json")
