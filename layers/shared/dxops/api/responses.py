"""Error bodies of the REST API. Every error has a stable code and a message safe to show."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from dxops.domain.quarantine import FieldError, RejectedItem


class ErrorBody(BaseModel):
    error: str
    message: str
    request_id: str | None = None
    errors: list[RejectedItem] | None = None
    fields: list[FieldError] | None = None


def error_body(code: str, message: str, request_id: str | None, **extra: Any) -> dict[str, Any]:
    return ErrorBody(error=code, message=message, request_id=request_id, **extra).model_dump(exclude_none=True)
