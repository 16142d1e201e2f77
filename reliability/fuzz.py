"""API fuzzing: schemathesis cases from the API's own OpenAPI document against the local API.

    python -m reliability fuzz [--cases-per-operation 50] [--seed 0]    (make fuzz)

The local cloud deploys template.yaml and serves its REST API over real HTTP (the API Gateway
emulation, SigV4 form checked, the real handlers). The document fuzzed is the one the API serves
(GET /openapi.json, generated from the pydantic schemas). Every operation gets schema-valid cases
(positive) and schema-violating ones (negative: wrong types, missing fields, bad headers, ...).

Each response must pass schemathesis's checks: a documented status code, content type and
headers, a body that conforms to the documented schema, and schema-violating input refused
(4xx). A 5xx fails, except a documented 503 carrying Retry-After: that is backpressure (the
model is not deployed yet, a dependency throttles), what a client must handle, not a crash.
Schema-valid input may still be refused with 4xx (an HPO id the ontology does not know, a device
id the IoT registry would refuse): the OpenAPI cannot say everything the validators check.

Writes artifacts/reliability/fuzz.json: cases run per operation and mode, status codes, and
every failure found with a curl command that reproduces it; the handlers' logs go to
fuzz-lambda.log beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode, Response
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok

from localcloud.api_gateway import serve_api
from localcloud.cloud import LocalCloud
from tests.records import clinical_record

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "reliability"
# A SigV4-form Authorization header: the local API checks its form and takes the access key as the
# caller (it cannot verify signatures without real credentials). Fuzzed operations are all IAM-secured.
FUZZER_AUTH = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=FUZZER/20261128/eu-west-1/execute-api/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=0"
}
# The fuzzer targets the handlers: the stage throttle (load, tested in bench/load.py) is raised.
FUZZ_PARAMETERS = {"ApiThrottlingRateLimit": "10000", "ApiThrottlingBurstLimit": "10000"}
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
GATEWAY_STATUSES = (403, 429)  # answered before any function runs
_EXAMPLE_DOCUMENTS = Path(__file__).resolve().parents[1] / "examples"


def _documents(folder: str) -> list[Any]:
    """The valid hand-written documents of examples/ (a Phenopacket, a FHIR Bundle...)."""
    paths = sorted((_EXAMPLE_DOCUMENTS / folder).glob("*.json"))
    return [json.loads(path.read_text()) for path in paths if not path.name.startswith("invalid")]


EXAMPLES: dict[str, list[Any]] = {
    "POST /records": [clinical_record(0, record_id="fuzz-example-0"), [clinical_record(i) for i in range(1, 4)]],
    "POST /phenopackets": [_documents("phenopackets")],
    "POST /fhir/bundles": _documents("fhir"),
}
EXAMPLE_QUERIES = {"POST /phenopackets": {"source": "fuzz-site"}, "POST /fhir/bundles": {"source": "fuzz-site"}}
EXCERPT = 400


@dataclass
class FuzzFailure:
    check: str
    status: int
    response: str
    reproduce: str


@dataclass
class OperationRun:
    operation: str
    mode: str  # positive, negative, or example (a known-valid request: its success body is checked too)
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    backpressure: int = 0  # documented 503s with Retry-After
    note: str = ""
    failures: list[FuzzFailure] = field(default_factory=list)

    def distinct_failures(self) -> list[FuzzFailure]:
        seen: dict[tuple[str, int], FuzzFailure] = {}
        for failure in self.failures:
            seen.setdefault((failure.check, failure.status), failure)
        return list(seen.values())


def backpressure_or_server_error(case: Case[Any], response: Response) -> str | None:
    """None when the response is no server error, or is backpressure; else what is wrong."""
    if response.status_code < 500:
        return None
    documented = str(response.status_code) in case.operation.definition.raw.get("responses", {})
    if response.status_code == 503 and documented and response.headers.get("retry-after"):  # lower-cased
        return None
    return "Server error"


def check_case(run: OperationRun, case: Case[Any], base_url: str, session: requests.Session) -> None:
    """Send one case, check its response, record the outcome."""
    response = case.call(base_url=base_url, session=session, headers=FUZZER_AUTH)
    run.cases += 1
    run.statuses[response.status_code] += 1
    found: list[str] = []
    server_error = backpressure_or_server_error(case, response)
    if server_error:
        found.append(server_error)
    elif response.status_code == 503:
        run.backpressure += 1
    try:
        case.validate_response(response, checks=CHECKS, headers=FUZZER_AUTH)
    except FailureGroup as group:
        found.extend(failure.title for failure in group.exceptions if isinstance(failure, Failure))
    except Failure as failure:
        found.append(failure.title)
    reproduce = case.as_curl_command(headers={"Authorization": "<SigV4>"}) if found else ""
    for check in found:
        run.failures.append(FuzzFailure(check, response.status_code, response.text[:EXCERPT], reproduce))


def run_operation(operation: Any, mode: GenerationMode, base_url: str, cases: int, seed: int) -> OperationRun:
    run = OperationRun(operation=operation.label, mode=mode.value)
    session = requests.Session()

    @hypothesis_seed(seed)
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def one_case(case: Case[Any]) -> None:
        check_case(run, case, base_url, session)

    try:
        one_case()
    except Unsatisfiable:  # negative mode of an operation without parameters or body: nothing to violate
        run.note = "no input to violate"
    return run


def without_authentication(document: dict[str, Any]) -> dict[str, Any]:
    """The document with its SigV4 scheme left out: every case is signed (FUZZER_AUTH), so that the
    negative cases reach the handlers instead of the gateway's 403 (tests/localcloud/
    test_api_gateway.py proves every route refuses unsigned requests)."""
    fuzzed = copy.deepcopy(document)
    fuzzed.pop("security", None)
    fuzzed.get("components", {}).pop("securitySchemes", None)
    for operations in fuzzed["paths"].values():
        for operation in operations.values():
            operation.pop("security", None)
    return fuzzed


def run_examples(operations: dict[str, Any], base_url: str) -> list[OperationRun]:
    """Known-valid requests: the success bodies that generated data rarely reaches (generated HPO
    and LOINC codes are schema-valid but unknown to the ontology) are checked too."""
    session, runs = requests.Session(), []
    for label, bodies in EXAMPLES.items():
        run = OperationRun(operation=label, mode="example")
        for body in bodies:
            case = operations[label].Case(body=body, media_type="application/json", query=EXAMPLE_QUERIES.get(label))
            check_case(run, case, base_url, session)
        runs.append(run)
    return runs


def fuzz_api(base_url: str, cases_per_operation: int, seed: int, *, progress: bool = True) -> list[OperationRun]:
    """Every operation of the document the API serves, both modes, and the examples; failures are
    collected, not raised."""
    document = requests.get(f"{base_url}/openapi.json", headers=FUZZER_AUTH, timeout=30).json()
    schema = schemathesis.openapi.from_dict(without_authentication(document))
    runs = []
    operations = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):  # an operation schemathesis cannot read is a finding too
            raise SystemExit(f"the API's OpenAPI document is invalid: {result.err()}")
        operations.append(result.ok())
    for number, operation in enumerate(operations, 1):
        for mode in MODES:
            started = time.perf_counter()
            run = run_operation(operation, mode, base_url, cases_per_operation, seed)
            runs.append(run)
            if progress:
                print(
                    f"[{number}/{len(operations)}] {run.operation} {run.mode}: {run.cases} cases, "
                    f"{len(run.distinct_failures())} distinct failures ({time.perf_counter() - started:.1f} s)",
                    file=sys.stderr,
                )
    return runs + run_examples({operation.label: operation for operation in operations}, base_url)


@contextmanager
def local_api() -> Iterator[str]:
    with LocalCloud.start(parameters=FUZZ_PARAMETERS) as cloud, serve_api(cloud) as api:
        yield api.base_url()


def summary(runs: list[OperationRun], seed: int, seconds: float) -> dict[str, Any]:
    return {
        "cases": sum(r.cases for r in runs),
        "operations": len({r.operation for r in runs}),
        "failures": sum(len(r.distinct_failures()) for r in runs),
        "handler_answers": sum(n for r in runs for status, n in r.statuses.items() if status not in GATEWAY_STATUSES),
        "successes": sum(n for r in runs for status, n in r.statuses.items() if 200 <= status < 300),
        "server_errors": sum(n for r in runs for status, n in r.statuses.items() if status >= 500)
        - sum(r.backpressure for r in runs),
        "backpressure_503": sum(r.backpressure for r in runs),
        "seed": seed,
        "seconds": round(seconds, 1),
        "runs": [
            {
                "operation": r.operation,
                "mode": r.mode,
                "cases": r.cases,
                "note": r.note,
                "statuses": {str(k): v for k, v in sorted(r.statuses.items())},
                "failures": [asdict(f) for f in r.distinct_failures()],
            }
            for r in runs
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases-per-operation", type=int, default=50, help="per operation and mode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ARTIFACTS / "fuzz.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log_path = args.out.with_name(f"{args.out.stem}-lambda.log")
    # The handlers' JSON logs and EMF lines go to a file; progress goes to stderr.
    with (
        local_api() as base_url,
        open(log_path, "w") as log,
        contextlib.redirect_stdout(log),
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)  # a refused request
        runs = fuzz_api(base_url, args.cases_per_operation, args.seed)
    result = summary(runs, args.seed, time.perf_counter() - started)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{result['cases']} cases over {result['operations']} operations, {result['failures']} distinct failures, "
        f"{result['backpressure_503']} backpressure 503s; wrote {args.out}",
        file=sys.stderr,
    )
    return 1 if result["failures"] else 0
