"""Pseudonymisation key from Secrets Manager, cached by Powertools parameters."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities import parameters

from dxops.domain.pseudonymisation import PseudonymKey


class SecretsManagerKeyProvider:
    """Reads a secret shaped {"key_id": "v1", "key": "<random string>"} (created by template.yaml)."""

    def __init__(self, secret_id: str, max_age_seconds: int = 300) -> None:
        self.secret_id = secret_id
        self.max_age_seconds = max_age_seconds

    def current_key(self) -> PseudonymKey:
        value: Any = parameters.get_secret(self.secret_id, transform="json", max_age=self.max_age_seconds)
        return PseudonymKey(key_id=str(value["key_id"]), secret=str(value["key"]).encode())
