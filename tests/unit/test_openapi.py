"""The OpenAPI document of the whole REST API (layers/shared/dxops/api/openapi.json, served at
GET /openapi.json) is generated from the functions' routes and schemas: it is up to date, documents
exactly the routes template.yaml declares, and every operation is SigV4-signed."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from tools.build_openapi import HTTP_METHODS, OpenApiConflict, merge_documents

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = REPO / "layers" / "shared" / "dxops" / "api" / "openapi.json"


@pytest.fixture(scope="module")
def published() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(PUBLISHED.read_text(encoding="utf-8"))
    return document


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def template_routes() -> set[tuple[str, str]]:
    """(path, method) of every Api event on the template's REST API, whichever function serves it."""
    resources = yaml_parse((REPO / "template.yaml").read_text())["Resources"]
    return {
        (event["Properties"]["Path"], event["Properties"]["Method"].lower())
        for resource in resources.values()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "Api" and event["Properties"].get("RestApiId") == {"Ref": "IngestApi"}
    }


def test_the_committed_document_is_what_the_routes_and_schemas_generate(tmp_path: Path) -> None:
    regenerated = tmp_path / "openapi.json"
    completed = subprocess.run(
        [sys.executable, "-m", "tools.build_openapi", "--out", str(regenerated)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert regenerated.read_text(encoding="utf-8") == PUBLISHED.read_text(encoding="utf-8"), (
        "layers/shared/dxops/api/openapi.json is stale: run make openapi"
    )


def test_every_route_of_the_template_is_documented_and_no_other(published: dict[str, Any]) -> None:
    routes = template_routes()
    assert len(routes) >= 13  # records, devices, erasure, openapi, predict, diagnoses, trainings, models
    assert set(operations(published)) == routes


def test_every_operation_is_signed_with_sigv4(published: dict[str, Any]) -> None:
    scheme = published["components"]["securitySchemes"]["sigv4"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"
    for key, operation in operations(published).items():
        # An operation's own security replaces the document's; none may drop it.
        assert operation.get("security", published["security"]) == [{"sigv4": []}], key


def test_the_request_bodies_come_from_the_schemas(published: dict[str, Any]) -> None:
    schemas = published["components"]["schemas"]
    body = published["paths"]["/records"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["anyOf"][0] == {"$ref": "#/components/schemas/ClinicalRecord"}
    assert body["anyOf"][1] == {"type": "array", "items": {"$ref": "#/components/schemas/ClinicalRecord"}}
    assert schemas["ClinicalRecord"]["additionalProperties"] is False
    predict = published["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert predict == {
        "anyOf": [{"$ref": "#/components/schemas/ClinicalRecord"}, {"$ref": "#/components/schemas/PredictRequest"}]
    }
    approval = published["paths"]["/models/{version}/approval"]["post"]["requestBody"]["content"]
    assert approval["application/json"]["schema"] == {"$ref": "#/components/schemas/ApprovalDecisionBody"}
    refs = {ref.split("/")[-1] for ref in _refs(published)}
    assert refs <= set(schemas), "every $ref resolves"


def test_every_operation_documents_the_errors_it_can_meet(published: dict[str, Any]) -> None:
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for (path, method), operation in operations(published).items():
        responses = operation["responses"]
        for status in ("403", "429"):  # API Gateway's, before any function runs
            assert responses[status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/GatewayMessage"
            }, (path, method)
        for status, response in responses.items():
            if status not in ("403", "429") and int(status) >= 400:
                assert response["content"]["application/json"]["schema"] == error, (path, method, status)
            if status == "204":
                assert "content" not in response
            if status == "503":
                assert response["headers"]["Retry-After"]["required"] is True
    assert "HTTPValidationError" not in published["components"]["schemas"]  # Powertools' shape is never sent
    assert published["paths"]["/records"]["post"]["responses"]["409"]["headers"]["Retry-After"]


def test_path_parameters_document_what_the_handlers_accept(published: dict[str, Any]) -> None:
    def parameter(path: str, method: str, name: str) -> dict[str, Any]:
        (found,) = [p for p in published["paths"][path][method]["parameters"] if p["name"] == name]
        schema: dict[str, Any] = found["schema"]
        return schema

    device = parameter("/devices/{device_id}/binding", "put", "device_id")
    assert (device["pattern"], device["maxLength"]) == (r"^[A-Za-z0-9:_\-]+$", 128)
    assert parameter("/erasure-requests/{request_id}", "get", "request_id")["pattern"] == r"^er-[0-9a-f]{32}$"
    assert parameter("/models/{version}", "get", "version") == {
        "type": "integer",
        "minimum": 1.0,
        "title": "Version",
        "description": "the model package version",
    }


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


FRAGMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "security": [{"sigv4": []}],
    "paths": {"/a": {"get": {"responses": {}}}},
    "components": {"schemas": {"Shared": {"type": "string"}}},
}


def test_functions_sharing_a_component_merge_into_one() -> None:
    other = copy.deepcopy(FRAGMENT)
    other["paths"] = {"/a": {"post": {"responses": {}}}, "/b": {"get": {"responses": {}}}}
    merged = merge_documents({"One": FRAGMENT, "Two": other})
    assert {(p, m) for p, item in merged["paths"].items() for m in item} == {
        ("/a", "get"),
        ("/a", "post"),
        ("/b", "get"),
    }
    assert merged["components"]["schemas"] == {"Shared": {"type": "string"}}


def test_a_component_defined_differently_by_two_functions_fails_the_build() -> None:
    other = copy.deepcopy(FRAGMENT)
    other["paths"] = {"/b": {"get": {"responses": {}}}}
    other["components"]["schemas"]["Shared"] = {"type": "integer"}
    with pytest.raises(OpenApiConflict, match=r"components\.schemas\.Shared: One and Two both define it differently"):
        merge_documents({"One": FRAGMENT, "Two": other})


def test_an_operation_documented_by_two_functions_fails_the_build() -> None:
    with pytest.raises(OpenApiConflict, match="GET /a: One and Two both define it"):
        merge_documents({"One": FRAGMENT, "Two": copy.deepcopy(FRAGMENT)})
