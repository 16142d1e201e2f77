"""Ports: what the domain needs from the outside world, independent of AWS."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from dxops.domain.pseudonymisation import PseudonymKey
from dxops.schemas.datasets import DatasetManifest
from dxops.schemas.device import DeviceBinding
from dxops.schemas.erasure import ErasureAudit, ErasureInput
from dxops.schemas.models import ApprovalRecord, ChampionRecord, ModelVersionRecord, RejectedCandidate
from dxops.schemas.training_triggers import GuardState, TriggerRecord

if TYPE_CHECKING:  # the trigger's domain types (the domain module imports these ports)
    from dxops.domain.dataset_trigger import Claim, ProcessingRun


class ObjectStore(Protocol):
    def put_object(self, key: str, body: bytes, content_type: str) -> None:
        """Store body under key, replacing (versioning) any object of that key."""


class InboxFiles(Protocol):
    def read(self, key: str, version: str | None) -> bytes:
        """A dropped file's bytes; InboxFileGone if it was deleted (ingested already)."""

    def delete(self, key: str, version: str | None) -> None:
        """Delete that version of the file for good."""


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


# --- Model lifecycle (training, registry, approval, deployment) ------------------------------------


class Executions(Protocol):
    """A state machine whose executions are named: a name starts at most one execution."""

    def ensure_started(self, name: str, document: str) -> bool:
        """Start an execution of this name with this input unless one exists; True if this call did."""

    def status(self, name: str) -> str | None:
        """The execution's status (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED), None if there is none."""


class FiringAlarms(Protocol):
    """The retraining alarms that are in ALARM now."""

    def firing(self) -> list[dict[str, Any]]:
        """Each alarm in ALARM: its name, state, reason and when it changed."""


class TrainingTriggers(Protocol):
    """The retraining guard's state and the record of every training trigger."""

    def guard_state(self) -> GuardState:
        """The guard's state (revision 0, nothing held, when none was ever written)."""

    def replace_guard_state(self, state: GuardState, *, expected_revision: int) -> bool:
        """Write state if the stored revision is still expected_revision; False if it changed."""

    def record(self, trigger: TriggerRecord) -> None:
        """Keep one trigger and what became of it."""

    def recent(self, since: dt.datetime) -> list[TriggerRecord]:
        """The triggers recorded since then, oldest first."""


class KeyListing(Protocol):
    """The keys of one bucket."""

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under prefix, in key order."""


class JsonDocuments(Protocol):
    """JSON documents by s3:// URI (evidence, comparisons, manifests)."""

    def read(self, uri: str) -> Any:
        """The document at uri; DocumentMissing if there is none."""

    def write(self, uri: str, document: Any) -> None:
        """Write (replace) the document at uri."""


class ModelRegistry(Protocol):
    """The SageMaker Model Registry's model package group of this environment."""

    def register(self, request: dict[str, Any]) -> tuple[str, int]:
        """CreateModelPackage in the group; (package ARN, version)."""

    def set_status(self, package_arn: str, status: str, description: str) -> None:
        """UpdateModelPackage ModelApprovalStatus (Approved / Rejected) with ApprovalDescription."""

    def annotate(self, package_arn: str, properties: dict[str, str]) -> None:
        """Add CustomerMetadataProperties (a metadata-only update)."""

    def describe(self, package_arn: str) -> dict[str, Any]:
        """DescribeModelPackage."""


class ExperimentLog(Protocol):
    def record_run(
        self,
        run_name: str,
        parameters: dict[str, str | float],
        metrics: dict[str, float],
        artifacts: dict[str, str],
    ) -> None:
        """One trial per training run, with its parameters, metrics and input/output artifacts."""


class TaskTokens(Protocol):
    def succeed(self, token: str, output: str) -> bool:
        """SendTaskSuccess; False if the execution no longer waits for it (timed out, stopped)."""

    def fail(self, token: str, error: str, cause: str) -> bool:
        """SendTaskFailure; False if the execution no longer waits for it."""


class EndpointState(Protocol):
    def current_config(self, endpoint_name: str) -> str | None:
        """The endpoint configuration serving now; None if there is no such endpoint."""


class SampleRecords(Protocol):
    def latest(self, count: int) -> list[dict[str, Any]]:
        """Up to count of the most recently stored clinical records (pseudonymised)."""


class PredictionEndpoint(Protocol):
    """The deployed diagnosis model (a SageMaker endpoint)."""

    def invoke(self, body: bytes, content_type: str) -> bytes:
        """The model's answer to body. Raises dxops.domain.prediction.ModelRefused when the model
        refuses the request (its 4xx), EndpointUnavailable for every failure a retry may cure."""


class WriteOnceStore(Protocol):
    def put_object_once(self, key: str, body: bytes, content_type: str) -> bool:
        """Store body under key unless an object exists there (conditional write); False if one does."""


class ModelVersions(Protocol):
    """The model versions table: each version's lifecycle, rejected candidates, the champion."""

    def put_version(self, record: ModelVersionRecord) -> None:
        """Store a newly registered version (keeps status fields an event may have set first)."""

    def get(self, package_version: int) -> ModelVersionRecord | None: ...

    def list_versions(self) -> list[ModelVersionRecord]: ...

    def put_rejection(self, rejected: RejectedCandidate) -> None: ...

    def registration(self, training_job: str) -> tuple[str, int] | None:
        """(package ARN, version) a training job's candidate was registered as, if it was."""

    def record_registration(self, training_job: str, package_arn: str, package_version: int) -> None:
        """Remember the registration, so that a retried step registers nothing twice."""

    def set_task_token(self, package_version: int, token: str) -> None:
        """Keep the waiting execution's token; NotPending if the version was decided meanwhile."""

    def decide(self, package_version: int, approval: ApprovalRecord) -> None:
        """Record the decision if the version still waits for one (else NotPending)."""

    def task_token(self, package_version: int) -> str | None:
        """The waiting run's task token, until it has been answered."""

    def clear_task_token(self, package_version: int) -> None:
        """The token was answered."""

    def observe_status(self, package_version: int, status: str, deployment_run: str) -> str | None:
        """Record a registry status seen in an event. If it is a change to Approved, remember and
        return deployment_run; if the version was already Approved, return the run remembered then
        until deployment_started clears it (so a retry finishes what a crash interrupted);
        otherwise None."""

    def deployment_started(self, package_version: int, deployment_run: str) -> None:
        """The remembered run has started: later Approved events of the version deploy nothing."""

    def set_deployment_status(self, package_version: int, status: str) -> None: ...

    def champion(self) -> ChampionRecord | None: ...

    def set_champion(self, champion: ChampionRecord) -> None: ...
