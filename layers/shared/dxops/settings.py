"""Function settings: each function parses its environment variables into one pydantic model."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Annotated, Any, Literal, Self, TypeVar

from aws_lambda_powertools.utilities.parser import parse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from dxops.domain.processing_jobs import ProcessingHost
from dxops.domain.training_guard import GuardPolicy

SettingsT = TypeVar("SettingsT", bound=BaseModel)


class BaseSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    dxops_environment: str = Field(default="dev", alias="DXOPS_ENVIRONMENT")
    raw_bucket: str = Field(alias="RAW_BUCKET", min_length=3)
    pseudonym_secret_id: str = Field(alias="PSEUDONYM_SECRET_ID", min_length=1)
    pseudonym_key_max_age_seconds: int = Field(default=300, alias="PSEUDONYM_KEY_MAX_AGE_SECONDS", ge=0)


class IngestionSettings(BaseSettings):
    """What the functions that ingest records share: idempotent requests of at most max_batch_items."""

    idempotency_table: str = Field(alias="IDEMPOTENCY_TABLE", min_length=3)
    idempotency_expiry_seconds: int = Field(default=86_400, alias="IDEMPOTENCY_EXPIRY_SECONDS", gt=0)
    max_batch_items: int = Field(default=500, alias="MAX_BATCH_ITEMS", gt=0, le=5000)


class IngestApiSettings(IngestionSettings):
    device_bindings_table: str = Field(alias="DEVICE_BINDINGS_TABLE", min_length=3)
    max_body_bytes: int = Field(default=1_048_576, alias="MAX_BODY_BYTES", gt=0, le=5_000_000)
    erasure_state_machine_arn: str = Field(alias="ERASURE_STATE_MACHINE_ARN", min_length=1)
    audit_bucket: str = Field(alias="AUDIT_BUCKET", min_length=3)


class IngestInboxSettings(IngestionSettings):
    # A file is read whole into memory (the function has 1 GB; parsing takes ~9x the file's size):
    # larger drops are split by the sender.
    max_inbox_object_bytes: int = Field(default=25_000_000, alias="MAX_INBOX_OBJECT_BYTES", gt=0, le=100_000_000)


class IngestDeviceSettings(BaseSettings):
    device_bindings_table: str = Field(alias="DEVICE_BINDINGS_TABLE", min_length=3)


def load_settings(model: type[SettingsT]) -> SettingsT:
    """Parse the process environment with Powertools parser; a missing variable fails at cold start."""
    return parse(event=dict(os.environ), model=model)


class FunctionSettings(BaseModel):
    """Settings every function has; functions that need no raw bucket or pseudonym key build on it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    dxops_environment: str = Field(default="dev", alias="DXOPS_ENVIRONMENT")


class DatasetTriggerSettings(FunctionSettings):
    idempotency_table: str = Field(alias="IDEMPOTENCY_TABLE", min_length=3)
    state_machine_arn: str = Field(alias="DATA_PROCESSING_STATE_MACHINE_ARN", min_length=1)
    window_seconds: int = Field(default=900, alias="TRIGGER_WINDOW_SECONDS", ge=1, le=86_400)
    settle_seconds: int = Field(default=120, alias="TRIGGER_SETTLE_SECONDS", ge=0, le=3_600)
    # Below Step Functions' 90 days of execution-name uniqueness (replays then start nothing).
    claim_expiry_seconds: int = Field(default=2_592_000, alias="TRIGGER_CLAIM_EXPIRY_SECONDS", gt=0, le=7_776_000)


class DatasetPipelineSettings(FunctionSettings):
    raw_bucket: str = Field(alias="RAW_BUCKET", min_length=3)
    curated_bucket: str = Field(alias="CURATED_BUCKET", min_length=3)
    catalog_database: str = Field(alias="CATALOG_DATABASE", min_length=1)
    catalog_table: str = Field(alias="CATALOG_TABLE", min_length=1)


class BeginErasureSettings(FunctionSettings):
    raw_bucket: str = Field(alias="RAW_BUCKET", min_length=3)
    audit_bucket: str = Field(alias="AUDIT_BUCKET", min_length=3)
    curated_bucket: str = Field(alias="CURATED_BUCKET", min_length=3)
    device_bindings_table: str = Field(alias="DEVICE_BINDINGS_TABLE", min_length=3)


class EraseRawObjectsSettings(FunctionSettings):
    raw_bucket: str = Field(alias="RAW_BUCKET", min_length=3)
    curated_bucket: str = Field(alias="CURATED_BUCKET", min_length=3)


class CompleteErasureSettings(FunctionSettings):
    audit_bucket: str = Field(alias="AUDIT_BUCKET", min_length=3)
    curated_bucket: str = Field(alias="CURATED_BUCKET", min_length=3)
    catalog_database: str = Field(alias="CATALOG_DATABASE", min_length=1)
    catalog_table: str = Field(alias="CATALOG_TABLE", min_length=1)


class PredictApiSettings(FunctionSettings):
    endpoint_name: str = Field(alias="ENDPOINT_NAME", min_length=1, max_length=63)
    monitoring_bucket: str = Field(alias="MONITORING_BUCKET", min_length=3)
    pseudonym_secret_id: str = Field(alias="PSEUDONYM_SECRET_ID", min_length=1)
    pseudonym_key_max_age_seconds: int = Field(default=300, alias="PSEUDONYM_KEY_MAX_AGE_SECONDS", ge=0)
    # Per attempt (two attempts: dxops.adapters.sagemaker_runtime); keep 2 x (2 s + this) + 1 s
    # under the function's timeout, itself under API Gateway's 29 s.
    endpoint_read_timeout_seconds: int = Field(default=20, alias="ENDPOINT_READ_TIMEOUT_SECONDS", gt=0, le=60)
    max_predict_records: int = Field(default=100, alias="MAX_PREDICT_RECORDS", gt=0, le=1000)
    retry_after_seconds: int = Field(default=30, alias="RETRY_AFTER_SECONDS", ge=1, le=3600)


# --- Model lifecycle ------------------------------------------------------------------------------


def _json_object(value: Any) -> Any:
    return (json.loads(value) if value.strip() else {}) if isinstance(value, str) else value


def _comma_list(value: Any) -> Any:
    return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value


JsonObject = Annotated[dict[str, Any], BeforeValidator(_json_object)]  # a JSON object in one variable
CommaList = Annotated[list[str], BeforeValidator(_comma_list)]  # "a,b,c"


class VpcSettings(BaseModel):
    """The private network of the SageMaker jobs and the endpoint's model: the template's VpcSubnetIds
    and VpcSecurityGroupIds (docs/security.md). Both empty, the default: no VPC."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    vpc_subnet_ids: CommaList = Field(default_factory=list, alias="VPC_SUBNET_IDS")
    vpc_security_group_ids: CommaList = Field(default_factory=list, alias="VPC_SECURITY_GROUP_IDS")

    @model_validator(mode="after")
    def _subnets_with_security_groups(self) -> Self:
        if bool(self.vpc_subnet_ids) != bool(self.vpc_security_group_ids):
            raise ValueError("VPC_SUBNET_IDS and VPC_SECURITY_GROUP_IDS go together: give both or neither")
        return self

    @property
    def vpc_config(self) -> dict[str, list[str]] | None:
        """SageMaker's VpcConfig (training jobs, processing jobs' NetworkConfig, models), or None."""
        if not self.vpc_subnet_ids:
            return None
        return {"SecurityGroupIds": list(self.vpc_security_group_ids), "Subnets": list(self.vpc_subnet_ids)}


class TrainingGuardSettings(FunctionSettings):
    """Whatever starts training runs: the training state machine and the retraining guard's rules
    (dxops.domain.training_guard)."""

    training_state_machine_arn: str = Field(alias="TRAINING_STATE_MACHINE_ARN", min_length=1)
    training_triggers_table: str = Field(alias="TRAINING_TRIGGERS_TABLE", min_length=3)
    retraining_cooldown_seconds: int = Field(default=21_600, alias="RETRAINING_COOLDOWN_SECONDS", ge=0)
    retraining_daily_cap: int = Field(default=3, alias="RETRAINING_DAILY_CAP", ge=1)
    trigger_retention_days: int = Field(default=400, alias="TRIGGER_RETENTION_DAYS", ge=1)

    @property
    def trigger_retention(self) -> dt.timedelta:
        return dt.timedelta(days=self.trigger_retention_days)

    def guard_policy(self, min_new_labelled_rows: int = 0) -> GuardPolicy:
        return GuardPolicy(
            cooldown=dt.timedelta(seconds=self.retraining_cooldown_seconds),
            daily_cap=self.retraining_daily_cap,
            min_new_labelled_rows=min_new_labelled_rows,
        )


class TrainingTriggerSettings(TrainingGuardSettings):
    """The event-driven trigger: new datasets, the schedule (when enough new labelled rows arrived)
    and alarms (with the monitor's latest results as evidence)."""

    curated_bucket: str = Field(alias="CURATED_BUCKET", min_length=3)
    model_versions_table: str = Field(alias="MODEL_VERSIONS_TABLE", min_length=3)
    monitoring_bucket: str = Field(alias="MONITORING_BUCKET", min_length=3)
    min_new_labelled_rows: int = Field(default=500, alias="MIN_NEW_LABELLED_ROWS", ge=0)
    # The alarms whose ALARM retrains (a suppressed one is taken up by the schedule while it fires).
    retraining_alarms: CommaList = Field(default_factory=list, alias="RETRAINING_ALARMS")


class TrainingRunSettings(FunctionSettings, VpcSettings):
    """The training state machine's steps: where data, code and models live, how jobs run, and the
    approval policy of this environment."""

    curated_bucket: str = Field(alias="CURATED_BUCKET", min_length=3)
    artifacts_bucket: str = Field(alias="ARTIFACTS_BUCKET", min_length=3)
    model_versions_table: str = Field(alias="MODEL_VERSIONS_TABLE", min_length=3)
    model_package_group: str = Field(alias="MODEL_PACKAGE_GROUP", min_length=1)
    experiment_name: str = Field(alias="EXPERIMENT_NAME", min_length=1)
    data_key_arn: str = Field(alias="DATA_KEY_ARN", min_length=1)
    # Resolved with the sagemaker SDK at deploy time (tools/deploy_parameters.py), never typed in,
    # unless make deploy is given the dxops images (docs/containers.md).
    training_image_uri: str = Field(alias="TRAINING_IMAGE_URI", min_length=1)
    # The model packages' image (dxops-inference); empty: the training image serves.
    inference_image_uri: str = Field(default="", alias="INFERENCE_IMAGE_URI")
    training_code_uri: str = Field(alias="TRAINING_CODE_URI", pattern=r"^s3://.+/$")
    training_instance_type: str = Field(default="ml.m5.2xlarge", alias="TRAINING_INSTANCE_TYPE")
    training_instance_count: int = Field(default=1, alias="TRAINING_INSTANCE_COUNT", ge=1, le=20)
    training_volume_gb: int = Field(default=30, alias="TRAINING_VOLUME_GB", ge=1)
    training_max_runtime_seconds: int = Field(default=14_400, alias="TRAINING_MAX_RUNTIME_SECONDS", ge=60)
    training_use_spot: bool = Field(default=False, alias="TRAINING_USE_SPOT")
    training_max_wait_seconds: int = Field(default=28_800, alias="TRAINING_MAX_WAIT_SECONDS", ge=60)
    training_hyperparameters: JsonObject = Field(default_factory=dict, alias="TRAINING_HYPERPARAMETERS")
    comparison_instance_type: str = Field(default="ml.m5.xlarge", alias="COMPARISON_INSTANCE_TYPE")
    gate_tolerances: JsonObject = Field(default_factory=dict, alias="GATE_TOLERANCES")
    # A run gives up the retraining guard's training slot once its comparison is concluded.
    training_triggers_table: str = Field(alias="TRAINING_TRIGGERS_TABLE", min_length=3)

    approval_policy: Literal["manual", "auto-if-clearly-better"] = Field(default="manual", alias="APPROVAL_POLICY")
    review_timeout_seconds: int = Field(default=604_800, alias="REVIEW_TIMEOUT_SECONDS", ge=60, le=31_536_000)

    @property
    def processing_host(self) -> ProcessingHost:
        return ProcessingHost(
            image_uri=self.training_image_uri,
            instance_type=self.comparison_instance_type,
            volume_gb=self.training_volume_gb,
            kms_key=self.data_key_arn,
            max_runtime_seconds=self.training_max_runtime_seconds,
            vpc_config=self.vpc_config,
        )


class ApprovalSettings(FunctionSettings):
    model_versions_table: str = Field(alias="MODEL_VERSIONS_TABLE", min_length=3)


class MonitoringSettings(FunctionSettings, VpcSettings):
    """The drift and quality monitor's steps: the window, the thresholds (template parameters, the
    same ones the alarms use) and how its processing job runs."""

    model_versions_table: str = Field(alias="MODEL_VERSIONS_TABLE", min_length=3)
    monitoring_bucket: str = Field(alias="MONITORING_BUCKET", min_length=3)
    data_key_arn: str = Field(alias="DATA_KEY_ARN", min_length=1)
    training_image_uri: str = Field(alias="TRAINING_IMAGE_URI", min_length=1)
    training_code_uri: str = Field(alias="TRAINING_CODE_URI", pattern=r"^s3://.+/$")
    monitor_instance_type: str = Field(default="ml.m5.xlarge", alias="MONITOR_INSTANCE_TYPE")
    monitor_volume_gb: int = Field(default=30, alias="MONITOR_VOLUME_GB", ge=1)
    monitor_max_runtime_seconds: int = Field(default=3600, alias="MONITOR_MAX_RUNTIME_SECONDS", ge=60)
    period_seconds: int = Field(default=3600, alias="MONITORING_PERIOD_SECONDS", ge=60)
    quality_window_days: int = Field(default=30, alias="QUALITY_WINDOW_DAYS", ge=1, le=90)
    drift_share_threshold: float = Field(default=0.0, alias="DRIFT_SHARE_THRESHOLD", ge=0, le=1)
    drift_false_alarm_rate: float = Field(default=0.05, alias="DRIFT_FALSE_ALARM_RATE", gt=0, lt=1)
    drift_min_samples: int = Field(default=100, alias="DRIFT_MIN_SAMPLES", ge=1)
    quality_drop_tolerance: float = Field(default=0.05, alias="QUALITY_DROP_TOLERANCE", gt=0, lt=1)
    quality_min_labels: int = Field(default=50, alias="QUALITY_MIN_LABELS", ge=1)

    @property
    def processing_host(self) -> ProcessingHost:
        return ProcessingHost(
            image_uri=self.training_image_uri,
            instance_type=self.monitor_instance_type,
            volume_gb=self.monitor_volume_gb,
            kms_key=self.data_key_arn,
            max_runtime_seconds=self.monitor_max_runtime_seconds,
            vpc_config=self.vpc_config,
        )


class ModelsApiSettings(TrainingGuardSettings):
    model_versions_table: str = Field(alias="MODEL_VERSIONS_TABLE", min_length=3)
    deployment_state_machine_arn: str = Field(alias="DEPLOYMENT_STATE_MACHINE_ARN", min_length=1)


class DeploymentTriggerSettings(FunctionSettings):
    model_versions_table: str = Field(alias="MODEL_VERSIONS_TABLE", min_length=3)
    model_package_group: str = Field(alias="MODEL_PACKAGE_GROUP", min_length=1)
    deployment_state_machine_arn: str = Field(alias="DEPLOYMENT_STATE_MACHINE_ARN", min_length=1)


class DeploymentSettings(FunctionSettings, VpcSettings):
    """The deployment state machine's steps: the endpoint, its hosting, the rollout and the smoke test."""

    model_versions_table: str = Field(alias="MODEL_VERSIONS_TABLE", min_length=3)
    endpoint_name: str = Field(alias="ENDPOINT_NAME", min_length=1)
    data_key_arn: str = Field(alias="DATA_KEY_ARN", min_length=1)
    inference_mode: Literal["serverless", "instance"] = Field(default="serverless", alias="INFERENCE_MODE")
    instance_type: str = Field(default="ml.m5.large", alias="INFERENCE_INSTANCE_TYPE")
    instance_count: int = Field(default=2, alias="INFERENCE_INSTANCE_COUNT", ge=1)
    serverless_memory_mb: int = Field(default=3072, alias="SERVERLESS_MEMORY_MB", ge=1024, le=6144)
    serverless_max_concurrency: int = Field(default=5, alias="SERVERLESS_MAX_CONCURRENCY", ge=1, le=200)
    capture_uri: str = Field(alias="CAPTURE_URI", pattern=r"^s3://.+")
    capture_sampling_percent: int = Field(default=100, alias="CAPTURE_SAMPLING_PERCENT", ge=0, le=100)
    traffic_shifting: Literal["CANARY", "LINEAR"] = Field(default="CANARY", alias="TRAFFIC_SHIFTING")
    canary_percent: int = Field(default=10, alias="CANARY_PERCENT", ge=1, le=50)  # LINEAR: each step's share
    bake_seconds: int = Field(default=600, alias="BAKE_SECONDS", ge=0, le=3600)
    rollback_alarms: CommaList = Field(default_factory=list, alias="ROLLBACK_ALARMS")
    raw_bucket: str = Field(alias="RAW_BUCKET", min_length=3)
    smoke_records: int = Field(default=5, alias="SMOKE_RECORDS", ge=1, le=50)
    poll_seconds: int = Field(default=30, alias="DEPLOYMENT_POLL_SECONDS", ge=1, le=600)
