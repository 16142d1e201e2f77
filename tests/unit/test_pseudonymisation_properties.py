"""Properties of the keyed pseudonymisation (Hypothesis): for any site, identifier and key."""

from __future__ import annotations

import re

from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import SecretStr

from dxops.domain.pseudonymisation import PseudonymKey, pseudonymise

# As the schemas allow them (SiteId, PatientIdentifier): any text for identifiers, 1 to 256 characters.
sites = st.from_regex(r"\A[a-z0-9][a-z0-9\-]{0,63}\Z")
patient_ids = st.text(min_size=1, max_size=256)
keys = st.builds(PseudonymKey, key_id=st.just("k"), secret=st.binary(min_size=32, max_size=64))
PSEUDONYM = re.compile(r"[0-9a-f]{64}")


@given(keys, sites, patient_ids)
def test_a_pseudonym_is_stable_and_the_same_for_a_secret_or_plain_identifier(
    key: PseudonymKey, site: str, patient_id: str
) -> None:
    pseudonym = pseudonymise(key, site, patient_id)
    assert PSEUDONYM.fullmatch(pseudonym)
    assert pseudonymise(key, site, SecretStr(patient_id)) == pseudonym == pseudonymise(key, site, patient_id)


@given(keys, sites, patient_ids, sites, patient_ids)
def test_different_patients_get_different_pseudonyms(
    key: PseudonymKey, site: str, patient_id: str, other_site: str, other_id: str
) -> None:
    # Also across sites: an identifier is only unique within its site, and no (site, identifier)
    # pair can be shifted into another one (the separator cannot occur in a site id).
    assume((site, patient_id) != (other_site, other_id))
    assert pseudonymise(key, site, patient_id) != pseudonymise(key, other_site, other_id)


@given(keys, keys, sites, patient_ids)
def test_a_pseudonym_depends_on_the_key(key: PseudonymKey, other_key: PseudonymKey, site: str, patient_id: str) -> None:
    assume(key.secret != other_key.secret)
    assert pseudonymise(key, site, patient_id) != pseudonymise(other_key, site, patient_id)


@given(keys)
def test_a_key_never_shows_its_secret(key: PseudonymKey) -> None:
    assert key.secret.hex() not in repr(key) and str(key.secret) not in repr(key)
