"""The EventBridge events SageMaker sends on AWS (default bus, source aws.sagemaker), built from moto's
resources and routed through localcloud.events like every other AWS service's event.

- "SageMaker Model Package State Change": on CreateModelPackage and on EVERY UpdateModelPackage,
  as on AWS, which sends one for any change of a package: an approval, a rejection, a re-approval
  and a metadata-only update (CustomerMetadataProperties, ApprovalDescription) alike. A rule on
  `{"detail": {"ModelApprovalStatus": ["Approved"]}}` therefore fires again for every later update
  of an approved package: deployment rules must not assume "approved just now".
- "SageMaker Training Job State Change": when TrainingJobStatus changes (InProgress at creation,
  Stopping, Completed / Failed / Stopped).
- "SageMaker Endpoint State Change": when EndpointStatus changes (Creating, Updating, RollingBack,
  InService, Failed, Deleting), with the status spelled as in AWS's events (IN_SERVICE, ...).

Detail shapes follow AWS's documented examples (automating-sagemaker-with-eventbridge): the
resource's Describe* fields, absent fields omitted. Times are epoch milliseconds, as in captured
AWS events (the documentation's examples mix ISO strings and milliseconds); `time` and the other
envelope fields are EventBridge's. Nothing here may fail the API call that triggered it: a routing
problem is logged and dropped, as an asynchronous delivery on AWS would be.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from localcloud import events

logger = logging.getLogger(__name__)

SOURCE = "aws.sagemaker"
MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"
TRAINING_JOB_STATE_CHANGE = "SageMaker Training Job State Change"
ENDPOINT_STATE_CHANGE = "SageMaker Endpoint State Change"

# EndpointStatus as the API spells it -> as "SageMaker Endpoint State Change" spells it.
ENDPOINT_EVENT_STATUS = {
    "OutOfService": "OUT_OF_SERVICE",
    "Creating": "CREATING",
    "Updating": "UPDATING",
    "SystemUpdating": "SYSTEM_UPDATING",
    "RollingBack": "ROLLING_BACK",
    "InService": "IN_SERVICE",
    "Deleting": "DELETING",
    "Failed": "FAILED",
    "UpdateRollbackFailed": "UPDATE_ROLLBACK_FAILED",
}

_TRAINING_FIELDS = (
    "TrainingJobName",
    "TrainingJobArn",
    "TrainingJobStatus",
    "SecondaryStatus",
    "FailureReason",
    "HyperParameters",
    "AlgorithmSpecification",
    "RoleArn",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "VpcConfig",
    "StoppingCondition",
    "CreationTime",
    "TrainingStartTime",
    "TrainingEndTime",
    "LastModifiedTime",
    "SecondaryStatusTransitions",
    "ModelArtifacts",
    "FinalMetricDataList",
    "Environment",
)


def epoch_millis(value: Any) -> Any:
    """datetimes (naive ones are UTC, as moto keeps them) -> epoch milliseconds, recursively."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return int(aware.timestamp() * 1000)
    if isinstance(value, Mapping):
        return {k: epoch_millis(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [epoch_millis(v) for v in value]
    return value


def _present(detail: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in detail.items() if v is not None}


def _arn_parts(arn: str) -> tuple[str, str]:
    """(region, account) of an ARN."""
    parts = arn.split(":")
    return parts[3], parts[4]


def send(detail_type: str, detail: Mapping[str, Any], resource_arn: str) -> dict[str, Any] | None:
    """Route one aws.sagemaker event to the default bus of the resource's account; the event, or None
    when routing failed (logged: an event problem never fails the SageMaker call)."""
    region, account = _arn_parts(resource_arn)
    try:
        event = events.make_event(
            source=SOURCE,
            detail_type=detail_type,
            detail=epoch_millis(detail),
            resources=[resource_arn],
            account=account,
            region=region,
        )
        events.put_event(event, account=account)
    except Exception:
        logger.exception("%s for %s was not routed", detail_type, resource_arn)
        return None
    return event


# --------------------------------------------------------------------------- model packages


def model_package_detail(package: Any) -> dict[str, Any]:
    """The detail of "SageMaker Model Package State Change" for one of moto's ModelPackage objects."""
    versioned = package.model_package_version is not None
    name = (
        f"{package.model_package_group_name}/{package.model_package_version}"
        if versioned
        else package.model_package_name
    )
    return _present(
        {
            "ModelPackageGroupName": package.model_package_group_name if versioned else None,
            "ModelPackageVersion": package.model_package_version,
            "ModelPackageArn": package.arn,
            "ModelPackageName": name,
            "ModelPackageDescription": package.model_package_description,
            "CreationTime": package.creation_time,
            "InferenceSpecification": package.inference_specification,
            "SourceAlgorithmSpecification": package.source_algorithm_specification,
            "ValidationSpecification": package.validation_specification,
            "ModelPackageStatus": package.model_package_status,
            "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
            "CertifyForMarketplace": bool(package.certify_for_marketplace),
            "ModelApprovalStatus": package.model_approval_status,
            "ApprovalDescription": package.approval_description,
            "MetadataProperties": package.metadata_properties,
            "ModelMetrics": package.model_metrics,
            "CustomerMetadataProperties": package.customer_metadata_properties,
            "DriftCheckBaselines": package.drift_check_baselines,
            "Domain": package.domain,
            "Task": package.task,
            "SamplePayloadUrl": package.sample_payload_url,
            "AdditionalInferenceSpecifications": package.additional_inference_specifications,
            "LastModifiedTime": package.last_modified_time,
        }
    )


def model_package_changed(package: Any) -> dict[str, Any] | None:
    return send(MODEL_PACKAGE_STATE_CHANGE, model_package_detail(package), package.arn)


# --------------------------------------------------------------------------- training jobs


def training_job_detail(description: Mapping[str, Any]) -> dict[str, Any]:
    """The detail of "SageMaker Training Job State Change" from a DescribeTrainingJob-shaped dict."""
    detail = _present({key: description.get(key) for key in _TRAINING_FIELDS})
    detail["Tags"] = {}  # as in AWS's events (tags are not carried)
    return detail


def training_job_changed(description: Mapping[str, Any]) -> dict[str, Any] | None:
    return send(TRAINING_JOB_STATE_CHANGE, training_job_detail(description), str(description["TrainingJobArn"]))


# --------------------------------------------------------------------------- endpoints


def endpoint_detail(endpoint: Any) -> dict[str, Any]:
    """The detail of "SageMaker Endpoint State Change" for one of moto's FakeEndpoint objects."""
    status = str(endpoint.endpoint_status)
    return _present(
        {
            "EndpointName": endpoint.endpoint_name,
            "EndpointArn": endpoint.arn,
            "EndpointConfigName": endpoint.endpoint_config_name,
            "ProductionVariants": [dict(v) for v in endpoint.production_variants or []],
            "EndpointStatus": ENDPOINT_EVENT_STATUS.get(status, status),
            "FailureReason": getattr(endpoint, "failure_reason", None),
            "CreationTime": endpoint.creation_time,
            "LastModifiedTime": endpoint.last_modified_time,
            "Tags": {},
        }
    )


def endpoint_changed(endpoint: Any) -> dict[str, Any] | None:
    return send(ENDPOINT_STATE_CHANGE, endpoint_detail(endpoint), endpoint.arn)
