"""In-memory fakes of the ports in dxops.adapters.ports, for unit tests without AWS."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from typing import Any

from dxops.domain.pseudonymisation import PseudonymKey
from dxops.schemas.device import DeviceBinding
from dxops.schemas.training_triggers import GuardState, TriggerRecord


class InMemoryObjectStore:
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.writes = 0
        self.fail_with = fail_with

    def put_object(self, key: str, body: bytes, content_type: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        assert content_type == "application/x-ndjson"
        self.writes += 1
        self.objects[key] = body

    def lines(self, prefix: str) -> list[dict[str, Any]]:
        return [
            json.loads(line)
            for key, body in sorted(self.objects.items())
            if key.startswith(prefix)
            for line in body.decode().splitlines()
        ]


class StaticKeyProvider:
    def __init__(self, key_id: str = "test-v1", secret: bytes = b"test-secret-key-0123456789") -> None:
        self.key = PseudonymKey(key_id=key_id, secret=secret)

    def current_key(self) -> PseudonymKey:
        return self.key


class InMemoryDeviceBindings:
    def __init__(self, *bindings: DeviceBinding) -> None:
        self.bindings = {b.device_id: b for b in bindings}
        self.lookups = 0

    def get_many(self, device_ids: set[str]) -> dict[str, DeviceBinding]:
        self.lookups += 1
        return {d: self.bindings[d] for d in device_ids if d in self.bindings}

    def put(self, binding: DeviceBinding) -> None:
        self.bindings[binding.device_id] = binding

    def delete(self, device_id: str) -> bool:
        return self.bindings.pop(device_id, None) is not None

    def delete_for_patient(self, patient_pseudonym: str) -> int:
        devices = [d for d, b in self.bindings.items() if b.patient_pseudonym == patient_pseudonym]
        return sum(self.delete(d) for d in devices)


class InMemoryObjectClaims:
    """ObjectClaims: the first claim of an identity wins; `busy` identities are being claimed elsewhere."""

    def __init__(self, busy: set[str] | None = None) -> None:
        self.claims: dict[str, Any] = {}
        self.busy = busy or set()

    def claim(self, identity: str, run: Any) -> Any:
        from dxops.domain.dataset_trigger import Claim

        if identity in self.busy:
            return None
        if identity in self.claims:
            return Claim(run=self.claims[identity], fresh=False)
        self.claims[identity] = run
        return Claim(run=run, fresh=True)


class RecordingRunStarter:
    """RunStarter: executions by name, started at most once (as Step Functions does)."""

    def __init__(self) -> None:
        self.executions: dict[str, Any] = {}
        self.calls = 0

    def ensure_started(self, run: Any) -> bool:
        self.calls += 1
        if run.name in self.executions:
            return False
        self.executions[run.name] = run
        return True


class InMemoryDatasetFiles:
    """DatasetFiles over a dict of key -> JSON document (or bytes for data files)."""

    def __init__(self, bucket: str = "curated-bucket") -> None:
        self.bucket = bucket
        self.objects: dict[str, Any] = {}
        self.noncurrent: list[str] = []  # keys with older versions (what an erasure must purge)

    def read_json(self, key: str) -> Any:
        return self.objects.get(key)

    def write_json_once(self, key: str, document: Any) -> bool:
        if key in self.objects:
            return False
        self.objects[key] = json.loads(json.dumps(document))
        return True

    def overwrite_json(self, key: str, document: Any) -> None:
        self.objects[key] = json.loads(json.dumps(document))

    def purge_noncurrent(self, prefix: str) -> int:
        purged = sum(1 for k in self.noncurrent if k.startswith(prefix))
        self.noncurrent = [k for k in self.noncurrent if not k.startswith(prefix)]
        return purged

    def copy(self, source_key: str, target_key: str) -> None:
        self.objects[target_key] = self.objects[source_key]

    def delete_prefix(self, prefix: str) -> int:
        keys = [k for k in self.objects if k.startswith(prefix)]
        for key in keys:
            del self.objects[key]
        return len(keys)

    def subfolders(self, prefix: str) -> list[str]:
        return sorted(
            {
                k[len(prefix) :].split("/", 1)[0]
                for k in self.objects
                if k.startswith(prefix) and "/" in k[len(prefix) :]
            }
        )


class InMemoryCatalog:
    """DatasetCatalog: remembers what the table points at (and the figures it shows)."""

    def __init__(self) -> None:
        self.pointer: Any = None
        self.columns: list[dict[str, str]] = []
        self.partitions: list[str] = []

    def point_to(self, manifest: Any, manifest_uri: str, columns: list[dict[str, str]]) -> None:
        self.pointer = (manifest, manifest_uri)
        self.columns = columns
        self.partitions = list(manifest.partitions)

    def amend(self, manifest: Any) -> None:
        if self.pointer is not None and self.pointer[0].dataset_version == manifest.dataset_version:
            self.pointer = (manifest, self.pointer[1])


class InMemoryVersionedObjects:
    """RewritableObjects: a versioned bucket (every version kept until purged; None = delete marker).

    `interfere` simulates a concurrent writer: called once before a conditional write, it may
    change the object so that the write's precondition fails."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.versions: dict[str, list[bytes | None]] = {k: [v] for k, v in objects.items()}
        self.interfere: Any = None

    def list_keys(self) -> Any:
        return iter(sorted(self.versions))

    def read_versions(self, key: str) -> list[Any]:
        from dxops.adapters.ports import StoredVersion

        history = self.versions.get(key, [])
        return [
            StoredVersion(version_id=str(i), etag=f"etag-{i}", is_latest=i == len(history) - 1, body=body)
            for i, body in reversed(list(enumerate(history)))
        ]

    def replace(self, key: str, body: bytes, if_match: str) -> None:
        from dxops.domain.erasure import ConcurrentChange

        if self.interfere is not None:
            interfere, self.interfere = self.interfere, None
            interfere(self)
        if if_match != f"etag-{len(self.versions[key]) - 1}":
            raise ConcurrentChange(key)
        self.versions[key].append(body)

    def purge_older_versions(self, key: str) -> int:
        older = [v for v in self.versions[key][:-1] if v is not None]
        self.versions[key] = self.versions[key][-1:]
        return len(older)

    def remove(self, key: str) -> int:
        return len([v for v in self.versions.pop(key, []) if v is not None])


class InMemoryAuditLog:
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], Any] = {}

    def write(self, record: Any) -> None:
        key = (record.request_id, record.status)
        assert key not in self.records, "audit records are written once"
        self.records[key] = record

    def read(self, request_id: str) -> dict[str, Any]:
        return {status: r for (rid, status), r in self.records.items() if rid == request_id}


class RecordingErasureRuns:
    def __init__(self) -> None:
        self.started: list[Any] = []
        self.statuses: dict[str, str] = {}

    def start(self, erasure: Any) -> None:
        self.started.append(erasure)
        self.statuses[erasure.request_id] = "RUNNING"

    def status(self, request_id: str) -> str | None:
        return self.statuses.get(request_id)


class InMemoryMonitoringStore(InMemoryObjectStore):
    """ObjectStore and WriteOnceStore (conditional writes) over a dict, as S3MonitoringStore."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        super().__init__(fail_with)
        self.refused_writes = 0

    def put_object_once(self, key: str, body: bytes, content_type: str) -> bool:
        if key in self.objects:
            self.refused_writes += 1
            return False
        self.put_object(key, body, content_type)
        return True


class FakeDiagnosisEndpoint:
    """PredictionEndpoint answering as ml/inference.py does: {"model_version", "predictions": [{
    "record_id", "diagnoses", "rare_candidates", "contributions"}]} in request order, diagnoses as
    {"disease_id", "name", "probability"}. Keeps every body it received; raises fail_with if set."""

    MODEL_VERSION = "3f9c2ab1-0123456789ab-5e6f7a8b"
    DISEASES = (
        ("ORPHA:33069", "Dravet syndrome"),
        ("ICD10:G40.9", "Epilepsy, unspecified"),
        ("ORPHA:558", "Marfan syndrome"),
        ("ICD10:J45", "Asthma"),
        ("OMIM:154700", "Marfan syndrome (OMIM)"),
        ("ORPHA:508", None),
    )

    def __init__(self, fail_with: Exception | None = None, answer: bytes | None = None) -> None:
        self.bodies: list[bytes] = []
        self.content_types: list[str] = []
        self.fail_with = fail_with
        self.answer = answer

    @property
    def sent(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body in self.bodies]

    def invoke(self, body: bytes, content_type: str) -> bytes:
        self.bodies.append(body)
        self.content_types.append(content_type)
        if self.fail_with is not None:
            raise self.fail_with
        if self.answer is not None:
            return self.answer
        request = json.loads(body)
        top_k, explain = request.get("top_k", 10), request.get("explain", True)
        predictions = []
        for index, record in enumerate(request["records"]):
            ranked = self.DISEASES[index % 2 :][:top_k]
            probabilities = [round(0.6 / (rank + 1), 6) for rank in range(len(ranked))]
            diagnoses = [
                {"disease_id": code, "name": name, "probability": p}
                for (code, name), p in zip(ranked, probabilities, strict=True)
            ]
            rare = [d for d in diagnoses if d["disease_id"].startswith("ORPHA:")][:5]
            features = [*(p["hpo_id"] for p in record.get("phenotypes", [])[:3]), "age_years"]
            contributions = [{"feature": f, "contribution": 0.42} for f in features] if explain else []
            predictions.append(
                {
                    "record_id": record.get("record_id"),
                    "diagnoses": diagnoses,
                    "rare_candidates": rare,
                    "contributions": contributions,
                }
            )
        return json.dumps({"model_version": self.MODEL_VERSION, "predictions": predictions}).encode()


# --- Model lifecycle (training, registry, approval, deployment) ------------------------------------


def _json_copy(document: Any) -> Any:
    """What a round trip through S3 or a state machine leaves of a document."""
    return json.loads(json.dumps(document, default=str))


class InMemoryExecutions:
    """Executions: a state machine's named executions, name -> input document. A name starts at most
    one execution, as Step Functions keeps names unique (for 90 days after the execution closed:
    `forget` frees a name as that retention does). `fail_next` is raised by the next start (a crash)."""

    def __init__(self) -> None:
        self.executions: dict[str, str] = {}
        self.statuses: dict[str, str] = {}
        self.starts: list[str] = []  # every execution started, in order
        self.fail_next: Exception | None = None

    def ensure_started(self, name: str, document: str) -> bool:
        if self.fail_next is not None:
            failure, self.fail_next = self.fail_next, None
            raise failure
        if name in self.executions:
            return False
        json.loads(document)  # an execution's input is JSON
        self.executions[name] = document
        self.statuses[name] = "RUNNING"
        self.starts.append(name)
        return True

    def status(self, name: str) -> str | None:
        return self.statuses.get(name)

    def finish(self, name: str, status: str = "SUCCEEDED") -> None:
        self.statuses[name] = status

    def input(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.executions[name]))

    def forget(self, name: str) -> None:
        del self.executions[name]
        self.statuses.pop(name, None)


class InMemoryJsonDocuments:
    """JsonDocuments keyed by s3:// URI; a missing document reads as None (as S3JsonDocuments)."""

    def __init__(self, documents: dict[str, Any] | None = None) -> None:
        self.documents: dict[str, Any] = {uri: _json_copy(d) for uri, d in (documents or {}).items()}
        self.written: list[str] = []

    def read(self, uri: str) -> Any:
        assert uri.startswith("s3://"), uri
        return _json_copy(self.documents[uri]) if uri in self.documents else None

    def write(self, uri: str, document: Any) -> None:
        assert uri.startswith("s3://"), uri
        self.documents[uri] = _json_copy(document)
        self.written.append(uri)


class InMemoryRegistry:
    """ModelRegistry: one model package group, versions 1..n in registration order. Every status
    change and annotation is recorded (each is an update the real registry announces by an event)."""

    def __init__(self, group: str = "dxops-dev-diagnosis") -> None:
        self.group = group
        self.packages: dict[str, dict[str, Any]] = {}
        self.status_changes: list[tuple[str, str, str]] = []  # (arn, status, description)
        self.annotations: list[tuple[str, dict[str, str]]] = []

    def arn(self, version: int) -> str:
        return f"arn:aws:sagemaker:eu-west-1:123456789012:model-package/{self.group}/{version}"

    def register(self, request: dict[str, Any]) -> tuple[str, int]:
        assert request["ModelPackageGroupName"] == self.group
        assert all(isinstance(v, str) for v in request.get("CustomerMetadataProperties", {}).values())
        version = len(self.packages) + 1
        arn = self.arn(version)
        package = _json_copy(request)
        package.update(ModelPackageArn=arn, ModelPackageVersion=version, ModelPackageStatus="Completed")
        package.setdefault("ModelApprovalStatus", "PendingManualApproval")
        package.setdefault("CustomerMetadataProperties", {})
        self.packages[arn] = package
        return arn, version

    def _package(self, package_arn: str) -> dict[str, Any]:
        if package_arn not in self.packages:
            raise LookupError(f"model package {package_arn} does not exist")
        return self.packages[package_arn]

    def set_status(self, package_arn: str, status: str, description: str) -> None:
        assert status in ("Approved", "Rejected", "PendingManualApproval") and len(description) <= 1024
        package = self._package(package_arn)
        package.update(ModelApprovalStatus=status, ApprovalDescription=description)
        self.status_changes.append((package_arn, status, description))

    def annotate(self, package_arn: str, properties: dict[str, str]) -> None:
        assert all(isinstance(v, str) for v in properties.values())
        self._package(package_arn)["CustomerMetadataProperties"].update(properties)
        self.annotations.append((package_arn, dict(properties)))

    def describe(self, package_arn: str) -> dict[str, Any]:
        return dict(_json_copy(self._package(package_arn)))

    def status(self, version: int) -> str:
        return str(self._package(self.arn(version))["ModelApprovalStatus"])


class RecordingExperiments:
    """ExperimentLog: one trial per run name, with what was recorded."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}

    def record_run(
        self, run_name: str, parameters: dict[str, Any], metrics: dict[str, float], artifacts: dict[str, str]
    ) -> None:
        self.runs[run_name] = {"parameters": dict(parameters), "metrics": dict(metrics), "artifacts": dict(artifacts)}


class RecordingTaskTokens:
    """TaskTokens: the answers by token. A token is answered once; `gone` tokens belong to executions
    that no longer wait (timed out, stopped): answering them returns False, as StepFunctionsTaskTokens."""

    def __init__(self, gone: set[str] | None = None) -> None:
        self.gone = set(gone or ())
        self.succeeded: dict[str, str] = {}  # token -> output
        self.failed: dict[str, tuple[str, str]] = {}  # token -> (error, cause)
        self.refused: list[str] = []  # answers to tokens nobody waits for

    def _waiting(self, token: str) -> bool:
        if token in self.gone or token in self.succeeded or token in self.failed:
            self.refused.append(token)
            return False
        return True

    def succeed(self, token: str, output: str) -> bool:
        if not self._waiting(token):
            return False
        json.loads(output)  # the task's output is JSON
        self.succeeded[token] = output
        return True

    def fail(self, token: str, error: str, cause: str) -> bool:
        if not self._waiting(token):
            return False
        self.failed[token] = (error, cause)
        return True


class InMemoryModelVersions:
    """ModelVersions with the semantics of dxops.adapters.model_versions.DynamoDbModelVersions (the
    contract tests in tests/unit/test_approvals.py run the same scenarios against both). Per version,
    the item's attributes: doc (the record as written), and the state its conditional updates guard:
    approval_status, approval, task_token, last_event_status, deployment_run, deployment_status."""

    PENDING = "PendingManualApproval"

    def __init__(self) -> None:
        self.items: dict[int, dict[str, Any]] = {}
        self.rejections: dict[str, Any] = {}  # run name -> RejectedCandidate
        self.registrations: dict[str, tuple[str, int]] = {}  # training job -> (package ARN, version)
        self.champion_record: Any = None

    def _updated(self, package_version: int) -> dict[str, Any]:
        return self.items.setdefault(package_version, {})  # an update creates the item, as UpdateItem does

    def put_version(self, record: Any) -> None:
        item = self._updated(record.package_version)
        item.update(doc=record, approval_status=record.approval_status)
        if record.approval is not None:
            item["approval"] = record.approval

    def get(self, package_version: int) -> Any:
        item = self.items.get(package_version, {})
        if "doc" not in item:
            return None
        fields = ("approval_status", "approval", "deployment_status")
        return item["doc"].model_copy(update={key: item[key] for key in fields if key in item})

    def list_versions(self) -> list[Any]:
        return [record for version in sorted(self.items) if (record := self.get(version)) is not None]

    def put_rejection(self, rejected: Any) -> None:
        self.rejections[rejected.run_name] = rejected

    def _pending(self, package_version: int, what: str) -> dict[str, Any]:
        from dxops.domain.approvals import NotPending

        item = self.items.get(package_version, {})
        if item.get("approval_status") != self.PENDING:
            raise NotPending(f"model version {package_version} {what}")
        return item

    def set_task_token(self, package_version: int, token: str) -> None:
        self._pending(package_version, "is not waiting for approval")["task_token"] = token

    def decide(self, package_version: int, approval: Any) -> None:
        item = self._pending(package_version, "was decided already")
        item.update(approval_status=approval.status, approval=approval)

    def clear_task_token(self, package_version: int) -> None:
        self.items.get(package_version, {}).pop("task_token", None)

    def observe_status(self, package_version: int, status: str, deployment_run: str) -> str | None:
        item = self._updated(package_version)
        if status != "Approved":
            item["last_event_status"] = status
            return None
        if item.get("last_event_status") != status:
            item.update(last_event_status=status, deployment_run=deployment_run)
            return deployment_run
        run: str | None = item.get("deployment_run")
        return run

    def registration(self, training_job: str) -> tuple[str, int] | None:
        found: tuple[str, int] | None = self.registrations.get(training_job)
        return found

    def record_registration(self, training_job: str, package_arn: str, package_version: int) -> None:
        self.registrations[training_job] = (package_arn, package_version)

    def deployment_started(self, package_version: int, deployment_run: str) -> None:
        item = self._updated(package_version)
        if item.get("deployment_run") == deployment_run:
            del item["deployment_run"]

    def set_deployment_status(self, package_version: int, status: str) -> None:
        self._updated(package_version)["deployment_status"] = status

    def champion(self) -> Any:
        return self.champion_record

    def set_champion(self, champion: Any) -> None:
        self.champion_record = champion

    def task_token(self, package_version: int) -> str | None:
        token: str | None = self.items.get(package_version, {}).get("task_token")
        return token


class StubEndpointState:
    """EndpointState: the configuration each existing endpoint serves."""

    def __init__(self, configs: dict[str, str] | None = None) -> None:
        self.configs = dict(configs or {})

    def current_config(self, endpoint_name: str) -> str | None:
        return self.configs.get(endpoint_name)


class StaticSampleRecords:
    """SampleRecords: the given raw-zone lines, most recent first; remembers how many were asked for."""

    def __init__(self, lines: list[dict[str, Any]]) -> None:
        self.lines = [_json_copy(line) for line in lines]
        self.asked: list[int] = []

    def latest(self, count: int) -> list[dict[str, Any]]:
        self.asked.append(count)
        return [_json_copy(line) for line in self.lines[:count]]


class ScriptedEndpoint(FakeDiagnosisEndpoint):
    """PredictionEndpoint answering the given bytes, or raising the given error (EndpointUnavailable,
    ModelRefused); keeps every body it received."""

    def __init__(self, answer: bytes | Exception) -> None:
        if isinstance(answer, Exception):
            super().__init__(fail_with=answer)
        else:
            super().__init__(answer=answer)


class InMemoryTrainingTriggers:
    """TrainingTriggers: the guard's state with its revision check, and the triggers recorded.
    `interleave` runs once before the next conditional write (another trigger winning the race)."""

    def __init__(self) -> None:
        self.state = GuardState()
        self.records: list[TriggerRecord] = []
        self.interleave: Callable[[], None] | None = None
        self._lock = threading.Lock()  # the conditional write is atomic, as DynamoDB's

    def guard_state(self) -> GuardState:
        return self.state

    def replace_guard_state(self, state: GuardState, *, expected_revision: int) -> bool:
        if self.interleave is not None:
            interleave, self.interleave = self.interleave, None
            interleave()
        with self._lock:
            if self.state.revision != expected_revision:
                return False
            self.state = state
            return True

    def record(self, trigger: TriggerRecord) -> None:
        self.records.append(trigger)

    def recent(self, since: dt.datetime) -> list[TriggerRecord]:
        return sorted((r for r in self.records if r.at >= since), key=lambda r: r.at)


class InMemoryKeyListing:
    """KeyListing over a set of keys (or over an InMemoryObjectStore's objects)."""

    def __init__(self, keys: list[str] | None = None, store: InMemoryObjectStore | None = None) -> None:
        self.keys = list(keys or [])
        self.store = store

    def list_keys(self, prefix: str) -> list[str]:
        keys = set(self.keys) | set(self.store.objects if self.store is not None else ())
        return sorted(k for k in keys if k.startswith(prefix))


class StaticFiringAlarms:
    """FiringAlarms: the alarms given, as CloudWatchFiringAlarms describes them."""

    def __init__(self, *alarms: dict[str, Any]) -> None:
        self.alarms = list(alarms)

    def firing(self) -> list[dict[str, Any]]:
        return list(self.alarms)
