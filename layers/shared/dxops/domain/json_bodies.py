"""JSON documents from outside (a request body, a file, a line of one), parsed with bounded depth.

Errors are MalformedPayload with where the text fails, never what it holds.
"""

from __future__ import annotations

import json
from typing import Any

from dxops.domain.errors import MalformedPayload

MAX_JSON_DEPTH = 32  # a record nests 4 levels, a FHIR Bundle about 8; deeper input only costs memory


def parse_json_document(text: bytes | str, what: str = "body", *, one_line: bool = False) -> Any:
    """A JSON document (a body, a file, a line of one), or MalformedPayload naming `what` failed
    (and where: a column of `what` when it is one line of a file)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"column {exc.colno}" if one_line else f"line {exc.lineno} column {exc.colno}"
        raise MalformedPayload(f"{what} is not valid JSON at {where}") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        # not UTF-8, an integer beyond Python's digit limit, nesting too deep to parse
        raise MalformedPayload(f"{what} is not valid JSON (encoding, number size or nesting depth)") from None
    if _depth_exceeds(document, MAX_JSON_DEPTH):
        raise MalformedPayload(f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    return document


def _depth_exceeds(document: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return False
