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
