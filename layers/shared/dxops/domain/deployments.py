"""Deployments: an approved version reaches the endpoint, safely, and can be rolled back.

start_deployment_on_approval  the registry emits "SageMaker Model Package State Change" on every
    change of a package, metadata included, and an approved package keeps saying Approved. Only a
    change *to* Approved deploys: the versions table remembers the last status seen per version
    and the deployment run it started (named after the event, so a redelivery or a retry after a
    crash starts the same run once).
prepare_deployment  the SageMaker requests: a model from the package, an endpoint configuration
    (instance or serverless hosting per environment, data capture to S3), and the blue/green
    policy of an update (canary, then all; automatic rollback on the endpoint's alarms).
verify_deployment  a smoke test with real (pseudonymised) records from the raw zone; then the
    version is the champion, the one before it becomes the rollback target.
roll_back  the previous champion that is still approved is deployed again (the rolled-back version
    is never chosen again by a later rollback).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from pydantic import ValidationError

from dxops.adapters.ports import (
    EndpointState,
    Executions,
    ModelRegistry,
    ModelVersions,
    PredictionEndpoint,
    SampleRecords,
)
from dxops.domain.errors import DomainError
from dxops.domain.prediction import EndpointUnavailable, ModelRefused
from dxops.schemas.clinical import PseudonymisedRecord
from dxops.schemas.models import (
    ChampionRecord,
    DeploymentPlan,
    DeploymentRequest,
    DeploymentResult,
    ModelPackageStateChange,
)
from dxops.schemas.prediction import EndpointAnswer, EndpointRecord
from dxops.settings import DeploymentSettings

VARIANT = "AllTraffic"
SMOKE_TOP_K = 3


class NothingToRollBackTo(DomainError):
    pass


class SmokeTestFailed(DomainError):
    """The endpoint serves, but not the deployed version, or not sensibly."""


class SmokeTestUnavailable(DomainError):
    """The endpoint could not answer yet (a serverless cold start, throttling): the step is retried."""


class VersionNotDeployable(DomainError):
    pass


# --- From approval to a deployment run -------------------------------------------------------------


def deployment_run_name(package_version: int, event_id: str) -> str:
    return f"deploy-v{package_version}-{hashlib.sha256(event_id.encode()).hexdigest()[:12]}"


def start_deployment_on_approval(
    detail: ModelPackageStateChange,
    *,
    event_id: str,
    group: str,
    versions: ModelVersions,
    deployments: Executions,
) -> str | None:
    """The run started (or resumed) for this event, None when the event deploys nothing."""
    if detail.ModelPackageGroupName != group:
        return None
    package_version = detail.ModelPackageVersion
    run = versions.observe_status(
        package_version, detail.ModelApprovalStatus, deployment_run_name(package_version, event_id)
    )
    if run is None:
        return None
    request = DeploymentRequest(
        package_version=package_version,
        package_arn=detail.ModelPackageArn,
        reason="approved",
        requested_by="events:model-package-approved",
    )
    deployments.ensure_started(run, request.model_dump_json())
    # Forgotten once started: Step Functions frees a closed execution's name after 90 days, and a
    # metadata edit of the package then must not start this deployment again.
    versions.deployment_started(package_version, run)
    return run


# --- Plan ------------------------------------------------------------------------------------------------


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _variant(settings: DeploymentSettings, model_name: str) -> dict[str, Any]:
    variant: dict[str, Any] = {"VariantName": VARIANT, "ModelName": model_name, "InitialVariantWeight": 1.0}
    if settings.inference_mode == "serverless":  # scales to zero: no cost while idle
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": settings.serverless_memory_mb,
            "MaxConcurrency": settings.serverless_max_concurrency,
        }
    else:
        variant["InstanceType"] = settings.instance_type
        variant["InitialInstanceCount"] = settings.instance_count
    return variant


def _endpoint_config(
    settings: DeploymentSettings, config_name: str, model_name: str, package_version: int
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "EndpointConfigName": config_name,
        "ProductionVariants": [_variant(settings, model_name)],
        "Tags": [{"Key": "dxops:package-version", "Value": str(package_version)}],
    }
    if settings.inference_mode == "instance":
        # Serverless endpoints take neither a volume key nor data capture (AWS refuses both); there,
        # the prediction API's own records of what it served are what monitoring reads.
        config["KmsKeyId"] = settings.data_key_arn
        config["DataCaptureConfig"] = {
            "EnableCapture": settings.capture_sampling_percent > 0,
            "InitialSamplingPercentage": settings.capture_sampling_percent,
            "DestinationS3Uri": settings.capture_uri,
            "KmsKeyId": settings.data_key_arn,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json", "application/jsonlines"]},
        }
    return config


def deployment_config(settings: DeploymentSettings) -> dict[str, Any]:
    """Blue/green: a canary share of capacity first, baked under the alarms, then the rest (or linear
    steps of that share, each baked).
    Serverless endpoints take no blue/green guardrails on AWS: their updates swap at once, with no
    alarm-driven rollback (the smoke test still guards them)."""
    alarms = {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in settings.rollback_alarms]}}
    if settings.inference_mode == "serverless":
        return {}
    step = {"Type": "CAPACITY_PERCENT", "Value": settings.canary_percent}
    routing: dict[str, Any] = {"Type": settings.traffic_shifting, "WaitIntervalInSeconds": settings.bake_seconds}
    routing["CanarySize" if settings.traffic_shifting == "CANARY" else "LinearStepSize"] = step
    steps = 2 if settings.traffic_shifting == "CANARY" else -(-100 // settings.canary_percent)
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": settings.bake_seconds,
            "MaximumExecutionTimeoutInSeconds": min(28_800, max(600, (steps + 1) * settings.bake_seconds + 600)),
        },
        **(alarms if settings.rollback_alarms else {}),
    }


def prepare_deployment(
    request: DeploymentRequest,
    *,
    run_name: str,
    settings: DeploymentSettings,
    registry: ModelRegistry,
    endpoint: EndpointState,
    versions: ModelVersions,
) -> DeploymentPlan:
    package = registry.describe(request.package_arn)
    if package.get("ModelApprovalStatus") != "Approved":
        raise VersionNotDeployable(
            f"model version {request.package_version} is {package.get('ModelApprovalStatus')}, not Approved"
        )
    container = package["InferenceSpecification"]["Containers"][0]
    model_version = str(package.get("CustomerMetadataProperties", {}).get("model_version", request.package_version))
    suffix = f"v{request.package_version}-{_short(run_name)}"
    base = f"dxops-{settings.dxops_environment}"
    model_name, config_name = f"{base}-model-{suffix}", f"{base}-config-{suffix}"
    current = endpoint.current_config(settings.endpoint_name)
    champion = versions.champion()
    versions.set_deployment_status(request.package_version, "deploying")
    model: dict[str, Any] = {
        "ModelName": model_name,
        "PrimaryContainer": {
            "Image": container["Image"],
            "ModelDataUrl": container["ModelDataUrl"],
            "Environment": dict(container.get("Environment", {})),
        },
        "Tags": [{"Key": "dxops:package-version", "Value": str(request.package_version)}],
    }
    # Instance hosting runs the model in the stack's VPC when it has one; serverless endpoints take no
    # VPC (AWS refuses it), they run in SageMaker's network (docs/security.md).
    if settings.vpc_config is not None and settings.inference_mode == "instance":
        model["VpcConfig"] = settings.vpc_config
    return DeploymentPlan(
        request=request,
        model_version=model_version,
        endpoint_name=settings.endpoint_name,
        endpoint_exists=current is not None,
        model=model,
        endpoint_config=_endpoint_config(settings, config_name, model_name, request.package_version),
        deployment_config=deployment_config(settings),
        previous_endpoint_config=current,
        previous_package_version=champion.package_version if champion is not None else None,
        poll_seconds=settings.poll_seconds,
    )


# --- Verify and crown ---------------------------------------------------------------------------------


def smoke_test(plan: DeploymentPlan, endpoint: PredictionEndpoint, samples: SampleRecords, count: int) -> int:
    """Real records through the endpoint: the deployed version must answer each, sensibly."""
    records = []
    for line in samples.latest(count):
        try:
            records.append(EndpointRecord.from_pseudonymised(PseudonymisedRecord.model_validate(line)))
        except ValidationError:
            continue  # a record of an older schema: not a smoke test of the model
    if not records:
        raise SmokeTestFailed("no stored clinical record to test the endpoint with")
    body = {"records": [r.model_dump(mode="json") for r in records], "top_k": SMOKE_TOP_K, "explain": False}
    try:
        raw = endpoint.invoke(json.dumps(body).encode(), "application/json")
    except EndpointUnavailable as error:
        raise SmokeTestUnavailable(f"the endpoint could not answer the smoke test: {error}") from None
    except ModelRefused as error:
        raise SmokeTestFailed(f"the endpoint refused the smoke test's records: {error}") from None
    _check_answer(raw, plan.model_version, [r.record_id for r in records])
    return len(records)


def _check_answer(raw: bytes, model_version: str, record_ids: list[str]) -> None:
    try:
        answer = EndpointAnswer.model_validate_json(raw)
    except ValidationError:
        raise SmokeTestFailed("the endpoint answered in an unexpected format") from None
    if answer.model_version != model_version:
        raise SmokeTestFailed(f"the endpoint serves {answer.model_version}, not {model_version}")
    if [p.record_id for p in answer.predictions] != record_ids:
        raise SmokeTestFailed("the endpoint's predictions do not match the records sent")
    for prediction in answer.predictions:
        # The ranking is the model's decision order (threshold-corrected, docs/model.md), not always
        # the order of the calibrated probabilities: both are checked for sense, not for sorting.
        if not prediction.diagnoses or any(not 0 <= d.probability <= 1 for d in prediction.diagnoses):
            raise SmokeTestFailed("the endpoint's ranking is empty or its probabilities are not probabilities")


def verify_deployment(
    plan: DeploymentPlan,
    *,
    now: dt.datetime,
    settings: DeploymentSettings,
    endpoint: PredictionEndpoint,
    samples: SampleRecords,
    versions: ModelVersions,
    registry: ModelRegistry,
) -> DeploymentResult:
    tested = smoke_test(plan, endpoint, samples, settings.smoke_records)
    request = plan.request
    before = versions.champion()
    previous = list(before.previous) if before is not None else []
    rolled_back = list(before.rolled_back) if before is not None else []
    if before is not None and before.package_version != request.package_version:
        if request.reason == "rollback":
            rolled_back.append(before.package_version)
            versions.set_deployment_status(before.package_version, "rolled-back")
        else:
            previous.append(before.package_version)
            versions.set_deployment_status(before.package_version, "retired")
    previous = [v for v in previous if v != request.package_version and v not in rolled_back]
    package = registry.describe(request.package_arn)
    versions.set_champion(
        ChampionRecord(
            package_version=request.package_version,
            package_arn=request.package_arn,
            model_version=plan.model_version,
            model_data_url=package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"],
            endpoint_config=plan.endpoint_config["EndpointConfigName"],
            since=now,
            previous=previous,
            rolled_back=rolled_back,
        )
    )
    versions.set_deployment_status(request.package_version, "serving")
    # A metadata-only update: the registry emits another state-change event, which deploys nothing.
    registry.annotate(request.package_arn, {"champion_since": now.isoformat(timespec="seconds")})
    return DeploymentResult(
        package_version=request.package_version,
        model_version=plan.model_version,
        endpoint_name=plan.endpoint_name,
        endpoint_config=plan.endpoint_config["EndpointConfigName"],
        smoke_records=tested,
        champion_since=now,
        subject=f"dxops {settings.dxops_environment}: model version {request.package_version} serves"[:100],
        message=(
            f"Model version {request.package_version} ({plan.model_version}) serves at {plan.endpoint_name} "
            f"({request.reason}, by {request.requested_by}); smoke test on {tested} records passed."
        ),
    )


# --- Roll back ----------------------------------------------------------------------------------------------


def roll_back(
    *,
    requested_by: str,
    trigger_id: str,
    versions: ModelVersions,
    registry: ModelRegistry,
    deployments: Executions,
) -> tuple[int, int, str]:
    """(from version, to version, run name): deploys the most recent earlier champion still approved."""
    champion = versions.champion()
    if champion is None:
        raise NothingToRollBackTo("no model version is deployed")
    for candidate in reversed(champion.previous):
        record = versions.get(candidate)
        if record is None or record.approval_status != "Approved":
            continue
        if registry.describe(record.package_arn).get("ModelApprovalStatus") != "Approved":
            continue
        request = DeploymentRequest(
            package_version=candidate,
            package_arn=record.package_arn,
            reason="rollback",
            requested_by=requested_by,
        )
        name = f"rollback-v{candidate}-{_short(trigger_id)}"
        deployments.ensure_started(name, request.model_dump_json())
        return champion.package_version, candidate, name
    raise NothingToRollBackTo(f"no earlier approved version to roll back to from version {champion.package_version}")
