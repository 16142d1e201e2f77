"""OpenAPI document of the ingestion API, generated from the Powertools resolver and the schemas.

POST /records validates each record of a batch on its own (so valid ones are stored and invalid
ones quarantined), so the route does its own parsing; its request body schema is generated here
from the same pydantic model that validates the records.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

REF_TEMPLATE = "#/components/schemas/{model}"


def attach_request_body(document: dict[str, Any], path: str, method: str, model: type[BaseModel]) -> None:
    """Document `model | list[model]` as the JSON body of one operation, with its definitions."""
    adapter: TypeAdapter[Any] = TypeAdapter(model | list[model])  # type: ignore[valid-type]
    schema = adapter.json_schema(ref_template=REF_TEMPLATE, mode="validation")
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.update(schema.pop("$defs", {}))
    document["paths"][path][method]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": schema}},
    }
