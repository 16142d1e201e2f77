"""Ports: what the domain needs from the outside world, independent of AWS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from dxops.domain.pseudonymisation import PseudonymKey
from dxops.schemas.datasets import DatasetManifest, PreviousVersion
from dxops.schemas.device import DeviceBinding

if TYPE_CHECKING:  # the trigger's domain types (the domain module imports these ports)
    from dxops.domain.dataset_trigger import Claim, ProcessingRun


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


class ObjectClaims(Protocol):
    def claim(self, identity: str, run: ProcessingRun) -> Claim | None:
        """Claim the object for run unless claimed before; the claim in force, or None while
        another caller is claiming it."""


class RunStarter(Protocol):
    def ensure_started(self, run: ProcessingRun) -> bool:
        """Start the run's execution unless it exists; True if this call started it."""


class DatasetFiles(Protocol):
    """The curated bucket."""

    bucket: str

    def read_json(self, key: str) -> Any:
        """The JSON document at key, or None if there is none."""

    def write_json_once(self, key: str, document: Any) -> bool:
        """Write unless an object exists at key (conditional write); False if one does."""

    def copy(self, source_key: str, target_key: str) -> None:
        """Copy an object within the bucket."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under prefix, with all its versions; returns how many objects."""

    def subfolders(self, prefix: str) -> list[str]:
        """Names of the folders directly under prefix (e.g. source=site-a)."""


class DatasetCatalog(Protocol):
    """The Glue Data Catalog table of the curated dataset: it points at the published version."""

    def current(self) -> PreviousVersion | None:
        """The version the table points at, or None before the first."""

    def point_to(self, manifest: DatasetManifest, manifest_uri: str, columns: list[dict[str, str]]) -> None:
        """Point the table (location, columns, partitions, parameters) at this version."""
