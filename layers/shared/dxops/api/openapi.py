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

from dxops.api.responses import ErrorBody

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
    attach_request_schema(document, path, method, schema)


def attach_request_schema(
    document: dict[str, Any], path: str, method: str, schema: dict[str, Any], media_types: tuple[str, ...] = ()
) -> None:
    """Document a JSON schema as the body of one operation (application/json and `media_types`).

    For bodies in a standard's own format (a Phenopacket, a FHIR Bundle), whose schema belongs to
    the standard: the document names the standard and the routes' responses report what is wrong.
    """
    content = {media_type: {"schema": schema} for media_type in ("application/json", *media_types)}
    document["paths"][path][method]["requestBody"] = {"required": True, "content": content}


@cache
def published_document() -> dict[str, Any]:
    """The OpenAPI document of the whole API, as `make openapi` wrote it (read once)."""
    document: dict[str, Any] = json.loads(PUBLISHED.read_text(encoding="utf-8"))
    return document


# What API Gateway itself answers on any route, before the function runs.
GATEWAY_RESPONSES = {
    "403": "Refused by API Gateway: the request is not signed (SigV4) or the caller may not invoke it",
    "429": "Throttled by API Gateway (the stage's rate or burst limit): retry with backoff",
}
GATEWAY_MESSAGE = {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}
VALIDATION_FAILED = "The request does not match its schema: `fields` names each error (path and rule, never the value)"
RETRY_AFTER = {
    "description": "Seconds to wait before retrying",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}


def document_standard_responses(document: dict[str, Any], *, retry_after: tuple[str, ...] = ("503",)) -> None:
    """What every operation of this API answers, whatever its route declares.

    Every error is an ErrorBody (the routes declare only their statuses and descriptions; Powertools
    would document an untyped body, and its own 422 shape, which the handlers never send); a 204 has
    no body; the statuses in `retry_after` carry a Retry-After header; and API Gateway's own 403 and
    429 are documented, since a client meets them on every route."""
    schema = TypeAdapter(ErrorBody).json_schema(ref_template=REF_TEMPLATE, mode="serialization")
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.update(schema.pop("$defs", {}))
    components["ErrorBody"] = schema
    for powertools_error in ("HTTPValidationError", "ResponseValidationError", "ValidationError"):  # never sent
        components.pop(powertools_error, None)
    components["GatewayMessage"] = GATEWAY_MESSAGE
    error = {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(model="ErrorBody")}}}
    gateway = {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(model="GatewayMessage")}}}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, response in responses.items():
                if status == "204":
                    response.pop("content", None)
                elif status.isdigit() and int(status) >= 400:
                    response["content"] = error
                if status == "422" and response.get("description") in (None, "Validation Error"):  # Powertools'
                    response["description"] = VALIDATION_FAILED
                if status in retry_after:
                    response.setdefault("headers", {})["Retry-After"] = RETRY_AFTER
            for status, description in GATEWAY_RESPONSES.items():
                responses[status] = {"description": description, "content": gateway}


# The standards own their schemas: the documents name them (dxops validates with the standards' libraries).
PHENOPACKET_BODY: dict[str, Any] = {
    "description": "A GA4GH Phenopacket v2 (JSON, as protobuf JsonFormat writes it), an array of them, or a "
    "GA4GH Cohort whose members are phenopackets: https://phenopacket-schema.readthedocs.io/en/latest/",
    "oneOf": [
        {"type": "object", "title": "Phenopacket or Cohort"},
        {"type": "array", "minItems": 1, "items": {"type": "object", "title": "Phenopacket"}},
    ],
}
FHIR_BUNDLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "FHIR R4 Bundle",
    "required": ["resourceType"],
    "properties": {"resourceType": {"const": "Bundle"}, "entry": {"type": "array", "items": {"type": "object"}}},
}
FHIR_BUNDLE_BODY: dict[str, Any] = {
    "description": "A FHIR R4 Bundle (http://hl7.org/fhir/R4/bundle.html) of Patient, Encounter, Condition and "
    "Observation resources, or an array of Bundles",
    "oneOf": [
        FHIR_BUNDLE_SCHEMA,
        {"type": "array", "minItems": 1, "items": FHIR_BUNDLE_SCHEMA},
    ],
}
