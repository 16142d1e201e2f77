"""The data-processing pipeline at scale on the local cloud: the Glue ETL job (glue/etl_job.py on
local Spark) and the whole state machine run, for 100,000 and 1,000,000 simulated clinical records.

For each size, in a fresh local cloud (the template deployed in-process, no previous version):
1. the raw objects are put into the raw bucket as the ingestion API lays them out (NDJSON of
   PseudonymisedRecord, raw/clinical/source=<site>/ingest_date=<today>/<batch>.ndjson), outside
   the measurement;
2. the data-processing state machine is started directly ({"trigger": "manual"}: no trigger
   window) and waited for; it must end SUCCEEDED with a published version (manifest, catalog).
Measured:
- Glue: the job run's wall time (StartedOn -> CompletedOn, so the local S3 mirror's download
  and upload count, as S3 reads and writes count on AWS) and curated rows per second of it; its
  phases (mirror download, the Spark script, upload); the CPU seconds and peak memory of the
  script's processes (Python driver + Spark JVM), sampled from /proc every SAMPLE_SECONDS; and,
  from Spark's event log, the slowest Spark SQL executions (where the time goes);
- end to end: StartExecution -> the execution SUCCEEDED (PrepareRun, the Glue run, the DQ gate,
  publication);
- ratios 1M / 100k: how the cost grows with the data (10 = linear).
The machine's load average during the Glue run is reported: on a shared machine the wall times
move with it, the CPU seconds much less.

Records: the cohort simulator (cohorts/) with RARE_COUNT rare diseases in its catalog, as the
data-processing tests use it; every rule of glue/rulesets/curated.json passes (ingested_at is
stamped at landing time for the freshness rule). The table's width follows the catalog (see
RARE_COUNT), its rows the records. Objects: RECORDS_PER_OBJECT records each (see OBJECT_SIZE),
assigned to SITES in turn. Pseudonymising a million records takes minutes, so the objects are
cached as NDJSON under artifacts/bench/cache/etl/ (one file per object, keyed by the generation
settings; generated on all cores); the 100k run reads the first objects of the 1M cohort (a
simulated record depends on the seed and its index only).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import resource
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from bench.report import ARTIFACTS, write_result
from cohorts.catalog import Catalog, build_catalog
from cohorts.patients import CohortConfig, CohortGenerator
from dxops.domain.pseudonymisation import PseudonymKey, pseudonymise
from dxops.domain.raw_zone import raw_key
from dxops.schemas.clinical import ClinicalRecord, PseudonymisedRecord
from localcloud import glue, stepfunctions
from localcloud.cloud import LocalCloud

ROOT = Path(__file__).resolve().parents[1]
SIZES = (100_000, 1_000_000)
SEED = 7
# Rare diseases in the cohort's catalog (the data-processing tests use 5). The curated table has one
# column per HPO term (with its ancestors) seen in >= 5 records: ~710 phenotype columns with 5 rare
# diseases, ~1,610 with 50 (the demo), ~3,410 with the cohort default of 200. The width saturates
# with 100k records, and the cost per row grows with it (200: about 4x slower than 5 at 100k).
RARE_COUNT = 5
SITES = ("site-a", "site-b", "site-c", "site-d")
RECORDS_PER_OBJECT = 5_000
OBJECT_SIZE = (
    f"{RECORDS_PER_OBJECT} records per raw object (about 8.5 MB), as a site's periodic export would be; the API "
    "writes at most 500 records per object (10x as many objects for the same bytes). Landing is outside the "
    "measurement and no bottleneck (1.6 GB in about 15 s into the in-process S3), nor is the Glue run's S3 mirror"
)
KEY = PseudonymKey("k-bench", b"bench-secret-not-a-real-key")
INGESTED_PLACEHOLDER = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # replaced by the landing time
CACHE_VERSION = 1  # bump when the cached records' format or their generation changes
CACHE = ARTIFACTS / "cache" / "etl"
# The local default driver heap (1 GiB) is too small for 1M wide rows; more shuffle partitions than
# the tests' 4 keep each task's share of the wide rows small. Glue's own worker (G.1X) has 16 GB.
SPARK_CONF = {"spark.driver.memory": "6g"}
SHUFFLE_PARTITIONS = 16
EXECUTION_TIMEOUT = 4 * 3600.0
SAMPLE_SECONDS = 0.5
PROGRESS_SECONDS = 15.0
SLOWEST_SPARK_EXECUTIONS = 6
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the records: generated once, cached as NDJSON ------------------------------------------------


def _cache_dir() -> Path:
    settings = {
        "version": CACHE_VERSION,
        "seed": SEED,
        "rare_count": RARE_COUNT,
        "sites": SITES,
        "records_per_object": RECORDS_PER_OBJECT,
        "config": repr(CohortConfig(records=0, seed=SEED)),
        "key_id": KEY.key_id,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return CACHE / f"seed{SEED}-rare{RARE_COUNT}-per{RECORDS_PER_OBJECT}-{digest}"


_generators: dict[str, CohortGenerator] = {}  # per worker process
_catalog: list[Catalog] = []


def _generator(site: str) -> CohortGenerator:
    if site not in _generators:
        if not _catalog:
            _catalog.append(build_catalog(rare_count=RARE_COUNT))
        # One cohort (seed, index -> record) whatever the site: record and patient ids stay unique.
        _generators[site] = CohortGenerator(CohortConfig(records=max(SIZES), seed=SEED, source=site), _catalog[0])
    return _generators[site]


def _site(index: int) -> str:
    return SITES[index % len(SITES)]


def generate_object(index: int, path: Path) -> int:
    """Worker: the index-th raw object's lines (PseudonymisedRecord JSON) into path; returns its size."""
    start = index * RECORDS_PER_OBJECT
    lines = []
    for patient in _generator(_site(index)).stream(start, start + RECORDS_PER_OBJECT):
        clinical = ClinicalRecord.model_validate(patient.record)
        record = PseudonymisedRecord.from_record(
            clinical,
            pseudonym=pseudonymise(KEY, clinical.source, clinical.patient_id),
            key_id=KEY.key_id,
            ingested_at=INGESTED_PLACEHOLDER,
            schema_version="1.0",
        )
        lines.append(record.model_dump_json())
    body = ("\n".join(lines) + "\n").encode()
    partial = path.with_suffix(".partial")
    partial.write_bytes(body)
    partial.replace(path)  # an interrupted run leaves no truncated object in the cache
    return len(body)


def cached_objects(records: int) -> list[Path]:
    """The NDJSON files of the first `records` records, generating the missing ones (all cores)."""
    folder = _cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:05d}.ndjson" for i in range(records // RECORDS_PER_OBJECT)]
    missing = [(i, p) for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        print(f"  etl: generating {len(missing)} raw objects into {folder}", file=sys.stderr)
        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            futures = [pool.submit(generate_object, i, p) for i, p in missing]
            for done, future in enumerate(futures, start=1):
                future.result()
                rate = done * RECORDS_PER_OBJECT / (time.perf_counter() - started)
                print(f"\r  etl: {done}/{len(missing)} objects ({rate:,.0f} records/s)", end="", file=sys.stderr)
        print(file=sys.stderr)
    return paths


# --- watching the Glue run ----------------------------------------------------------------------


def _stat_fields(pid: str | int) -> list[str]:
    """/proc/<pid>/stat after the command name: [state, ppid, pgrp, ...] (field 3 onwards)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _running(pid: int) -> bool:
    try:
        return _stat_fields(pid)[0] not in {"Z", "X"}
    except (OSError, IndexError):
        return False


def _process_group(group: int) -> dict[int, tuple[int, int]]:
    """pid -> (resident KiB, CPU clock ticks used) of the live processes of a process group."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields(entry.name)
            if int(fields[2]) != group or fields[0] in {"Z", "X"}:
                continue
            ticks = int(fields[11]) + int(fields[12])  # utime + stime
            rss = next(
                int(line.split()[1])
                for line in (entry / "status").read_text().splitlines()
                if line.startswith("VmRSS:")
            )
        except (OSError, IndexError, ValueError, StopIteration):
            continue  # ended meanwhile
        found[int(entry.name)] = (rss, ticks)
    return found


@dataclass
class GlueWatch:
    """Samples the Glue run from a thread: its phases (the local runner's log records, the life of
    the script's process), the memory and CPU of its process group (the script, the Spark JVM and
    its Python workers: the run's process leads its own group) and the machine's load."""

    job_name: str
    run_id: str | None = None
    state: str = "-"
    peak_rss_mb: float = 0.0
    process_ended: float | None = None
    cpu_ticks: dict[int, int] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)  # runner log message -> time.time()
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._client = boto3.client("glue")  # made here: creating clients is not thread-safe
        self._thread = threading.Thread(target=self._sample, name="bench-etl-watch", daemon=True)
        self._handler = _MarkHandler(self.marks)
        self._level = logging.NOTSET

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu_ticks.values()) / CLOCK_TICKS

    def __enter__(self) -> GlueWatch:
        runner = logging.getLogger(glue.__name__)
        self._level = runner.level
        runner.setLevel(logging.INFO)  # its "N objects mirrored / uploaded" records mark the phases
        runner.addHandler(self._handler)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        runner = logging.getLogger(glue.__name__)
        runner.removeHandler(self._handler)
        runner.setLevel(self._level)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            if self.run_id is None:
                runs = self._client.get_job_runs(JobName=self.job_name)["JobRuns"]
                if not runs:
                    continue
                self.run_id = runs[0]["Id"]
            run = glue.local_run(self.run_id)
            if run is None:
                continue
            self.state = run.state
            if run.pid is None:
                continue
            if self.process_ended is None:
                self.load.append(os.getloadavg()[0])
                if not _running(run.pid):
                    self.process_ended = time.time()  # the script's end (its JVM may take a moment longer)
            processes = _process_group(run.pid)
            self.peak_rss_mb = max(self.peak_rss_mb, sum(rss for rss, _ in processes.values()) / 1024)
            for pid, (_, ticks) in processes.items():
                self.cpu_ticks[pid] = max(ticks, self.cpu_ticks.get(pid, 0))


class _MarkHandler(logging.Handler):
    def __init__(self, marks: dict[str, float]) -> None:
        super().__init__(logging.INFO)
        self.marks = marks

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for kind in ("mirrored from S3", "uploaded to S3"):
            if kind in message:
                self.marks[kind] = record.created


def spark_breakdown(event_logs: Path) -> dict[str, Any]:
    """Where the Spark application's time went, from its event log: the slowest SQL executions."""
    logs = sorted(p for p in event_logs.glob("*") if p.is_file()) if event_logs.is_dir() else []
    if not logs:
        return {}
    app: dict[str, int] = {}
    executions: dict[int, dict[str, Any]] = {}
    with logs[-1].open() as lines:
        for line in lines:
            if '"Event":"SparkListenerTask' in line or '"Event":"SparkListenerStage' in line:
                continue  # the bulk of the log, not needed here
            event = json.loads(line)
            kind = event["Event"]
            if kind == "SparkListenerApplicationStart":
                app["start"] = event["Timestamp"]
            elif kind == "SparkListenerApplicationEnd":
                app["end"] = event["Timestamp"]
            elif kind.endswith("SQLExecutionStart"):
                # "collect at /tmp/.../dxops_etl.zip/dxops_etl/io.py:8" -> "collect at dxops_etl/io.py:8"
                what = re.sub(r"\S*/((?:dxops_etl|cuallee)/)", r"\1", str(event.get("description")))
                executions[event["executionId"]] = {"id": event["executionId"], "start": event["time"], "what": what}
            elif kind.endswith("SQLExecutionEnd") and event["executionId"] in executions:
                executions[event["executionId"]]["end"] = event["time"]
    ended = [e for e in executions.values() if "end" in e]
    for execution in ended:
        execution["seconds"] = round((execution.pop("end") - execution.pop("start")) / 1000, 1)
    slowest = sorted(ended, key=lambda e: -e["seconds"])[:SLOWEST_SPARK_EXECUTIONS]
    return {
        "application_seconds": round((app["end"] - app["start"]) / 1000, 1) if len(app) == 2 else None,
        "sql_executions": len(executions),
        "sql_execution_seconds": round(sum(e["seconds"] for e in ended), 1),
        "slowest_sql_executions": slowest,
    }


# --- one size -----------------------------------------------------------------------------------


def _s3_json(uri: str) -> Any:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def _objects(bucket: str, prefix: str = "") -> list[Any]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o for page in pages for o in page.get("Contents", [])]


def land(cloud: LocalCloud, paths: list[Path], now: dt.datetime) -> int:
    """Put the cached objects into the raw bucket, stamped with ingested_at = now; returns the bytes."""
    s3, bucket = boto3.client("s3"), cloud.outputs["RawBucketName"]
    placeholder = f'"ingested_at":"{INGESTED_PLACEHOLDER:%Y-%m-%dT%H:%M:%SZ}"'.encode()
    stamp = f'"ingested_at":"{now:%Y-%m-%dT%H:%M:%SZ}"'.encode()
    size = 0
    for index, path in enumerate(paths):
        body = path.read_bytes().replace(placeholder, stamp)
        key = raw_key("clinical", _site(index), now.date(), f"bench-{index:05d}")
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson")
        size += len(body)
        print(f"\r  etl: landed {index + 1}/{len(paths)} objects", end="", file=sys.stderr)
    print(file=sys.stderr)
    return size


def _wait(cloud: LocalCloud, arn: str, watch: GlueWatch, began: float) -> dict[str, Any]:
    while True:
        try:
            return stepfunctions.wait_for_execution(cloud, arn, timeout=PROGRESS_SECONDS)
        except TimeoutError:
            elapsed = time.perf_counter() - began
            if elapsed > EXECUTION_TIMEOUT:
                raise
            print(
                f"\r  etl: {elapsed:6.0f} s, Glue run {watch.state}, {watch.cpu_seconds:,.0f} CPU s, "
                f"peak {watch.peak_rss_mb:,.0f} MB, load {os.getloadavg()[0]:.1f}  ",
                end="",
                file=sys.stderr,
            )


def _dq_report(cloud: LocalCloud) -> dict[str, Any]:
    """The run's DQ report wherever the pipeline left it (the version, or its quarantine)."""
    curated = cloud.outputs["CuratedBucketName"]
    reports = [o["Key"] for o in _objects(curated) if o["Key"].endswith("/dq_report.json")]
    return _s3_json(f"s3://{curated}/{reports[0]}") if reports else {}


def _glue_run(cloud: LocalCloud, watch: GlueWatch) -> dict[str, Any]:
    (run,) = boto3.client("glue").get_job_runs(JobName=cloud.outputs["EtlJobName"])["JobRuns"]  # a fresh cloud
    local = glue.local_run(run["Id"])  # the runner's clock: sub-second, where ExecutionTime has seconds
    started, completed = (local.started_on, local.completed_on) if local else (run["StartedOn"], run["CompletedOn"])
    assert completed is not None, run
    phases: dict[str, float] = {}
    downloaded = watch.marks.get("mirrored from S3")
    if downloaded is not None:
        phases["mirror_download_seconds"] = downloaded - started.timestamp()
        if watch.process_ended is not None:
            phases["script_seconds"] = watch.process_ended - downloaded
            if "uploaded to S3" in watch.marks:
                phases["mirror_upload_seconds"] = watch.marks["uploaded to S3"] - watch.process_ended
    return {
        "job_run_id": run["Id"],
        "state": run["JobRunState"],
        "error": run.get("ErrorMessage"),
        "seconds": (completed - started).total_seconds(),
        "execution_time": run.get("ExecutionTime"),
        **{k: round(max(v, 0.0), 1) for k, v in phases.items()},
        "cpu_seconds": round(watch.cpu_seconds, 1),
        "peak_rss_mb": round(watch.peak_rss_mb),
        "load_average_mean": round(statistics.fmean(watch.load), 2) if watch.load else None,
    }


def run_size(records: int, paths: list[Path], workdir: Path) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    event_logs = workdir / "spark-events"
    event_logs.mkdir(parents=True)
    spark_conf = {**SPARK_CONF, "spark.eventLog.enabled": "true", "spark.eventLog.dir": event_logs.as_uri()}
    with (
        glue.configured(workdir=workdir / "glue", shuffle_partitions=SHUFFLE_PARTITIONS, spark_conf=spark_conf),
        LocalCloud.start(template_path=ROOT / "template.yaml") as cloud,
        open(os.devnull, "w") as sink,
        contextlib.redirect_stdout(sink),  # the functions' JSON logs and metrics: written, not shown
    ):
        began = time.perf_counter()
        raw_bytes = land(cloud, paths, now)
        land_seconds = time.perf_counter() - began
        sfn = boto3.client("stepfunctions")
        with GlueWatch(cloud.outputs["EtlJobName"]) as watch:
            began = time.perf_counter()
            arn = sfn.start_execution(
                stateMachineArn=cloud.outputs["DataProcessingStateMachineArn"], input=json.dumps({"trigger": "manual"})
            )["executionArn"]
            result = _wait(cloud, arn, watch, began)
            end_to_end = time.perf_counter() - began
        print(file=sys.stderr)
        glue_run = _glue_run(cloud, watch)
        states = stepfunctions.execution_history(cloud, arn)
        output = json.loads(result.get("output") or "{}")
        manifest = _s3_json(output["manifest_uri"]) if "manifest_uri" in output else {}
        report = _dq_report(cloud)
        table = boto3.client("glue").get_table(
            DatabaseName=cloud.outputs["CatalogDatabaseName"], Name=cloud.outputs["CuratedTableName"]
        )["Table"]
        version = manifest.get("dataset_version") or output.get("dataset_version")
        parquet = [
            o
            for o in _objects(cloud.outputs["CuratedBucketName"], f"datasets/{version}/")
            if o["Key"].endswith(".parquet")
        ]
    return {
        "records": records,
        "raw_objects": len(paths),
        "raw_mb": round(raw_bytes / 2**20, 1),
        "land_seconds": round(land_seconds, 1),
        "status": result["status"],
        "error": result.get("error"),
        "states": states,
        "end_to_end_seconds": round(end_to_end, 1),
        "glue": glue_run,
        "spark": spark_breakdown(event_logs),
        "curated_rows": manifest.get("rows", {}).get("curated", 0),
        "rows": manifest.get("rows", {}),
        "dq_status": report.get("status"),
        "dq_failed_rules": [r["id"] for r in report.get("rules", []) if r.get("status") == "fail"],
        "dataset_version": version,
        "published": bool(manifest) and table.get("Parameters", {}).get("dataset_version") == version,
        "columns": {group: len(names) for group, names in manifest.get("columns", {}).items()},
        "curated_parquet_files": len(parquet),
        "curated_parquet_mb": round(sum(o["Size"] for o in parquet) / 2**20, 1),
    }


def _label(records: int) -> str:
    return f"{records // 1000}k"


def main() -> None:
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for records in SIZES:
        label = _label(records)
        paths = cached_objects(records)
        print(f"  etl: {records:,} records in {len(paths)} objects, a fresh local cloud", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="dxops-bench-etl-") as workdir:
            result = results[label] = run_size(records, paths, Path(workdir))
        print(
            f"  etl: {label}: {result['status']}, DQ {result['dq_status']}, version {result['dataset_version']}, "
            f"Glue {result['glue']['seconds']:.1f} s, end to end {result['end_to_end_seconds']:.1f} s",
            file=sys.stderr,
        )
        if result["status"] != "SUCCEEDED" or not result["published"]:
            raise SystemExit(f"etl: the {label} run published no version: {json.dumps(result, default=str)[:3000]}")

    metrics: dict[str, float] = {}
    for label, result in results.items():
        glue_run = result["glue"]
        metrics[f"glue_rows_per_s_{label}"] = round(result["curated_rows"] / glue_run["seconds"], 1)
        metrics[f"glue_seconds_{label}"] = round(glue_run["seconds"], 1)
        metrics[f"end_to_end_seconds_{label}"] = result["end_to_end_seconds"]
        metrics[f"glue_cpu_seconds_{label}"] = glue_run["cpu_seconds"]
        metrics[f"glue_peak_rss_mb_{label}"] = glue_run["peak_rss_mb"]
    small, large = (_label(size) for size in SIZES)

    def over(name: str) -> float:
        return round(metrics[f"{name}_{large}"] / metrics[f"{name}_{small}"], 2)

    ratio = {
        f"glue_seconds_{large}_over_{small}": over("glue_seconds"),
        f"end_to_end_seconds_{large}_over_{small}": over("end_to_end_seconds"),
        f"glue_cpu_seconds_{large}_over_{small}": over("glue_cpu_seconds"),
        f"glue_rows_per_s_{large}_over_{small}": over("glue_rows_per_s"),
    }
    total = time.perf_counter() - started
    path = write_result(
        "etl",
        metrics,
        baseline={f"records_{large}_over_{small}": SIZES[1] / SIZES[0]},  # the seconds ratios if the cost were linear
        ratio=ratio,
        runs=results,
        cores=os.cpu_count(),
        spark={
            "master": "local[*]",
            "shuffle_partitions": SHUFFLE_PARTITIONS,
            "conf": SPARK_CONF,
            "java_options": glue.current_settings().java_options,
            "event_log": True,
        },
        cohort={"seed": SEED, "rare_count": RARE_COUNT, "sites": list(SITES), "records_per_object": RECORDS_PER_OBJECT},
        object_size=OBJECT_SIZE,
        bench_peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        bench_seconds=round(total, 1),
        note=(
            "a fresh local cloud per size (moto in-process); Glue seconds: the JobRun's StartedOn -> CompletedOn, "
            "the local S3 mirror included; end to end: StartExecution -> SUCCEEDED with a published version"
        ),
    )
    print(
        f"etl: Glue {metrics[f'glue_rows_per_s_{small}']:,.0f} rows/s ({small}), "
        f"{metrics[f'glue_rows_per_s_{large}']:,.0f} rows/s ({large}): x{ratio[f'glue_seconds_{large}_over_{small}']} "
        f"the time for x{SIZES[1] // SIZES[0]} the rows; end to end {metrics[f'end_to_end_seconds_{small}']:.0f} s "
        f"and {metrics[f'end_to_end_seconds_{large}']:.0f} s; bench {total:.0f} s -> {path}"
    )


if __name__ == "__main__":
    main()
