"""Names of fields and columns that carry direct identifiers or free text (PHI risk).

The API refuses them by name (dxops.schemas.common) and the training code never uses a column so
named as a feature (ml/table.py). Standard library only: it also runs in the training image.
"""

from __future__ import annotations

FREE_TEXT_KEYS = frozenset({"notes", "note", "free_text", "comment", "comments", "narrative", "text"})
DIRECT_IDENTIFIER_KEYS = frozenset(
    {
        "name",
        "given_name",
        "family_name",
        "first_name",
        "last_name",
        "full_name",
        "date_of_birth",
        "dob",
        "birth_date",
        "birthdate",
        "address",
        "street",
        "postcode",
        "zip",
        "phone",
        "email",
        "ssn",
        "national_id",
        "mrn",
    }
)

# Ages over 89 are one of HIPAA Safe Harbor's identifiers: ingestion caps ages at 90.
HIPAA_AGE_CAP = 90.0
