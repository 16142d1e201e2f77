"""Claims of raw objects by data-processing runs, kept with Powertools idempotency.

Claiming is an idempotent function keyed by the object's identity: the first call stores its result
(the claiming run) in the idempotency table, later calls get that stored result back without
running. A fresh token per call tells the caller whether its own call made the claim.
"""

from __future__ import annotations

import uuid
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from dxops.domain.dataset_trigger import Claim, ProcessingRun
from dxops.schemas.datasets import ProcessingTrigger


class IdempotentObjectClaims:
    def __init__(self, table_name: str, expires_after_seconds: int, client: Any | None = None) -> None:
        persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)
        config = IdempotencyConfig(
            event_key_jmespath="identity",
            expires_after_seconds=expires_after_seconds,
            raise_on_no_idempotency_key=True,
        )

        @idempotent_function(  # type: ignore[untyped-decorator]  # Powertools' decorator is untyped
            data_keyword_argument="claim",
            persistence_store=persistence,
            config=config,
            key_prefix="dataset-trigger-claim",
        )
        def record_claim(claim: dict[str, Any]) -> dict[str, Any]:
            return claim

        self._record_claim = record_claim
        self._config = config

    def register_lambda_context(self, context: Any) -> None:
        """Lets an in-progress claim expire with the invocation (if the function dies mid-claim)."""
        self._config.register_lambda_context(context)

    def claim(self, identity: str, run: ProcessingRun) -> Claim | None:
        token = uuid.uuid4().hex
        request = {
            "identity": identity,
            "run": run.name,
            "trigger": run.trigger.model_dump(mode="json"),
            "token": token,
        }
        try:
            stored = self._record_claim(claim=request)
        except IdempotencyAlreadyInProgressError:
            return None
        claimed_by = ProcessingRun(name=stored["run"], trigger=ProcessingTrigger.model_validate(stored["trigger"]))
        return Claim(run=claimed_by, fresh=stored["token"] == token)
