"""Serving: POST /predict over HTTP on the local cloud next to the inference functions called
in-process, on the same JSON bodies, in the same run (writes artifacts/bench/serving.json).

1. A model deployed through the real pipeline, on the local cloud in server mode (moto server, the
   REST API over HTTP). A cohort from the simulator (COHORT_RECORDS records, seed 7, the 26 common
   diseases and RARE_DISEASES rare ones) is published as a dataset version in the curated bucket,
   as the data-processing pipeline leaves one (Parquet, manifest, published pointer:
   tests/integration/lifecycle.publish_dataset; the Glue ETL and its quality gate are bench/etl.py's
   subject, not run here), and DatasetReady goes on the bus. The training state machine runs the
   SageMaker training job (ml/train.py in a subprocess, TRAINING_HYPERPARAMETERS), the comparison
   and the registration; the version waits for a reviewer (ApprovalPolicy manual) and is approved
   through the models API over HTTP (POST /models/{version}/approval, SigV4), as a person would;
   the deployment state machine puts it on the endpoint (InferenceMode instance: a local model
   server subprocess, data capture on) and smoke-tests it with the few records POSTed to /records
   first.
2. Requests: ClinicalRecords of other simulated patients (seed 8, with site and patient ids, the
   confirmed diagnosis left out: the hospital is asking), bodies {"records": [...], "explain": ...}
   of 1 and of 100 records, explain true and false. Each body is sent over HTTP (SigV4-signed
   with localcloud.http_client.call_api, what the demo uses) and given to ml.inference in this
   process (model_fn once on the deployed model.tar.gz, then input_fn -> predict_fn -> output_fn),
   alternately first, so both paths see the same machine load. Warm-up requests are not measured.
3. p50 (median), p99 (nearest rank: with 50 requests, the slowest) and mean per path and case; the
   ratio HTTP / direct; and, from the prediction function's own log line, the InvokeEndpoint hop
   (endpoint_ms: boto3 -> moto server -> model server subprocess and back), to see where the HTTP
   path spends its time.

`BENCH_SERVING_QUICK=1 python -m bench serving` is a small run for development (fewer records and
requests; writes serving-quick.json).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import platform
import secrets
import statistics
import sys
import tarfile
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from bench.report import ARTIFACTS, write_result
from cohorts import CohortConfig, CohortGenerator, build_catalog
from cohorts.output import write_cohort
from localcloud import runtime, sagemaker
from localcloud.api_gateway import serve_api
from localcloud.cloud import LocalCloud
from localcloud.http_client import call_api
from ml import inference
from ml.metrics import is_rare_code
from ml.table import read_table
from tests.integration.lifecycle import announce, publish_dataset

QUICK = os.environ.get("BENCH_SERVING_QUICK") == "1"
COHORT_RECORDS, COHORT_SEED, RARE_DISEASES = (1000 if QUICK else 3000), 7, 50
REQUEST_SEED, REQUEST_POOL = 8, 400
# Moderate settings of ml/train.py (a latency benchmark, not a quality one): the XGBoost candidate
# only, so that the served model is the kind production selects; 2-fold selection, one repeat;
# everything else at its default (150 rounds, depth 6, eta 0.15, the knowledge model and its
# combination weights, calibration).
TRAINING_HYPERPARAMETERS = {"candidates": "xgboost+class_weights", "folds": "2", "repeats": "1"}
SIZES = (1, 100)
REQUESTS = {1: 20, 100: 4} if QUICK else {1: 200, 100: 50}
WARMUP = {1: 5, 100: 2}
EXPLAIN = (True, False)
SMOKE_RECORDS = 5  # POSTed to /records first: the deployment's smoke test reads the raw zone
PARAMETERS = {
    "InferenceMode": "instance",  # always-on model server (no cold starts), blue/green, data capture
    "ApprovalPolicy": "manual",
    "TrainingHyperparameters": json.dumps(TRAINING_HYPERPARAMETERS),
    "BakeSeconds": "1",
    "DeploymentPollSeconds": "1",
}
REVIEW = {"decision": "approve", "rationale": "Serving benchmark: a model to measure latency with, not for use."}
HTTP_PATH = [
    "client: JSON body, SigV4 signing, a new HTTP/1.1 connection per request (localcloud.http_client.call_api)",
    "API Gateway emulation (localcloud/api_gateway.py, a thread of this process): route, stage throttle, "
    "SigV4 presence, proxy event v1.0",
    "the local Lambda runtime: one invocation at a time, in a sandbox (the function's modules, environment "
    "and loggers swapped into this process and out again at every invocation)",
    "PredictApiFunction handler, Powertools logger/metrics/tracer: "
    "ClinicalRecord validation (pydantic), pseudonymisation (HMAC key from Secrets Manager, cached), "
    "reduction to EndpointRecord",
    "InvokeEndpoint: boto3 sagemaker-runtime -> moto server (HTTP, a thread of this process) -> "
    "the model server subprocess (HTTP: input_fn -> predict_fn -> output_fn) -> data capture buffer",
    "the answer checked against EndpointAnswer, the response built",
    "the predictions stored for monitoring: one NDJSON object per request, PutObject to the monitoring "
    "bucket (moto S3; the bucket's default encryption is SSE-KMS)",
    "EMF metrics of the invocation recorded as CloudWatch metrics in moto (the local cloud's EMF listener)",
]
DIRECT_PATH = "ml.inference input_fn -> predict_fn -> output_fn in this process, the model loaded once by model_fn"


def progress(message: str) -> None:
    print(f"  serving: {message}", file=sys.stderr, flush=True)


class Status:
    """A status line that changes often: rewritten in place on a terminal, else a line every 10 s."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = 0.0
        self.pending = False

    def update(self, message: str) -> None:
        if self.tty:
            print(f"\r\033[K  serving: {message}", end="", file=sys.stderr, flush=True)
            self.pending = True
        elif time.monotonic() - self.shown >= 10:
            progress(message)
            self.shown = time.monotonic()

    def done(self) -> None:
        if self.pending:
            print(file=sys.stderr, flush=True)
            self.pending = False


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return value


# --- the data -------------------------------------------------------------------------------------


def cohort_table(folder: Path) -> tuple[Any, dict[str, Any]]:
    """The training cohort as the curated table (the simulator's curated.csv, read as training reads it)."""
    config = CohortConfig(records=COHORT_RECORDS, seed=COHORT_SEED, monitored_rate=0.0)
    manifest = write_cohort(folder, config, build_catalog(rare_count=RARE_DISEASES), curated=True, progress=False)
    return read_table(folder / "curated.csv"), manifest


def request_records() -> list[dict[str, Any]]:
    """Other patients of the same diseases, as a hospital sends them for a prediction."""
    config = CohortConfig(records=REQUEST_POOL, seed=REQUEST_SEED, monitored_rate=0.0)
    records = []
    for patient in CohortGenerator(config, build_catalog(rare_count=RARE_DISEASES)):
        record = {k: v for k, v in patient.record.items() if k != "diagnosis"}
        records.append(record)
    return records


def bodies(records: list[dict[str, Any]], size: int, explain: bool, count: int) -> list[bytes]:
    """count request bodies of size records each, walking through the pool."""
    result = []
    for i in range(count):
        start = (i * size) % len(records)
        chosen = [records[(start + j) % len(records)] for j in range(size)]
        result.append(json.dumps({"records": chosen, "explain": explain}).encode())
    return result


# --- the pipeline ---------------------------------------------------------------------------------


def publish(cloud: LocalCloud, api_url: str, records: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
    """Records in the raw zone for the smoke test; the cohort published as a dataset version; DatasetReady."""
    sample = records[:SMOKE_RECORDS]
    stored = call_api(f"{api_url}/records", "POST", sample, headers={"Idempotency-Key": "bench-serving-smoke"})
    if stored.status != 202:
        raise RuntimeError(f"POST /records: HTTP {stored.status}")
    progress(f"POST /records: {len(sample)} records in the raw zone (the deployment's smoke test reads them)")
    progress(f"cohort: {COHORT_RECORDS:,} simulated records (seed {COHORT_SEED}, {RARE_DISEASES} rare diseases)")
    table, manifest = cohort_table(folder / "cohort")
    version = f"v{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}Z-{secrets.token_hex(4)}"
    detail = publish_dataset(cloud, version, table)
    announce(detail)
    progress(f"published dataset version {version} ({detail.rows} rows, {detail.classes} classes); DatasetReady sent")
    labels: dict[str, int] = manifest["valid_records_per_label"]
    return {
        "dataset_version": version,
        "records": COHORT_RECORDS,
        "seed": COHORT_SEED,
        "rare_diseases_in_catalog": RARE_DISEASES,
        "classes": detail.classes,
        "records_by_kind": {
            "common": sum(n for code, n in labels.items() if not is_rare_code(code)),
            "rare": sum(n for code, n in labels.items() if is_rare_code(code)),
        },
        "published_as": "tests/integration/lifecycle.publish_dataset: Parquet, manifest and published pointer in "
        "the curated bucket as the data-processing pipeline leaves them (Glue ETL and DQ gate not run)",
    }


def registered_version(api_url: str) -> dict[str, Any]:
    """The first model version GET /models lists, once the training state machine registers one."""
    sm = boto3.client("sagemaker")
    began = time.perf_counter()
    status = Status()

    def registered() -> list[dict[str, Any]]:
        jobs = sm.list_training_jobs()["TrainingJobSummaries"]
        state = f"job {jobs[0]['TrainingJobName']} {jobs[0]['TrainingJobStatus']}" if jobs else "starting"
        status.update(f"training state machine: {state}, {time.perf_counter() - began:.0f} s")
        listed = call_api(f"{api_url}/models", "GET")
        return list(listed.body) if listed.status == 200 else []

    model = dict(wait_for(registered, 900, "a registered model version", every=2)[0])
    status.done()
    progress(
        f"registered version {model['package_version']} ({model['model_version']}) in "
        f"{time.perf_counter() - began:.0f} s: "
        + ", ".join(f"{k} {v:.3f}" for k, v in model["metrics"].items() if v is not None)
    )
    return model


def approve_and_deploy(cloud: LocalCloud, api_url: str, package_version: int) -> dict[str, Any]:
    """A reviewer's approval through the models API; the deployment state machine's run, once ended."""
    decision = call_api(f"{api_url}/models/{package_version}/approval", "POST", REVIEW)
    if decision.status != 200:
        raise RuntimeError(f"approval: HTTP {decision.status} {decision.body}")
    progress(f"approved through POST /models/{package_version}/approval by {decision.body.get('decided_by')}")
    sfn = boto3.client("stepfunctions")
    machine = cloud.outputs["DeploymentStateMachineArn"]
    runs = wait_for(lambda: sfn.list_executions(stateMachineArn=machine)["executions"], 120, "a deployment")
    run = wait_for(
        lambda: (d := sfn.describe_execution(executionArn=runs[0]["executionArn"]))["status"] != "RUNNING" and d,
        600,
        "the deployment",
    )
    if run["status"] != "SUCCEEDED":
        raise RuntimeError(f"deployment {run['name']}: {run['status']} {run.get('error')} {run.get('cause')}")
    endpoint = boto3.client("sagemaker").describe_endpoint(EndpointName=cloud.outputs["EndpointName"])
    progress(
        f"deployment {run['name']}: {run['status']}; endpoint {endpoint['EndpointName']} {endpoint['EndpointStatus']}"
    )
    return {
        "name": endpoint["EndpointName"],
        "status": endpoint["EndpointStatus"],
        "config": endpoint["EndpointConfigName"],
        "deployment": run["name"],
    }


def deploy(cloud: LocalCloud, api_url: str, records: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
    """Publish, train, approve, deploy; returns what was deployed and how long each step took."""
    timings: dict[str, float] = {}
    began = time.perf_counter()
    cohort = publish(cloud, api_url, records, folder)
    timings["publish_seconds"] = round(time.perf_counter() - began, 1)
    began = time.perf_counter()
    package_version = registered_version(api_url)["package_version"]
    timings["training_seconds"] = round(time.perf_counter() - began, 1)
    began = time.perf_counter()
    endpoint = approve_and_deploy(cloud, api_url, package_version)
    timings["approval_to_serving_seconds"] = round(time.perf_counter() - began, 1)
    shown = call_api(f"{api_url}/models/{package_version}", "GET").body
    sm = boto3.client("sagemaker")
    packages = sm.list_model_packages(ModelPackageGroupName=cloud.outputs["ModelPackageGroupName"])
    arn = next(
        p["ModelPackageArn"] for p in packages["ModelPackageSummaryList"] if p["ModelPackageVersion"] == package_version
    )
    described = sm.describe_model_package(ModelPackageName=arn)
    return {
        "package_version": package_version,
        "model_version": shown["model_version"],
        "approval_status": shown["approval_status"],
        "approval": {
            "how": "ApprovalPolicy manual; approved by a reviewer through the models API over HTTP "
            f"(POST /models/{package_version}/approval, SigV4)",
            "decided_by": (shown.get("approval") or {}).get("decided_by"),
        },
        "deployment_status": shown.get("deployment_status"),
        "dataset_version": cohort["dataset_version"],
        "training_job": shown["training_job"],
        "metrics_registered": shown["metrics"],
        "evidence_uri": shown["evidence_uri"],
        "model_data_url": described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"],
        "endpoint": endpoint,
        "cohort": cohort,
        "timings": timings,
    }


def load_deployed_model(model_data_url: str, folder: Path) -> Any:
    """model_fn on the very model.tar.gz the endpoint serves."""
    bucket, key = model_data_url.removeprefix("s3://").split("/", 1)
    archive = folder / "model.tar.gz"
    boto3.client("s3").download_file(bucket, key, str(archive))
    model_dir = folder / "model"
    with tarfile.open(archive) as tar:
        tar.extractall(model_dir, filter="data")
    return inference.model_fn(str(model_dir))


# --- the measurement ------------------------------------------------------------------------------


def stats(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    rank = max(1, math.ceil(0.99 * len(ordered)))  # nearest rank
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[rank - 1] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


class EndpointHops:
    """The prediction function's "predictions served" log lines: endpoint_ms of each request."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def __call__(self, function: Any, line: str) -> None:
        if function.logical_id != "PredictApiFunction" or '"predictions served"' not in line:
            return
        with contextlib.suppress(ValueError, KeyError, TypeError):
            self.values.append(float(json.loads(line)["endpoint_ms"]))


def case_name(size: int, explain: bool) -> str:
    return f"{size}_records" + ("" if explain else "_without_explanations")


def over_http(url: str, body: bytes, size: int, version: str) -> float:
    """Seconds for one POST /predict as a client sees it (signing and JSON parsing included)."""
    began = time.perf_counter()
    answer = call_api(url, "POST", body)
    elapsed = time.perf_counter() - began
    if answer.status != 200 or len(answer.body["predictions"]) != size:
        raise RuntimeError(f"POST /predict: HTTP {answer.status} {str(answer.body)[:300]}")
    if answer.body["model_version"] != version:
        raise RuntimeError(f"the endpoint serves {answer.body['model_version']}, not {version}")
    return elapsed


def in_process(model: Any, body: bytes, size: int) -> float:
    """Seconds for input_fn -> predict_fn -> output_fn on the same body."""
    began = time.perf_counter()
    text, _ = inference.output_fn(inference.predict_fn(inference.input_fn(body), model))
    elapsed = time.perf_counter() - began
    if len(json.loads(text)["predictions"]) != size:
        raise RuntimeError("the direct path answered another number of predictions")
    return elapsed


def measure_case(
    api_url: str, model: Any, records: list[dict[str, Any]], hops: EndpointHops, *, size: int, explain: bool
) -> dict[str, Any]:
    name = case_name(size, explain)
    count, warmup = REQUESTS[size], WARMUP[size]
    requests = bodies(records, size, explain, warmup + count)
    http: list[float] = []
    direct: list[float] = []
    before = len(hops.values)
    status = Status()
    for i, body in enumerate(requests):
        # Alternately first: both paths see the same load (and neither always follows the other).
        if i % 2 == 0:
            pair = (over_http(f"{api_url}/predict", body, size, model.version), in_process(model, body, size))
        else:
            seconds = in_process(model, body, size)
            pair = (over_http(f"{api_url}/predict", body, size, model.version), seconds)
        if i >= warmup:
            http.append(pair[0])
            direct.append(pair[1])
        status.update(f"{name}: request {i + 1}/{len(requests)} (the first {warmup}: warm-up)")
    status.done()
    endpoint = [ms / 1000 for ms in hops.values[before:][warmup:]]
    outside = [h - e for h, e in zip(http, endpoint, strict=False)]
    result: dict[str, Any] = {
        "records_per_request": size,
        "explain": explain,
        "requests": count,
        "warmup_requests": warmup,
        "http": stats(http),
        "direct": stats(direct),
        "http_over_direct_p50": round(statistics.median(http) / statistics.median(direct), 2),
        "http_over_direct_p99": round(stats(http)["p99_ms"] / stats(direct)["p99_ms"], 2),
        "http_breakdown": {
            "invoke_endpoint_hop": stats(endpoint) if len(endpoint) == count else None,
            "outside_the_hop": stats(outside) if len(endpoint) == count else None,
            "note": "invoke_endpoint_hop: the handler's endpoint_ms (boto3 -> moto server -> model server "
            "subprocess and back); outside_the_hop: the rest of each HTTP request (client, API Gateway "
            "emulation, handler, S3 PutObject, EMF)",
        },
    }
    progress(
        f"{name}: HTTP p50 {result['http']['p50_ms']} ms p99 {result['http']['p99_ms']} ms; direct p50 "
        f"{result['direct']['p50_ms']} ms p99 {result['direct']['p99_ms']} ms; ratio {result['http_over_direct_p50']}"
    )
    return result


def measure(api_url: str, model: Any, records: list[dict[str, Any]], hops: EndpointHops) -> dict[str, Any]:
    return {
        case_name(size, explain): measure_case(api_url, model, records, hops, size=size, explain=explain)
        for size in SIZES
        for explain in EXPLAIN
    }


def table(results: dict[str, Any]) -> str:
    header = (
        f"{'records':>7} {'explain':>7} {'n':>4} | {'HTTP p50':>9} {'p99':>9} {'mean':>9} | "
        f"{'direct p50':>10} {'p99':>9} {'mean':>9} | {'ratio p50':>9} {'p99':>6} | {'hop p50':>8}"
    )
    lines = [header, "-" * len(header)]
    for result in results.values():
        http, direct = result["http"], result["direct"]
        hop = result["http_breakdown"]["invoke_endpoint_hop"] or {}
        lines.append(
            f"{result['records_per_request']:>7} {str(result['explain']).lower():>7} {result['requests']:>4} | "
            f"{http['p50_ms']:>9.1f} {http['p99_ms']:>9.1f} {http['mean_ms']:>9.1f} | "
            f"{direct['p50_ms']:>10.1f} {direct['p99_ms']:>9.1f} {direct['mean_ms']:>9.1f} | "
            f"{result['http_over_direct_p50']:>9.2f} {result['http_over_direct_p99']:>6.2f} | "
            f"{hop.get('p50_ms', float('nan')):>8.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    started = time.perf_counter()
    # Powertools' warning when a handler (not the prediction API's) emits no metric: noise here.
    warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
    load_before = os.getloadavg()
    records = request_records()
    log_path = ARTIFACTS / ("serving-quick-lambda.log" if QUICK else "serving-lambda.log")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    hops = EndpointHops()
    progress("starting the local cloud (server mode) with the REST API over HTTP")
    with (
        tempfile.TemporaryDirectory(prefix="dxops-bench-serving-") as work,
        open(log_path, "w") as log,
        contextlib.redirect_stdout(log),  # the handlers' JSON logs and EMF lines (their cost counts)
        LocalCloud.start(server=True, parameters=PARAMETERS) as cloud,
        serve_api(cloud) as api,
    ):
        cloud_seconds = round(time.perf_counter() - started, 1)
        api_url = api.base_url()
        deployed = deploy(cloud, api_url, records, Path(work))
        model = load_deployed_model(deployed["model_data_url"], Path(work))
        if model.version != deployed["model_version"]:
            raise RuntimeError(f"model.tar.gz holds {model.version}, not {deployed['model_version']}")
        servers = sagemaker.model_servers(deployed["endpoint"]["name"])
        progress(f"model {model.version} loaded in-process (model_fn); model servers {servers}")
        runtime.add_output_listener(hops)
        measuring = time.perf_counter()
        results = measure(api_url, model, records, hops)
        measure_seconds = round(time.perf_counter() - measuring, 1)
        runtime.remove_output_listener(hops)
        manifest = getattr(model, "manifest", {})
    seconds = round(time.perf_counter() - started, 1)
    metrics: dict[str, float] = {}
    baseline: dict[str, float] = {}
    ratio: dict[str, float] = {}
    for name, result in results.items():
        for key in ("p50_ms", "p99_ms", "mean_ms"):
            metrics[f"http_{name}_{key}"] = result["http"][key]
            baseline[f"direct_{name}_{key}"] = result["direct"][key]
        ratio[f"http_over_direct_{name}_p50"] = result["http_over_direct_p50"]
        ratio[f"http_over_direct_{name}_p99"] = result["http_over_direct_p99"]
    path = write_result(
        "serving-quick" if QUICK else "serving",
        metrics,
        baseline,
        ratio,
        quick=QUICK,
        sizes=list(SIZES),
        requests={str(size): REQUESTS[size] for size in SIZES},
        warmup_requests={str(size): WARMUP[size] for size in SIZES},
        explain_measured=list(EXPLAIN),
        top_k=inference.DEFAULT_TOP_K,
        percentiles="p50: median; p99: nearest rank (with 50 requests, the slowest); mean",
        cases=results,
        model={
            "model_version": deployed["model_version"],
            "package_version": deployed["package_version"],
            "selected": manifest.get("candidate"),
            "classes": len(getattr(model, "classes", []) or []),
            "dataset_version": deployed["dataset_version"],
            "training_job": deployed["training_job"],
            "metrics_registered": deployed["metrics_registered"],
            "approval": deployed["approval"],
            "deployment_status": deployed["deployment_status"],
            "model_data_url": deployed["model_data_url"],
        },
        training_hyperparameters=TRAINING_HYPERPARAMETERS,
        cohort=deployed["cohort"],
        request_records={
            "source": f"cohort simulator, seed {REQUEST_SEED}, {REQUEST_POOL} records (other patients than the "
            "training cohort's), full ClinicalRecords with source and patient_id, the diagnosis left out",
            "bodies": '{"records": [...], "explain": true|false} (top_k: the default); the same bytes on both paths',
        },
        endpoint={
            **deployed["endpoint"],
            "mode": "InferenceMode instance: a local model server subprocess (localcloud/sagemaker_serving.py, "
            "ThreadingHTTPServer) per production variant",
            "model_servers": servers,
            "interpreter": f"{sagemaker.SETTINGS.python} (Python {platform.python_version()}; the SageMaker "
            "image's is 3.10)",
            "data_capture": "on (InitialSamplingPercentage 100: the deployment's default), buffered, "
            "written to S3 every 5 s",
        },
        http_path=HTTP_PATH,
        direct_path=DIRECT_PATH,
        local_cloud_parameters=PARAMETERS,
        machine={
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "note": "client, API Gateway emulation, handler and moto server share this process (and its GIL); "
            "the model server is a subprocess",
        },
        seconds={
            "local_cloud_start": cloud_seconds,
            **deployed["timings"],
            "measurement": measure_seconds,
            "total": seconds,
        },
        lambda_log=str(log_path),
    )
    print(table(results))
    print(
        f"serving: model {deployed['model_version']}, {seconds:.0f} s in all "
        f"({deployed['timings']['training_seconds']:.0f} s training, {measure_seconds:.0f} s measuring) -> {path}"
    )


if __name__ == "__main__":
    main()
