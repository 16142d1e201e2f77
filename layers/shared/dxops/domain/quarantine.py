"""Rejected input: its reasons (field paths, safe messages) and what the quarantine keeps of it.

What is kept is decided by the schema, not by a list of forbidden names: a rejected item keeps
only the fields its schema knows, recursively; unknown fields (whatever their name or value) are
dropped and only counted; a known field holding the wrong kind of value (an object where text is
expected) is dropped; text values that failed validation are erased with Powertools data
masking; the patient identifier is replaced by its pseudonym. Numbers that failed (a heart rate
of 900) are kept: they are the evidence the data team needs.
"""

from __future__ import annotations

import datetime as dt
import re
import types
import typing
import warnings
from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools.utilities.data_masking import DataMasking
from pydantic import BaseModel, PrivateAttr, ValidationError

from dxops.adapters.ports import ObjectStore
from dxops.domain.pseudonymisation import PseudonymKey, pseudonymise
from dxops.domain.raw_zone import NDJSON, Kind, quarantine_key, to_ndjson

UNKNOWN_FIELD = "(unknown field)"  # error paths never name an unknown key: the key itself may be PHI
_ITEM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
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


def field_path(loc: Sequence[int | str]) -> str:
    """('phenotypes', 0, 'hpo_id') -> 'phenotypes[0].hpo_id'."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(root)"


def _safe_loc(err: Any) -> tuple[int | str, ...]:
    loc = tuple(err["loc"])
    return (*loc[:-1], UNKNOWN_FIELD) if err["type"] == "extra_forbidden" and loc else loc


def field_errors(exc: ValidationError) -> list[FieldError]:
    # include_input=False: rejected values may be PHI and must not reach responses or logs.
    return safe_field_errors(exc.errors(include_input=False, include_url=False))


def safe_field_errors(errors: Sequence[Any], drop_prefix: str | None = None) -> list[FieldError]:
    """Pydantic-style error dicts as FieldErrors: path, message, type; never the input value."""
    result = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        if drop_prefix and loc[:1] == (drop_prefix,):
            loc = loc[1:]
        located = {**err, "loc": loc}
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        result.append(FieldError(path=field_path(_safe_loc(located)), message=message, type=str(err.get("type", ""))))
    return result


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


def safe_item_id(value: Any) -> str | None:
    """An item's id for reports, only when it has the shape of an id (an invalid one may be a name)."""
    return value if isinstance(value, str) and _ITEM_ID.fullmatch(value) else None


def reject(index: int, item_id: Any, exc: ValidationError, item: Any) -> RejectedItem:
    """The reasons an item was rejected, and which of its text values must not be kept."""
    rejected = RejectedItem(index=index, item_id=safe_item_id(item_id), errors=field_errors(exc))
    for err in exc.errors(include_input=False, include_url=False):
        if err["loc"] and err["type"] != "extra_forbidden" and isinstance(_value_at(item, err["loc"]), str):
            rejected._failed_text.append(_jsonpath(err["loc"]) or "*")
    return rejected


def _unwrap(annotation: Any) -> tuple[str, Any]:
    """What a field holds: ('model', M), ('models', M) for a list of M, or ('scalar(s)', None)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            kind, model = _unwrap(arg)
            if model is not None:
                return kind, model
        return "scalar", None
    if origin is list:
        kind, model = _unwrap(typing.get_args(annotation)[0])
        return ("models", model) if kind == "model" else ("scalars", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model", annotation
    return "scalar", None


_SCALARS = (str, int, float, bool, type(None))


def _drop(dropped: list[int]) -> Any:
    """Count a dropped value; what stands in its place in a list is None."""
    dropped[0] += 1
    return None


def _known_fields(value: dict[str, Any], model: type[BaseModel], dropped: list[int]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, field_value in value.items():
        field = model.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            dropped[0] += 1
            continue
        kind, sub_model = _unwrap(field.annotation)
        if kind == "model" and isinstance(field_value, dict):
            kept[key] = _known_fields(field_value, sub_model, dropped)
        elif kind == "models" and isinstance(field_value, list):
            kept[key] = [
                _known_fields(v, sub_model, dropped) if isinstance(v, dict) else _drop(dropped) for v in field_value
            ]
        elif kind == "scalars" and isinstance(field_value, list):
            kept[key] = [v if isinstance(v, _SCALARS) else _drop(dropped) for v in field_value]
        elif kind == "scalar" and isinstance(field_value, _SCALARS):
            kept[key] = field_value
        else:
            dropped[0] += 1  # the wrong kind of value for this field: it could hold anything
    return kept


def redact_rejected(
    item: Any, model: type[BaseModel], key: PseudonymKey, failed_text: Sequence[str] = ()
) -> dict[str, Any]:
    """What the quarantine keeps of a rejected item (see the module docstring)."""
    if not isinstance(item, dict) or "*" in failed_text:
        return {"item_type": type(item).__name__}
    dropped = [0]
    kept = _known_fields(item, model, dropped)
    patient_id, source = kept.pop("patient_id", None), kept.get("source")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "field not found" for paths of dropped fields
        erased: dict[str, Any] = _masking.erase(kept, fields=list(failed_text)) if failed_text else kept
    if isinstance(patient_id, str) and patient_id.strip() and isinstance(source, str):
        erased["patient_pseudonym"] = pseudonymise(key, source.strip(), patient_id.strip())
    return {"item": erased, "unknown_or_malformed_fields_dropped": dropped[0]}


def write_quarantine(
    store: ObjectStore,
    kind: Kind,
    model: type[BaseModel],
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
            **redact_rejected(item, model, key, reason._failed_text),
            "received_at": received_at.isoformat(),
        }
        for reason, item in rejected
    ]
    object_key = quarantine_key(kind, day, batch_id)
    store.put_object(object_key, to_ndjson(lines), NDJSON)
    return object_key
