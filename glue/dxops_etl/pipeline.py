"""The whole ETL as one function over a Spark session: raw zone in, curated table + DQ out.

etl_job.py (Glue) and the tests call run(); write_outputs() persists what run() returns.
Row accounting (run_summary.json "rows"), for each kind:
    lines_in = valid + quarantined,  valid = kept + duplicates
so that lines_in = curated rows + duplicates + quarantined for the clinical records.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dxops_etl import CURATED_SCHEMA_VERSION
from dxops_etl.curated import CuratedOptions, build_curated
from dxops_etl.curated_schema import PARTITION_COLUMNS
from dxops_etl.dedup import deduplicate_readings, deduplicate_records
from dxops_etl.dq import DQContext, DQOutcome, Ruleset, class_counts, evaluate, parse_ruleset
from dxops_etl.features import orphan_device_patients
from dxops_etl.fingerprint import content_hash, source_objects
from dxops_etl.io import join_uri, write_json
from dxops_etl.raw_schemas import SOURCE_FILE_COLUMN
from dxops_etl.read import read_clinical, read_device

RULESET_NAME = "curated.json"


def default_ruleset() -> Ruleset:
    """glue/rulesets/curated.json: from the repository, or packaged into the job's zip."""
    in_repo = Path(__file__).resolve().parents[1] / "rulesets" / RULESET_NAME
    if in_repo.is_file():
        return parse_ruleset(json.loads(in_repo.read_text(encoding="utf-8")))
    packaged = resources.files("dxops_etl").joinpath("rulesets", RULESET_NAME).read_text(encoding="utf-8")
    return parse_ruleset(json.loads(packaged))


@dataclass(frozen=True)
class EtlConfig:
    raw_path: str  # holds clinical/ and device/ (raw/<kind>/source=<site>/ingest_date=<d>/*.ndjson)
    dataset_version: str
    run_time: dt.datetime
    ruleset: Ruleset
    curated: CuratedOptions = field(default_factory=CuratedOptions)
    previous_row_count: int | None = None
    known_labels: Sequence[str] | None = None


@dataclass
class EtlResult:
    curated: DataFrame
    quarantine: DataFrame  # read.QUARANTINE_SCHEMA: corrupt or incomplete lines
    dq: DQOutcome
    summary: dict[str, Any]
    sources: list[dict[str, Any]]  # the raw objects read (lineage): kind, uri, lines


def _counts(frame: DataFrame, column: str) -> dict[str, int]:
    return {str(r[column]): int(r["count"]) for r in frame.groupBy(column).count().collect()}


def run(spark: SparkSession, config: EtlConfig, parents: Mapping[str, Sequence[str]]) -> EtlResult:
    clinical = read_clinical(spark, join_uri(config.raw_path, "clinical"))
    device = read_device(spark, join_uri(config.raw_path, "device"))
    records = deduplicate_records(clinical.valid)
    readings = deduplicate_readings(device.valid)
    kept_records = records.kept.cache()
    kept_readings = readings.kept.cache()

    build = build_curated(kept_records, kept_readings, parents, config.curated)
    curated = build.table.cache()
    orphans = orphan_device_patients(kept_readings, kept_records).cache()
    device_patients = kept_readings.select("patient_pseudonym").distinct().count()
    context = DQContext(
        run_time=config.run_time,
        previous_row_count=config.previous_row_count,
        known_labels=config.known_labels,
        orphan_device_patients=orphans,
        device_patients=device_patients,
    )
    outcome = evaluate(curated, config.ruleset, context)
    quarantine = clinical.quarantine.unionByName(device.quarantine).cache()
    sources = source_objects(
        ("clinical", clinical.valid, SOURCE_FILE_COLUMN),
        ("clinical", clinical.quarantine, "source_file"),
        ("device", device.valid, SOURCE_FILE_COLUMN),
        ("device", device.quarantine, "source_file"),
    )

    rows = {
        "clinical_lines_in": clinical.valid.count() + clinical.quarantine.count(),
        "clinical_quarantined": clinical.quarantine.count(),
        "clinical_duplicates": records.duplicates.count(),
        "curated": outcome.report.rows,
        "reading_lines_in": device.valid.count() + device.quarantine.count(),
        "readings_quarantined": device.quarantine.count(),
        "reading_duplicates": readings.duplicates.count(),
        "readings_kept": kept_readings.count(),
        "device_patients": device_patients,
        "orphan_device_patients": orphans.count(),
        "dq_failing_rows": outcome.failing_rows.count() if outcome.failing_rows is not None else 0,
    }
    summary: dict[str, Any] = {
        "dataset_version": config.dataset_version,
        "schema_version": CURATED_SCHEMA_VERSION,
        "run_time": config.run_time.isoformat(),
        "content_hash": content_hash(curated),
        "dq_status": outcome.report.status,
        "dq_failed_rules": [r.id for r in outcome.report.failed],
        "rows": rows,
        "quarantine_reasons": _counts(quarantine, "reason"),
        "measurement_status": _counts(build.measurements, "status"),
        "device_measurement_status": _counts(build.device_measurements, "status"),
        "class_counts": class_counts(curated),
        "label_status_counts": _counts(curated, "label_status"),
        "max_ingested_at": _max_ingested(curated),
        "columns": build.columns,
        # Hive types for the Data Catalog table (the partition columns are its partition keys).
        "table_schema": [
            {"name": f.name, "type": f.dataType.simpleString()}
            for f in curated.schema.fields
            if f.name not in PARTITION_COLUMNS
        ],
        "source_objects": len(sources),
        "parameters": {
            "device_window_hours": config.curated.device_window_hours,
            "min_term_records": config.curated.min_term_records,
            "phenotype_vocabulary_given": config.curated.phenotype_vocabulary is not None,
            "history_min_records": config.curated.history_min_records,
            "previous_row_count": config.previous_row_count,
            "known_labels_given": config.known_labels is not None,
            "ruleset": f"{config.ruleset.name} v{config.ruleset.version}",
        },
    }
    return EtlResult(curated, quarantine, outcome, summary, sources)


def _max_ingested(curated: DataFrame) -> str | None:
    first = curated.agg(F.max("ingested_at")).first()
    value = first[0] if first is not None else None
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class OutputLocations:
    """Where one run writes: its version folder and its quarantine folder (nothing else)."""

    version_root: str  # e.g. s3://curated/datasets/<version>/
    quarantine_root: str  # e.g. s3://curated/quarantine/<version>/

    @property
    def table(self) -> str:
        return join_uri(self.version_root, "table")

    @property
    def dq_report(self) -> str:
        return join_uri(self.version_root, "dq_report.json")

    @property
    def run_summary(self) -> str:
        return join_uri(self.version_root, "run_summary.json")

    @property
    def sources(self) -> str:
        return join_uri(self.version_root, "sources.json")


def write_outputs(result: EtlResult, where: OutputLocations) -> dict[str, Any]:
    """Writes the table, the quarantine, the source list and the two reports; returns the run summary."""
    result.curated.write.mode("overwrite").partitionBy(*PARTITION_COLUMNS).parquet(where.table)
    outputs = {
        "table": where.table,
        "dq_report": where.dq_report,
        "sources": where.sources,
        "quarantine": where.quarantine_root,
    }
    if result.summary["rows"]["clinical_quarantined"] or result.summary["rows"]["readings_quarantined"]:
        result.quarantine.write.mode("overwrite").partitionBy("kind").json(join_uri(where.quarantine_root, "lines"))
    if result.dq.failing_rows is not None:
        failing = join_uri(where.quarantine_root, "dq_failing_rows")
        result.dq.failing_rows.write.mode("overwrite").parquet(failing)
    if result.dq.orphans is not None:
        result.dq.orphans.write.mode("overwrite").parquet(join_uri(where.quarantine_root, "dq_orphan_device_patients"))
    write_json(where.sources, result.sources)
    write_json(where.dq_report, result.dq.report.to_dict())
    summary = {**result.summary, "outputs": outputs}
    write_json(where.run_summary, summary)
    return summary
