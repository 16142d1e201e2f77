"""Generate the OpenAPI document of the whole REST API from the functions that serve it.

    python -m tools.build_openapi            (make openapi) writes layers/shared/dxops/api/openapi.json
    python -m tools.build_openapi --check    exits 1 if the committed document is stale
    python -m tools.build_openapi --out F    writes F instead

One REST API (template.yaml's IngestApi) is served by several functions, each with its own
Powertools resolver and its own deployment package: none can import the others, so none can build
the whole document when it runs. This imports each one's app module under the environment the
template gives it (stand-ins for what only a deployment knows), takes its openapi_document() (its
routes and the pydantic schemas they use) and merges the paths and components; two functions
declaring the same operation, or one component name with different definitions, fail the build.
The result ships in the shared layer, and the ingestion function serves it at GET /openapi.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse  # type: ignore[import-untyped,unused-ignore]

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "shared"
TEMPLATE = ROOT / "template.yaml"
PUBLISHED = LAYER / "dxops" / "api" / "openapi.json"
API = "IngestApi"  # the template's one REST API
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
INFO = {
    "title": "dxops API",
    "version": "1.0.0",
    "description": "Ingest clinical records and device bindings, erase patients (GDPR), predict diagnoses "
    "and report confirmed ones, train, review, approve and roll back models. Requests are signed with "
    "AWS SigV4 (IAM authorisation).",
}
# What every function has at run time that the template does not give it.
RUNTIME_ENV = {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1", "POWERTOOLS_TRACE_DISABLED": "true"}


class OpenApiConflict(Exception):
    """Two functions document the same thing differently."""


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    template: dict[str, Any] = yaml_parse(path.read_text(encoding="utf-8"))
    return template


def api_functions(template: Mapping[str, Any], api: str = API) -> dict[str, dict[str, Any]]:
    """Logical id -> properties of each function with an Api event on the REST API, by logical id."""
    found = {}
    for logical_id, resource in sorted(template["Resources"].items()):
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        events = resource["Properties"].get("Events", {}).values()
        if any(e["Type"] == "Api" and e["Properties"].get("RestApiId") == {"Ref": api} for e in events):
            found[logical_id] = resource["Properties"]
    return found


def stand_in(value: object, parameters: Mapping[str, Any], name: str) -> str:
    """What a template variable holds once deployed: a literal, a parameter's default, a !Sub with
    parameter defaults filled in, else a stand-in (a resource's physical name is only known deployed)."""
    if isinstance(value, str | int | float | bool):
        return str(value)

    def default(parameter: str) -> str:
        return str(parameters.get(parameter, {}).get("Default", "stand-in"))

    if isinstance(value, dict) and "Ref" in value and "Default" in parameters.get(value["Ref"], {}):
        return default(value["Ref"])
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        return re.sub(r"\$\{([^}!.]+)\}", lambda match: default(match.group(1)), value["Fn::Sub"])
    return f"stand-in-{name.lower().replace('_', '-')}"


def function_environment(template: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, str]:
    """The function's environment as the template gives it (Globals, then its own), with stand-ins."""
    variables = {
        **template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}),
        **properties.get("Environment", {}).get("Variables", {}),
    }
    parameters = template.get("Parameters", {})
    return {**RUNTIME_ENV, **{name: stand_in(value, parameters, name) for name, value in variables.items()}}


@contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Exactly these variables while the block runs (a developer's own settings must not leak in)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(variables)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def function_document(code_dir: Path, handler: str, environment: Mapping[str, str]) -> dict[str, Any]:
    """openapi_document() of a function's handler module, imported under its environment."""
    module_file = code_dir / f"{handler.rpartition('.')[0].replace('.', '/')}.py"
    spec = importlib.util.spec_from_file_location(f"openapi_{code_dir.name}", module_file)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(module_file)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(code_dir))
    try:
        with _environment(environment):
            spec.loader.exec_module(module)
            document: dict[str, Any] = module.openapi_document()
    finally:
        sys.path.remove(str(code_dir))
    return document


def merge_documents(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One document from each function's (name -> document): their operations and components."""
    merged: dict[str, Any] = {"openapi": None, "info": INFO, "paths": {}, "components": {}, "security": None}
    owners: dict[str, str] = {}

    def put(target: dict[str, Any], name: str, value: object, owner: str, label: str, *, once: bool = False) -> None:
        """Set target[name]; another function may set it again only to the same value (never if once)."""
        if label in owners and (once or target[name] != value):
            raise OpenApiConflict(
                f"{label}: {owners[label]} and {owner} both define it" + ("" if once else " differently")
            )
        owners.setdefault(label, owner)
        target[name] = value

    for owner, document in documents.items():
        for field in ("openapi", "security"):
            put(merged, field, document.get(field), owner, field)
        for path, item in document.get("paths", {}).items():
            for key, value in item.items():
                operation = key in HTTP_METHODS
                label = f"{key.upper()} {path}" if operation else f"{path} {key}"
                put(merged["paths"].setdefault(path, {}), key, value, owner, label, once=operation)
        for section, entries in document.get("components", {}).items():
            for name, definition in entries.items():
                put(
                    merged["components"].setdefault(section, {}),
                    name,
                    definition,
                    owner,
                    f"components.{section}.{name}",
                )
    merged["paths"] = dict(sorted(merged["paths"].items()))
    merged["components"] = {
        section: dict(sorted(entries.items())) for section, entries in sorted(merged["components"].items())
    }
    return {key: value for key, value in merged.items() if value is not None}


def build(template_path: Path = TEMPLATE) -> dict[str, Any]:
    template = load_template(template_path)
    if str(LAYER) not in sys.path:
        sys.path.insert(0, str(LAYER))
    documents = {
        logical_id: function_document(
            template_path.parent / properties["CodeUri"],
            properties.get("Handler") or template["Globals"]["Function"]["Handler"],
            function_environment(template, properties),
        )
        for logical_id, properties in api_functions(template).items()
    }
    return merge_documents(documents)


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=PUBLISHED, help=f"where to write it (default {PUBLISHED})")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if --out is not up to date")
    args = parser.parse_args(argv)
    document = build()
    text = render(document)
    operations = sum(1 for item in document["paths"].values() for method in item if method in HTTP_METHODS)
    summary = (
        f"{len(document['paths'])} paths, {operations} operations, {len(document['components']['schemas'])} schemas"
    )
    if args.check:
        if not args.out.is_file() or args.out.read_text(encoding="utf-8") != text:
            print(f"{args.out} is not up to date: run make openapi", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date ({summary})")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
