"""Code systems accepted for diagnoses and history: ICD-10, ORPHA, OMIM; and LOINC check digits."""

from __future__ import annotations

import re

# Codes are written "SYSTEM:code", the convention of the HPO annotations (OMIM:154700, ORPHA:558).
CODE_PATTERNS: dict[str, re.Pattern[str]] = {
    "ICD10": re.compile(r"[A-TV-Z][0-9]{2}(\.[0-9A-Z]{1,4})?"),
    "ORPHA": re.compile(r"[1-9][0-9]{0,6}"),
    "OMIM": re.compile(r"[1-9][0-9]{5}"),
}
CODE_REGEX = r"^(ICD10|ORPHA|OMIM):[0-9A-Z.]{1,10}$"


def check_code(value: str) -> str:
    system, _, code = value.partition(":")
    pattern = CODE_PATTERNS.get(system)
    if pattern is None:
        raise ValueError(f"unknown code system; expected one of {sorted(CODE_PATTERNS)}")
    if not pattern.fullmatch(code):
        raise ValueError(f"not a valid {system} code")
    return value


LOINC_REGEX = r"^[0-9]{1,7}-[0-9]$"


def check_loinc(value: str) -> str:
    """Verify the LOINC mod-10 check digit, catching typos that the pattern alone lets through."""
    body, _, check = value.partition("-")
    digits = [int(d) for d in body]
    total = 0
    # Luhn-style: double every second digit from the right of the body.
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 0:
            doubled = digit * 2
            total += doubled // 10 + doubled % 10
        else:
            total += digit
    expected = (10 - total % 10) % 10
    if expected != int(check):
        raise ValueError(f"LOINC code {value} has a wrong check digit (expected {expected})")
    return value
