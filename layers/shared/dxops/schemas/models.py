"""The model lifecycle's documents: what starts a training run, what its steps pass each other, the
approval decision, the deployment plan, and the API bodies of /trainings and /models.

One model per document; the training and deployment state machines carry their JSON. SageMaker
requests (CreateTrainingJob, CreateProcessingJob, CreateEndpointConfig, ...) travel as dicts in the
API's own PascalCase, so the state machines pass them on untouched.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field

from dxops.schemas.datasets import VersionId

TrainingReason = Literal["dataset-ready", "schedule", "retraining-trigger", "manual"]
DeploymentReason = Literal["approved", "rollback", "manual"]
ApprovalStatus = Literal["PendingManualApproval", "Approved", "Rejected"]
HyperparameterName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
HyperparameterValue = Annotated[str, Field(max_length=256)]
PackageVersion = Annotated[int, Field(ge=1)]
# Who asked: an IAM principal ARN (API), "events:<rule>" or "policy:<name>"; never a patient.
Principal = Annotated[str, Field(min_length=1, max_length=512)]
MODELS_EVENT_SOURCE = "dxops.models"


class LifecycleDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- Training -------------------------------------------------------------------------------------


class TrainingRequest(LifecycleDocument):
    """The training state machine's input: why it runs, on what, asked by whom."""

    reason: TrainingReason
    requested_by: Principal
    trigger_id: str = Field(min_length=1, max_length=128, description="event id or API request id (audit)")
    dataset_version: VersionId | None = Field(default=None, description="default: the published version")
    hyperparameters: dict[HyperparameterName, HyperparameterValue] = Field(default_factory=dict, max_length=30)
    evidence: dict[str, Any] | None = Field(default=None, description="what a retraining trigger saw")


class DatasetRef(LifecycleDocument):
    dataset_version: VersionId
    manifest_uri: str
    table_uri: str
    labelled_rows: int = Field(ge=0)
    classes: int = Field(ge=0)


class ChampionRef(LifecycleDocument):
    """The version serving now: the one a candidate must beat."""

    package_version: PackageVersion
    package_arn: str
    model_version: str
    model_data_url: str


class TrainingPlan(LifecycleDocument):
    """What PrepareTrainingRun decided: the run's name, data, jobs and the champion to beat."""

    run_name: str
    request: TrainingRequest
    dataset: DatasetRef
    champion: ChampionRef | None
    training_job: dict[str, Any]  # CreateTrainingJob request
    comparison_job: dict[str, Any]  # CreateProcessingJob request (ml/compare.py); its inputs need the model
    comparison_uri: str  # where comparison.json lands
    experiment_name: str
    prepared_at: dt.datetime


class TrainingOutcome(LifecycleDocument):
    """ConcludeTrainingRun's answer: rejected, or registered and waiting for (or given) approval."""

    run_name: str
    training_job: str
    outcome: Literal["rejected", "registered"]
    approval: Literal["automatic", "manual"] | None
    package_version: PackageVersion | None
    package_arn: str | None
    model_version: str
    evidence_uri: str
    subject: str = Field(max_length=100)  # the notification (SNS subject limit: 100)
    message: str
    review_timeout_seconds: int = Field(ge=60, description="how long a manual review may take")


class ApprovalTask(LifecycleDocument):
    """RequestApproval's input: the waiting execution's task token and the version to decide."""

    task_token: str = Field(min_length=1, max_length=8192)
    outcome: TrainingOutcome


# --- Approval ---------------------------------------------------------------------------------------


class ApprovalDecisionBody(BaseModel):
    """POST /models/{version}/approval. The rationale is the reviewer's, about the model (not about a
    patient): it is kept with the decision and in the registry, and never logged."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    decision: Literal["approve", "reject"]
    rationale: str = Field(min_length=1, max_length=1000, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")


class ApprovalRecord(LifecycleDocument):
    package_version: PackageVersion
    status: Literal["Approved", "Rejected"]
    decided_by: Principal
    decided_via: Literal["api", "policy", "expiry"]
    rationale: str
    decided_at: dt.datetime


# --- Deployment -------------------------------------------------------------------------------------


class DeploymentRequest(LifecycleDocument):
    """The deployment state machine's input."""

    package_version: PackageVersion
    package_arn: str
    reason: DeploymentReason
    requested_by: Principal


class DeploymentPlan(LifecycleDocument):
    """What PrepareDeployment decided; the state machine passes the SageMaker requests on."""

    request: DeploymentRequest
    model_version: str
    endpoint_name: str
    endpoint_exists: bool
    model: dict[str, Any]  # CreateModel request
    endpoint_config: dict[str, Any]  # CreateEndpointConfig request
    deployment_config: dict[str, Any]  # UpdateEndpoint's DeploymentConfig (blue/green)
    previous_endpoint_config: str | None  # what served before (the rollback target)
    previous_package_version: PackageVersion | None
    poll_seconds: int = Field(ge=1, description="between two looks at the endpoint's status")


class DeploymentResult(LifecycleDocument):
    package_version: PackageVersion
    model_version: str
    endpoint_name: str
    endpoint_config: str
    smoke_records: int = Field(ge=0)
    champion_since: dt.datetime
    subject: str = Field(max_length=100)
    message: str


# --- API ------------------------------------------------------------------------------------------


class TrainingRequestBody(BaseModel):
    """POST /trainings: train now, on the published dataset version unless one is named."""

    model_config = ConfigDict(extra="forbid")

    dataset_version: VersionId | None = None
    hyperparameters: dict[HyperparameterName, HyperparameterValue] = Field(default_factory=dict, max_length=30)


class TrainingStarted(BaseModel):
    run_name: str
    started: bool = Field(description="false: a run of this name exists (a repeated request)")


class RollbackStarted(BaseModel):
    from_version: PackageVersion
    to_version: PackageVersion
    run_name: str


class ModelVersionSummary(BaseModel):
    package_version: PackageVersion
    model_version: str
    approval_status: ApprovalStatus
    champion: bool
    dataset_version: str
    training_job: str
    registered_at: dt.datetime
    metrics: dict[str, float | None]
    evidence_uri: str
    approval: ApprovalRecord | None = None
    deployment_status: str | None = None


# --- What the model versions table keeps ----------------------------------------------------------


class ModelVersionRecord(LifecycleDocument):
    """One registered version (the registry holds the package; this, its lifecycle)."""

    package_version: PackageVersion
    package_arn: str
    model_version: str
    run_name: str
    training_job: str
    dataset_version: str
    model_data_url: str
    registered_at: dt.datetime
    metrics: dict[str, float | None]
    evidence_uri: str
    approval_status: ApprovalStatus
    approval: ApprovalRecord | None = None
    deployment_status: Literal["deploying", "serving", "failed", "retired", "rolled-back"] | None = None


class RejectedCandidate(LifecycleDocument):
    run_name: str
    training_job: str
    model_version: str
    dataset_version: str
    rejected_at: dt.datetime
    reasons: list[str]
    evidence_uri: str


class ChampionRecord(LifecycleDocument):
    """The version the endpoint serves, and the ones that served before (the rollback targets)."""

    package_version: PackageVersion
    package_arn: str
    model_version: str
    model_data_url: str
    endpoint_config: str
    since: dt.datetime
    previous: list[PackageVersion] = Field(default_factory=list)  # most recent last
    rolled_back: list[PackageVersion] = Field(default_factory=list)  # never rolled back to again


# --- What the state machines pass each step's function ---------------------------------------------


class PrepareTrainingRequest(LifecycleDocument):
    request: TrainingRequest
    run_name: str  # the execution's name
    started_at: dt.datetime


class ConcludeTrainingRequest(LifecycleDocument):
    plan: TrainingPlan
    training_job: dict[str, Any]  # DescribeTrainingJob, as createTrainingJob.sync returns it


class ExpireApprovalRequest(LifecycleDocument):
    outcome: TrainingOutcome


class PrepareDeploymentRequest(LifecycleDocument):
    request: DeploymentRequest
    run_name: str


class VerifyDeploymentRequest(LifecycleDocument):
    plan: DeploymentPlan


class ModelPackageStateChange(BaseModel):
    """Detail of SageMaker's "SageMaker Model Package State Change" event (the fields we read)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ModelPackageGroupName: str
    ModelPackageVersion: PackageVersion
    ModelPackageArn: str
    ModelApprovalStatus: str


class PackageStateChangeEvent(EventBridgeModel):
    """The EventBridge event carrying a ModelPackageStateChange."""

    detail: ModelPackageStateChange
