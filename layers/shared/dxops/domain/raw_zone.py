"""Layout of the raw zone and the quarantine, and the writing of NDJSON batches to them.

raw/<kind>/source=<site>/ingest_date=<YYYY-MM-DD>/<batch id>.ndjson      one line per record
quarantine/<kind>/ingest_date=<YYYY-MM-DD>/<batch id>.ndjson             one line per rejected item
                                                                        (written by dxops.domain.quarantine)

Batch ids are derived from the request (idempotency key or queue message ids), so a replayed
batch overwrites its own object (a new S3 version) instead of adding a second copy.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from dxops.adapters.ports import ObjectStore

Kind = Literal["clinical", "device"]
NDJSON = "application/x-ndjson"


def batch_id_for(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def raw_key(kind: Kind, source: str, day: dt.date, batch_id: str) -> str:
    return f"raw/{kind}/source={source}/ingest_date={day.isoformat()}/{batch_id}.ndjson"


def quarantine_key(kind: Kind, day: dt.date, batch_id: str) -> str:
    return f"quarantine/{kind}/ingest_date={day.isoformat()}/{batch_id}.ndjson"


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
