"""Ports: what the domain needs from the outside world, independent of AWS."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from dxops.domain.pseudonymisation import PseudonymKey
from dxops.schemas.datasets import DatasetManifest
from dxops.schemas.device import DeviceBinding
from dxops.schemas.erasure import ErasureAudit, ErasureInput

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

    def delete_for_patient(self, patient_pseudonym: str) -> int:
        """Unbind every device bound to this patient; returns how many (GDPR erasure)."""


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

    def overwrite_json(self, key: str, document: Any) -> None:
        """Write, replacing any object at key."""

    def purge_noncurrent(self, prefix: str) -> int:
        """Delete the older versions (and delete markers) of the objects under prefix; returns how many."""

    def copy(self, source_key: str, target_key: str) -> None:
        """Copy an object within the bucket."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under prefix, with all its versions; returns how many objects."""

    def subfolders(self, prefix: str) -> list[str]:
        """Names of the folders directly under prefix (e.g. source=site-a)."""


class DatasetCatalog(Protocol):
    """The Glue Data Catalog table of the curated dataset: a view of the published version."""

    def point_to(self, manifest: DatasetManifest, manifest_uri: str, columns: list[dict[str, str]]) -> None:
        """Point the table (location, columns, partitions, parameters) at this version."""

    def amend(self, manifest: DatasetManifest) -> None:
        """If the table points at this version, update its figures (row count, content hash)."""


class ErasureRuns(Protocol):
    def start(self, erasure: ErasureInput) -> None:
        """Start the erasure state machine for this request."""

    def status(self, request_id: str) -> str | None:
        """The execution's status (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED), None if unknown."""


class ErasureAuditLog(Protocol):
    def write(self, record: ErasureAudit) -> None:
        """Add a record (write-once storage: records are never changed)."""

    def read(self, request_id: str) -> dict[str, ErasureAudit]:
        """The records of a request, by status."""


@dataclass(frozen=True)
class StoredVersion:
    version_id: str
    etag: str
    is_latest: bool
    body: bytes | None  # None: a delete marker


class RewritableObjects(Protocol):
    """A versioned bucket whose objects an erasure rewrites."""

    def list_keys(self) -> Iterator[str]:
        """Every key with any version in the bucket (a current object, or only older versions)."""

    def read_versions(self, key: str) -> list[StoredVersion]:
        """Every version of key with its body, newest first."""

    def replace(self, key: str, body: bytes, if_match: str) -> None:
        """Write a new version, if the current one still has ETag if_match (else ConcurrentChange)."""

    def purge_older_versions(self, key: str) -> int:
        """Delete every version of key but the current one; returns how many object versions."""

    def remove(self, key: str) -> int:
        """Delete every version of key; returns how many object versions."""
