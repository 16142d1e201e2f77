"""Binding a device to a patient: the only place a device's patient identity enters dxops.

An authorised hospital system (IAM-signed API call) says which patient a device measures; the
identifier is pseudonymised at once, and only the pseudonym is stored. Readings from the device
are then attributed to that pseudonym; devices themselves never carry patient identity.
"""

from __future__ import annotations

import datetime as dt

from dxops.adapters.ports import DeviceBindingStore, KeyProvider
from dxops.domain.pseudonymisation import pseudonymise
from dxops.schemas.device import DeviceBinding, DeviceBindingRequest


def bind_device(
    device_id: str,
    request: DeviceBindingRequest,
    *,
    store: DeviceBindingStore,
    keys: KeyProvider,
    now: dt.datetime | None = None,
) -> DeviceBinding:
    key = keys.current_key()
    binding = DeviceBinding(
        device_id=device_id,
        source=request.source,
        patient_pseudonym=pseudonymise(key, request.source, request.patient_id),
        pseudonym_key_id=key.key_id,
        bound_at=now or dt.datetime.now(dt.UTC),
    )
    store.put(binding)
    return binding


def unbind_device(device_id: str, *, store: DeviceBindingStore) -> bool:
    return store.delete(device_id)
