"""Training step 4 (manual approval): keep the waiting execution's task token with the version, or,
when the wait timed out, reject the version by expiry (dxops.domain.approvals). Invoked by the
training state machine (.waitForTaskToken); the notification is the state machine's."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.model_versions import DynamoDbModelVersions
from dxops.adapters.sagemaker import SageMakerModelRegistry
from dxops.adapters.stepfunctions import StepFunctionsTaskTokens
from dxops.domain.approvals import expire_approval, request_approval
from dxops.domain.errors import DomainError
from dxops.observability import logger, tracer
from dxops.schemas.models import ApprovalTask, ExpireApprovalRequest
from dxops.settings import ApprovalSettings, load_settings

settings = load_settings(ApprovalSettings)
versions = DynamoDbModelVersions(settings.model_versions_table)
registry = SageMakerModelRegistry()
tokens = StepFunctionsTaskTokens()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "task_token" in event:
        task = parse(event=event, model=ApprovalTask)
        request_approval(task, versions, tokens)
        logger.info("approval requested", extra={"package_version": task.outcome.package_version})
        return {"package_version": task.outcome.package_version, "waiting": True}
    expiry = parse(event=event, model=ExpireApprovalRequest)
    version = expiry.outcome.package_version
    if version is None:
        raise DomainError("only a registered version's review can expire")
    expired = expire_approval(version, now=dt.datetime.now(dt.UTC), versions=versions, registry=registry)
    logger.info("approval expired", extra={"package_version": version, "rejected": expired})
    return {"package_version": version, "rejected": expired}
