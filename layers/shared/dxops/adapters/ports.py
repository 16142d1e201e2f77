"""Ports: what the domain needs from the outside world, independent of AWS."""

from __future__ import annotations

from typing import Protocol

from dxops.domain.pseudonymisation import PseudonymKey
from dxops.schemas.device import DeviceBinding


class ObjectStore(Protocol):
    def put_object(self, key: str, body: bytes, content_type: str) -> None:
        """Store body under key, replacing (versioning) any object of that key."""


class KeyProvider(Protocol):
    def current_key(self) -> PseudonymKey:
        """The pseudonymisation key in force."""


class DeviceBindingStore(Protocol):
    def get_many(self, device_ids: set[str]) -> dict[str, DeviceBinding]:
        """The bindings of those devices that are bound."""

    def put(self, binding: DeviceBinding) -> None:
        """Bind (or re-bind) a device."""

    def delete(self, device_id: str) -> bool:
        """Unbind a device; False if it was not bound."""
