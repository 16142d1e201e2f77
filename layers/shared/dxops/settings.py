"""Function settings: each function parses its environment variables into one pydantic model."""

from __future__ import annotations

import os
from typing import TypeVar

from aws_lambda_powertools.utilities.parser import parse
from pydantic import BaseModel, ConfigDict, Field

SettingsT = TypeVar("SettingsT", bound=BaseModel)


class BaseSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    dxops_environment: str = Field(default="dev", alias="DXOPS_ENVIRONMENT")
    raw_bucket: str = Field(alias="RAW_BUCKET", min_length=3)
    pseudonym_secret_id: str = Field(alias="PSEUDONYM_SECRET_ID", min_length=1)
    pseudonym_key_max_age_seconds: int = Field(default=300, alias="PSEUDONYM_KEY_MAX_AGE_SECONDS", ge=0)


class IngestApiSettings(BaseSettings):
    idempotency_table: str = Field(alias="IDEMPOTENCY_TABLE", min_length=3)
    device_bindings_table: str = Field(alias="DEVICE_BINDINGS_TABLE", min_length=3)
    idempotency_expiry_seconds: int = Field(default=86_400, alias="IDEMPOTENCY_EXPIRY_SECONDS", gt=0)
    max_batch_items: int = Field(default=500, alias="MAX_BATCH_ITEMS", gt=0, le=5000)
    max_body_bytes: int = Field(default=1_048_576, alias="MAX_BODY_BYTES", gt=0, le=5_000_000)
    erasure_state_machine_arn: str = Field(alias="ERASURE_STATE_MACHINE_ARN", min_length=1)
    audit_bucket: str = Field(alias="AUDIT_BUCKET", min_length=3)


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
