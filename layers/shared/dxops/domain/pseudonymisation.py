"""Keyed pseudonymisation of patient identifiers (HMAC-SHA256).

The pseudonym of a patient is HMAC-SHA256(key, site + US + identifier), hex encoded. Without the
key it cannot be reversed or recomputed; with the key and a candidate identifier it can be
recomputed, which is how an authorised data controller re-identifies (see docs/privacy.md). The
site is part of the message because identifiers are only unique within a site.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from pydantic import SecretStr

_SEPARATOR = "\x1f"  # ASCII unit separator: cannot occur in a site id


@dataclass(frozen=True, repr=False)
class PseudonymKey:
    key_id: str
    secret: bytes

    def __repr__(self) -> str:  # never print the key
        return f"PseudonymKey(key_id={self.key_id!r})"


def pseudonymise(key: PseudonymKey, site: str, patient_id: SecretStr | str) -> str:
    raw = patient_id.get_secret_value() if isinstance(patient_id, SecretStr) else patient_id
    message = f"{site}{_SEPARATOR}{raw}".encode()
    return hmac.new(key.secret, message, hashlib.sha256).hexdigest()
