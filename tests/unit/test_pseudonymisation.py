"""Keyed pseudonyms: stable per key and site, different across keys and sites, not reversible by us."""

from __future__ import annotations

import hashlib

from pydantic import SecretStr

from dxops.domain.pseudonymisation import PseudonymKey, pseudonymise

KEY = PseudonymKey("v1", b"k" * 64)


def test_pseudonym_is_stable_and_hex() -> None:
    first = pseudonymise(KEY, "site-a", "MRN-1")
    assert first == pseudonymise(KEY, "site-a", SecretStr("MRN-1"))
    assert len(first) == 64
    int(first, 16)


def test_pseudonym_depends_on_key_site_and_identifier() -> None:
    base = pseudonymise(KEY, "site-a", "MRN-1")
    assert base != pseudonymise(PseudonymKey("v2", b"j" * 64), "site-a", "MRN-1")
    assert base != pseudonymise(KEY, "site-b", "MRN-1")
    assert base != pseudonymise(KEY, "site-a", "MRN-2")


def test_pseudonym_is_not_a_plain_hash_of_the_identifier() -> None:
    # Without the key, hashing candidate identifiers must not re-identify anyone.
    pseudonym = pseudonymise(KEY, "site-a", "MRN-1")
    for candidate in ("MRN-1", "site-a\x1fMRN-1", "site-aMRN-1"):
        assert pseudonym != hashlib.sha256(candidate.encode()).hexdigest()


def test_key_never_appears_in_repr() -> None:
    assert "k" * 10 not in repr(KEY)


def test_log_filter_erases_phi_named_extras_but_not_the_logger_name() -> None:
    import logging

    from dxops.observability import PhiFilter

    record = logging.LogRecord("ingest-api", logging.INFO, "app.py", 1, "hello", None, None)
    record.patient_id = "MRN-1"
    record.detail = {"batch": "b1", "nested": {"date_of_birth": "1961-03-04"}}
    assert PhiFilter().filter(record)
    assert record.name == "ingest-api"
    assert record.patient_id == "*****"
    assert record.detail == {"batch": "b1", "nested": {"date_of_birth": "*****"}}
