"""In-memory fakes of the ports in dxops.adapters.ports, for unit tests without AWS."""

from __future__ import annotations

import json
from typing import Any

from dxops.domain.pseudonymisation import PseudonymKey
from dxops.schemas.device import DeviceBinding


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
