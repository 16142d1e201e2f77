"""Ingestion made idempotent with Powertools idempotency (DynamoDB): the API's requests and the
inbox's file chunks alike. A request is known by its idempotency_key (caller, format, client key or
body); the same key with another payload (payload_sha256) is refused (IdempotencyValidationError)."""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.utilities.idempotency import (
    BasePersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer

from dxops.adapters.ports import KeyProvider, ObjectStore
from dxops.domain.clinical_ingestion import IngestRequest, IngestResult, ingest_clinical_records


def ingestion_idempotency(expiry_seconds: int) -> IdempotencyConfig:
    """The config; the handler registers its Lambda context on it (remaining-time checks)."""
    return IdempotencyConfig(
        event_key_jmespath="idempotency_key",
        payload_validation_jmespath="payload_sha256",
        expires_after_seconds=expiry_seconds,
    )


def idempotent_ingestion(
    persistence: BasePersistenceLayer, config: IdempotencyConfig, *, store: ObjectStore, keys: KeyProvider
) -> Callable[[IngestRequest], IngestResult]:
    """ingest_clinical_records, answered from the idempotency record when the request was seen."""

    @idempotent_function(  # type: ignore[untyped-decorator]
        data_keyword_argument="request",
        persistence_store=persistence,
        config=config,
        output_serializer=PydanticSerializer(IngestResult),
    )
    def ingest(request: IngestRequest) -> IngestResult:
        return ingest_clinical_records(request, store=store, keys=keys)

    return lambda request: ingest(request=request)
