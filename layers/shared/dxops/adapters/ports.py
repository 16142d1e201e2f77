"""Ports: what the domain needs from the outside world, independent of AWS."""

from __future__ import annotations

from typing import Protocol

from dxops.domain.pseudonymisation import PseudonymKey


class ObjectStore(Protocol):
    def put_object(self, key: str, body: bytes, content_type: str) -> None:
        """Store body under key, replacing (versioning) any object of that key."""


class KeyProvider(Protocol):
    def current_key(self) -> PseudonymKey:
        """The pseudonymisation key in force."""
