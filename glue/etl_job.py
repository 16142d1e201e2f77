"""Glue entry point of the dxops ETL: raw zone -> curated Parquet + DQ report + run summary.

Thin on purpose: argument parsing, the Spark session through GlueContext, then
dxops_etl.pipeline (plain Spark functions, tested in tests/glue). Ship dxops_etl (with
dxops.vocab and the ruleset) as --extra-py-files (glue/build_package.py builds the zip) and
cuallee as --additional-python-modules cuallee==0.15.4.

Required arguments: --raw_path (folder holding clinical/ and device/), --output_path (this
version's folder), --quarantine_path (this version's quarantine folder), --dataset_version.
Optional (Glue's getResolvedOptions makes every requested option required, so these are read only
when present): --previous_row_count, --run_time (ISO
8601 UTC; default now), --known_labels and --phenotype_vocabulary (URI of a JSON list),
--ruleset_path (URI of a ruleset JSON; default the packaged glue/rulesets/curated.json),
--min_term_records (5), --history_min_records (5), --device_window_hours (24). See glue/README.md.

Exit status: non-zero only on errors. A failing data-quality check is a successful run whose
dq_report.json and run_summary.json say "fail": the state machine branches on them.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence

from awsglue.context import GlueContext
from awsglue.job import Job
from awsglue.utils import getResolvedOptions
from dxops_etl.curated import CuratedOptions
from dxops_etl.dq import Ruleset, parse_ruleset
from dxops_etl.io import read_text
from dxops_etl.pipeline import EtlConfig, OutputLocations, default_ruleset, run, write_outputs
from pyspark.context import SparkContext

from dxops.vocab.hpo import hpo_parents

REQUIRED = ["JOB_NAME", "raw_path", "output_path", "quarantine_path", "dataset_version"]
OPTIONAL = [
    "previous_row_count",
    "run_time",
    "known_labels",
    "phenotype_vocabulary",
    "ruleset_path",
    "min_term_records",
    "history_min_records",
    "device_window_hours",
]


def optional_arguments(argv: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    """The optional job arguments present in argv (--name value), as getResolvedOptions parses them."""
    present = [name for name in names if f"--{name}" in argv]
    return {k: v for k, v in getResolvedOptions(list(argv), present).items() if k in present} if present else {}


def _json_list(uri: str | None) -> list[str] | None:
    if not uri:
        return None
    values = json.loads(read_text(uri))
    if not isinstance(values, list):
        raise ValueError("expected a JSON list of strings")
    return [str(v) for v in values]


def config_from(args: dict[str, str]) -> EtlConfig:
    run_time = dt.datetime.fromisoformat(args["run_time"]) if args.get("run_time") else dt.datetime.now(dt.UTC)
    if run_time.tzinfo is None:
        run_time = run_time.replace(tzinfo=dt.UTC)
    previous = args.get("previous_row_count")
    return EtlConfig(
        raw_path=args["raw_path"],
        dataset_version=args["dataset_version"],
        run_time=run_time,
        ruleset=load_ruleset_uri(args.get("ruleset_path")),
        curated=CuratedOptions(
            device_window_hours=int(args.get("device_window_hours", 24)),
            min_term_records=int(args.get("min_term_records", 5)),
            phenotype_vocabulary=_json_list(args.get("phenotype_vocabulary")),
            history_min_records=int(args.get("history_min_records", 5)),
        ),
        previous_row_count=int(previous) if previous not in (None, "", "none") else None,
        known_labels=_json_list(args.get("known_labels")),
    )


def load_ruleset_uri(uri: str | None) -> Ruleset:
    if not uri:
        return default_ruleset()
    return parse_ruleset(json.loads(read_text(uri)))


def main(argv: Sequence[str]) -> None:
    args = {**getResolvedOptions(list(argv), REQUIRED), **optional_arguments(argv, OPTIONAL)}
    glue_context = GlueContext(SparkContext.getOrCreate())
    logger = glue_context.get_logger()
    job = Job(glue_context)
    job.init(args["JOB_NAME"], args)
    config = config_from(args)
    result = run(glue_context.spark_session, config, hpo_parents())
    where = OutputLocations(version_root=args["output_path"], quarantine_root=args["quarantine_path"])
    summary = write_outputs(result, where)
    # Counts and statuses only: never data values.
    logger.info(
        f"dataset {config.dataset_version} ({summary['content_hash']}): {summary['rows']['curated']} curated rows, "
        f"DQ {summary['dq_status']} ({len(summary['dq_failed_rules'])} failed rules)"
    )
    job.commit()


if __name__ == "__main__":
    main(sys.argv)
