"""make fuzz, short: schemathesis cases of every operation of the served OpenAPI against the local API."""

from __future__ import annotations

import json
from pathlib import Path

from dxops.api.openapi import published_document
from reliability import fuzz

CASES = 5  # per operation and mode; make fuzz runs 50


def test_every_operation_answers_every_fuzzed_case_as_documented(tmp_path: Path) -> None:
    out = tmp_path / "fuzz.json"
    assert fuzz.main(["--cases-per-operation", str(CASES), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    operations = {f"{m.upper()} {p}" for p, ops in published_document()["paths"].items() for m in ops}
    generated = [r for r in result["runs"] if r["mode"] != "example"]
    assert {(r["operation"], r["mode"]) for r in generated} == {
        (o, mode) for o in operations for mode in ("positive", "negative")
    }
    # An operation without parameters or body has nothing a negative case could violate.
    without_input = {
        f"{m.upper()} {p}"
        for p, ops in published_document()["paths"].items()
        for m, op in ops.items()
        if not op.get("parameters") and "requestBody" not in op
    }
    assert {r["operation"] for r in generated if r["note"] == "no input to violate"} == without_input
    # Hypothesis stops early once it has tried every input of a small space (GET /models: none).
    assert all(1 <= r["cases"] <= CASES for r in generated if not r["note"]), [
        (r["operation"], r["mode"], r["cases"]) for r in generated
    ]
    assert result["cases"] == sum(r["cases"] for r in result["runs"]) >= CASES * len(operations)
    assert (result["failures"], result["server_errors"]) == (0, 0), [
        (r["operation"], f) for r in result["runs"] for f in r["failures"]
    ]
    # Every case is signed: the cases reach the handlers, and the schema-violating ones are refused there.
    assert result["handler_answers"] == result["cases"]
    for run in (r for r in generated if r["mode"] == "negative" and not r["note"]):
        assert any(s in run["statuses"] for s in ("400", "404", "409", "422")), run
    # The known-valid examples succeed, so their success bodies were checked against the document.
    # (Phenopackets and FHIR Bundles from examples/ too: their 202 bodies carry the mapping notes.)
    assert {r["operation"]: r["statuses"] for r in result["runs"] if r["mode"] == "example"} == {
        operation: {"202": len(bodies)} for operation, bodies in fuzz.EXAMPLES.items()
    }
    assert (tmp_path / "fuzz-lambda.log").stat().st_size > 0
