"""OpenAPI documents of the REST API, generated from the Powertools resolvers and the schemas.

Routes that parse their own bodies (POST /records validates each record of a batch on its own, so
valid ones are stored and invalid ones quarantined; POST /predict and /diagnoses take one record or
a batch) document their request bodies here, from the same pydantic models that validate them.

Each API function documents its own routes (its module's openapi_document()); `make openapi`
(tools/build_openapi.py) merges them into openapi.json beside this module, the document of the
whole API that GET /openapi.json serves.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

REF_TEMPLATE = "#/components/schemas/{model}"
PUBLISHED = Path(__file__).with_name("openapi.json")


def attach_request_body(document: dict[str, Any], path: str, method: str, shape: Any) -> None:
    """Document `shape` (a model, or a union or list of models) as the JSON body of one operation,
    with its definitions; a model is a component of its own, referenced by the operation."""
    schema = TypeAdapter(shape).json_schema(ref_template=REF_TEMPLATE, mode="validation")
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.update(schema.pop("$defs", {}))
    if isinstance(shape, type) and issubclass(shape, BaseModel):
        components[shape.__name__] = schema
        schema = {"$ref": REF_TEMPLATE.format(model=shape.__name__)}
    document["paths"][path][method]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": schema}},
    }


@cache
def published_document() -> dict[str, Any]:
    """The OpenAPI document of the whole API, as `make openapi` wrote it (read once)."""
    document: dict[str, Any] = json.loads(PUBLISHED.read_text(encoding="utf-8"))
    return document
