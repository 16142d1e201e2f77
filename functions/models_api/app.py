"""Model lifecycle API (API Gateway REST, IAM auth): start a training run, list and inspect model
versions, approve or reject a version waiting for review (the reviewer's identity is the signed
caller), roll back to the previous approved version.

Thin handler: read the HTTP request, call one domain function (dxops.domain.training_runs,
approvals, deployments), map domain errors to HTTP responses. The reviewer's rationale is stored
with the decision and never logged.
"""

from __future__ import annotations

import datetime as dt
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from dxops.adapters.model_versions import DynamoDbModelVersions
from dxops.adapters.sagemaker import SageMakerModelRegistry
from dxops.adapters.stepfunctions import StepFunctionsExecutions, StepFunctionsTaskTokens
from dxops.adapters.training_triggers import DynamoDbTrainingTriggers
from dxops.api.responses import error_body
from dxops.api.rest import (
    caller,
    install_error_handlers,
    json_response,
    openapi_frame,
    refuse_unknown_query_parameters,
    request_id,
)
from dxops.domain.approvals import NotPending, VersionNotFound, decide_approval
from dxops.domain.deployments import NothingToRollBackTo, roll_back
from dxops.domain.training_runs import start_training
from dxops.observability import logger, metrics, tracer
from dxops.schemas.models import (
    ApprovalDecisionBody,
    ApprovalRecord,
    ModelVersionRecord,
    ModelVersionSummary,
    RollbackStarted,
    TrainingRequest,
    TrainingRequestBody,
    TrainingStarted,
)
from dxops.schemas.training_triggers import TriggerRecord
from dxops.settings import ModelsApiSettings, load_settings

settings = load_settings(ModelsApiSettings)
versions = DynamoDbModelVersions(settings.model_versions_table)
registry = SageMakerModelRegistry()
tokens = StepFunctionsTaskTokens()
trainings = StepFunctionsExecutions(settings.training_state_machine_arn)
triggers = DynamoDbTrainingTriggers(settings.training_triggers_table, settings.trigger_retention)
deployments = StepFunctionsExecutions(settings.deployment_state_machine_arn)
app = APIGatewayRestResolver(enable_validation=True)
install_error_handlers(app, metrics, retry_after_seconds=5)
app.use(middlewares=[refuse_unknown_query_parameters])
VersionNumber = Annotated[int, Path(ge=1, description="the model package version")]


def _trigger_id() -> str:
    """The client's Idempotency-Key (a retry starts nothing twice), else the API request id."""
    return app.current_event.headers.get("idempotency-key") or request_id(app) or "direct-invoke"


@app.post(
    "/trainings",
    summary="Start a training run now",
    description="Trains on the published dataset version unless one is named. The same Idempotency-Key "
    "header starts one run however often the request is sent.",
    tags=["models"],
    responses={
        202: {"description": "Started (or already started by the same key)"},
        409: {"description": "Another training run is in progress (one at a time)"},
    },
)
def post_training(body: Annotated[TrainingRequestBody, Body()]) -> Response[Any]:
    request = TrainingRequest(
        reason="manual",
        requested_by=caller(app),
        trigger_id=_trigger_id(),
        dataset_version=body.dataset_version,
        hyperparameters=body.hyperparameters,
    )
    trigger = start_training(request, runs=trainings, triggers=triggers, policy=settings.guard_policy())
    started = trigger.outcome == "started"
    metrics.add_metric(name="TrainingRunsStarted", unit=MetricUnit.Count, value=int(started))
    logger.info("training requested", extra={"run": trigger.run_name, "outcome": trigger.outcome})
    if trigger.outcome == "suppressed":  # a person's request waits only for a run in progress
        refused = error_body("training_in_progress", trigger.detail, request_id(app))
        return json_response(HTTPStatus.CONFLICT, refused)
    return json_response(HTTPStatus.ACCEPTED, TrainingStarted(run_name=trigger.run_name, started=started).model_dump())


@app.get(
    "/trainings/triggers",
    summary="Recent training triggers, started or suppressed (and why)",
    description="Every trigger of a training run (a new dataset, the schedule, an alarm, a request) and what "
    "the retraining guard made of it, oldest first.",
    tags=["models"],
)
def get_training_triggers(
    days: Annotated[int, Query(ge=1, le=30, description="how many days back")] = 1,
) -> list[TriggerRecord]:
    caller(app)
    return triggers.recent(dt.datetime.now(dt.UTC) - dt.timedelta(days=days))


def _summary(record: ModelVersionRecord, champion_version: int | None) -> ModelVersionSummary:
    return ModelVersionSummary(
        package_version=record.package_version,
        model_version=record.model_version,
        approval_status=record.approval_status,
        champion=record.package_version == champion_version,
        dataset_version=record.dataset_version,
        training_job=record.training_job,
        registered_at=record.registered_at,
        metrics=record.metrics,
        evidence_uri=record.evidence_uri,
        approval=record.approval,
        deployment_status=record.deployment_status,
    )


def _champion_version() -> int | None:
    champion = versions.champion()
    return champion.package_version if champion is not None else None


@app.get("/models", summary="Every registered model version, newest first", tags=["models"])
def list_models() -> list[ModelVersionSummary]:
    caller(app)
    champion = _champion_version()
    return [_summary(record, champion) for record in reversed(versions.list_versions())]


@app.get(
    "/models/<version>",
    summary="One model version: metrics, evidence, approval, deployment",
    tags=["models"],
    responses={404: {"description": "No such version"}},
)
def get_model(version: VersionNumber) -> ModelVersionSummary:
    caller(app)
    record = versions.get(version)
    if record is None:
        raise NotFoundError(f"no model version {version}")
    return _summary(record, _champion_version())


@app.post(
    "/models/<version>/approval",
    summary="Approve or reject a model version waiting for review",
    description="Records the signed caller as the reviewer, with the decision and rationale. Approval "
    "deploys the version (blue/green); rejection ends its training run. A version is decided once.",
    tags=["models"],
    responses={404: {"description": "No such version"}, 409: {"description": "Decided already"}},
)
def post_approval(version: VersionNumber, body: Annotated[ApprovalDecisionBody, Body()]) -> ApprovalRecord:
    reviewer = caller(app)
    record = decide_approval(
        version,
        body,
        reviewer=reviewer,
        now=dt.datetime.now(dt.UTC),
        versions=versions,
        registry=registry,
        tokens=tokens,
    )
    metrics.add_metric(name=f"Versions{record.status}", unit=MetricUnit.Count, value=1)
    logger.info("approval decided", extra={"package_version": version, "status": record.status})
    return record


@app.post(
    "/models/rollback",
    summary="Roll back to the previous approved version",
    description="Deploys the most recent earlier champion that is still approved; the version rolled back "
    "from is never chosen by a later rollback.",
    tags=["models"],
    responses={202: {"description": "Deployment started"}, 409: {"description": "Nothing to roll back to"}},
)
def post_rollback() -> Response[Any]:
    from_version, to_version, name = roll_back(
        requested_by=caller(app),
        trigger_id=_trigger_id(),
        versions=versions,
        registry=registry,
        deployments=deployments,
    )
    metrics.add_metric(name="RollbacksStarted", unit=MetricUnit.Count, value=1)
    logger.info("rollback started", extra={"from_version": from_version, "to_version": to_version, "run": name})
    started = RollbackStarted(from_version=from_version, to_version=to_version, run_name=name)
    return json_response(HTTPStatus.ACCEPTED, started.model_dump())


def openapi_document() -> dict[str, Any]:
    return openapi_frame(app, title="dxops models API", description="Train, review, approve and roll back models.")


@app.exception_handler(VersionNotFound)
def _version_not_found(exc: VersionNotFound) -> Response[Any]:
    return json_response(HTTPStatus.NOT_FOUND, error_body("not_found", str(exc), request_id(app)))


@app.exception_handler([NotPending, NothingToRollBackTo])
def _conflict(exc: Exception) -> Response[Any]:
    return json_response(HTTPStatus.CONFLICT, error_body("conflict", str(exc), request_id(app)))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
