"""Layout of the raw zone and the quarantine, and the writing of NDJSON batches to them.

raw/<kind>/source=<site>/ingest_date=<YYYY-MM-DD>/<batch id>.ndjson      one line per record
quarantine/<kind>/ingest_date=<YYYY-MM-DD>/<batch id>.ndjson             one line per rejected item

Batch ids are derived from the request (idempotency key or queue message ids), so a replayed
batch overwrites its own object (a new S3 version) instead of adding a second copy.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from aws_lambda_powertools.utilities.data_masking import DataMasking
from pydantic import BaseModel, PrivateAttr, ValidationError

from dxops.adapters.ports import ObjectStore
from dxops.domain.pseudonymisation import PseudonymKey, pseudonymise
from dxops.schemas.common import DIRECT_IDENTIFIER_KEYS, FREE_TEXT_KEYS

Kind = Literal["clinical", "device"]
NDJSON = "application/x-ndjson"
# What the quarantine must not keep of a rejected item: identifiers at the top level (where the
# schemas would carry them; "name" is also a measurement's field), free text at any depth.
ERASED_FIELDS = [
    *(f"$.{key}" for key in sorted({"patient_id", *DIRECT_IDENTIFIER_KEYS})),
    *(f"$..{key}" for key in sorted(FREE_TEXT_KEYS)),
]
_masking = DataMasking(raise_on_missing_field=False)


class FieldError(BaseModel):
    path: str
    message: str
    type: str


class RejectedItem(BaseModel):
    index: int
    item_id: str | None = None
    errors: list[FieldError]
    # JSONPaths of the text values that failed validation: erased from the quarantine, since a
    # string in the wrong place can hold anything (a name in a code field, a note in a unit).
    _failed_text: list[str] = PrivateAttr(default_factory=list)


def batch_id_for(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def raw_key(kind: Kind, source: str, day: dt.date, batch_id: str) -> str:
    return f"raw/{kind}/source={source}/ingest_date={day.isoformat()}/{batch_id}.ndjson"


def quarantine_key(kind: Kind, day: dt.date, batch_id: str) -> str:
    return f"quarantine/{kind}/ingest_date={day.isoformat()}/{batch_id}.ndjson"


def field_path(loc: Sequence[int | str]) -> str:
    """('phenotypes', 0, 'hpo_id') -> 'phenotypes[0].hpo_id'."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(root)"


def field_errors(exc: ValidationError) -> list[FieldError]:
    # include_input=False: rejected values may be PHI and must not reach responses or logs.
    return [
        FieldError(path=field_path(err["loc"]), message=err["msg"].removeprefix("Value error, "), type=err["type"])
        for err in exc.errors(include_input=False, include_url=False)
    ]


def _value_at(item: Any, loc: Sequence[int | str]) -> Any:
    for part in loc:
        try:
            item = item[part]
        except (KeyError, IndexError, TypeError):
            return None
    return item


def _jsonpath(loc: Sequence[int | str]) -> str | None:
    if any(isinstance(p, str) and ("'" in p or "\\" in p) for p in loc):
        return None
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f"['{p}']" for p in loc)


def reject(index: int, item_id: str | None, exc: ValidationError, item: Any) -> RejectedItem:
    """The reasons an item was rejected, and which of its text values must not be kept."""
    rejected = RejectedItem(index=index, item_id=item_id, errors=field_errors(exc))
    for err in exc.errors(include_input=False, include_url=False):
        if err["loc"] and isinstance(_value_at(item, err["loc"]), str):
            rejected._failed_text.append(_jsonpath(err["loc"]) or "*")
    return rejected


def redact_rejected(item: Any, key: PseudonymKey, failed_text: Sequence[str] = ()) -> dict[str, Any]:
    """What the quarantine keeps of a rejected item: its content minus identifiers, free text and
    text values that failed validation (numbers are kept: an implausible heart rate is evidence).

    The patient identifier is replaced by its pseudonym when one can be computed, so the data
    team can link a fixed record to the patient without seeing who it is.
    """
    if not isinstance(item, dict) or "*" in failed_text:
        return {"item_type": type(item).__name__}
    pseudonym = None
    patient_id, source = item.get("patient_id"), item.get("source")
    if isinstance(patient_id, str) and isinstance(source, str) and patient_id:
        pseudonym = pseudonymise(key, source, patient_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "field not found" for absent keys
        erased: dict[str, Any] = _masking.erase(item, fields=[*ERASED_FIELDS, *failed_text])
    if pseudonym:
        erased["patient_pseudonym"] = pseudonym
    return {"item": erased}


def to_ndjson(lines: Iterable[BaseModel | dict[str, Any]]) -> bytes:
    rendered = (
        line.model_dump_json() if isinstance(line, BaseModel) else json.dumps(line, separators=(",", ":"), default=str)
        for line in lines
    )
    return ("\n".join(rendered) + "\n").encode()


def write_accepted(
    store: ObjectStore, kind: Kind, rows: Sequence[BaseModel], *, day: dt.date, batch_id: str
) -> list[str]:
    """Write accepted rows, one NDJSON object per source site; returns the object keys."""
    by_source: dict[str, list[BaseModel]] = defaultdict(list)
    for row in rows:
        by_source[getattr(row, "source")].append(row)  # noqa: B009 - rows of both kinds carry source
    keys = []
    for source, group in sorted(by_source.items()):
        key = raw_key(kind, source, day, batch_id)
        store.put_object(key, to_ndjson(group), NDJSON)
        keys.append(key)
    return keys


def write_quarantine(
    store: ObjectStore,
    kind: Kind,
    rejected: Sequence[tuple[RejectedItem, Any]],
    *,
    key: PseudonymKey,
    day: dt.date,
    batch_id: str,
    received_at: dt.datetime,
) -> str | None:
    """Write rejected items with their reasons; returns the object key, or None if nothing was rejected."""
    if not rejected:
        return None
    lines = [
        {
            **reason.model_dump(),
            **redact_rejected(item, key, reason._failed_text),
            "received_at": received_at.isoformat(),
        }
        for reason, item in rejected
    ]
    object_key = quarantine_key(kind, day, batch_id)
    store.put_object(object_key, to_ndjson(lines), NDJSON)
    return object_key
