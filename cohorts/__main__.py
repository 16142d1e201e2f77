"""Command line: python -m cohorts {generate,report,scenarios}.

Prints counts and paths only, never patient identifiers (synthetic ones are PHI by contract).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from cohorts.catalog import Catalog, build_catalog
from cohorts.drift import SCENARIOS, scenario
from cohorts.output import write_cohort
from cohorts.patients import CohortConfig, CohortGenerator
from cohorts.report import CohortStats, write_report


def _rate(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return rate


def _cohort_options(parser: argparse.ArgumentParser, records: int) -> None:
    parser.add_argument("--records", type=int, default=records, help=f"number of records (default {records})")
    parser.add_argument("--seed", type=int, default=7, help="same seed, same cohort (default 7)")
    parser.add_argument("--scenario", default="baseline", choices=sorted(SCENARIOS), help="drift scenario")
    parser.add_argument("--source", default="site-sim", help="site id of the records (default site-sim)")
    parser.add_argument("--rare-count", type=int, default=200, help="rare diseases in the catalog (default 200)")
    parser.add_argument("--rare-share", type=_rate, default=0.05, help="share of rare-disease records (default 0.05)")
    parser.add_argument("--common", help="comma-separated common disease codes (default: all curated)")
    parser.add_argument("--rare", help="comma-separated rare disease codes (default: --rare-count drawn)")
    parser.add_argument(
        "--prevalence", action="append", default=[], metavar="CODE=WEIGHT", help="override a disease's weight"
    )
    parser.add_argument("--observed-mean", type=float, default=7.0, help="observed terms per case (default 7)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cohorts",
        description="Synthetic clinical cohorts grounded in HPO annotations and Orphanet epidemiology.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="write records.ndjson, devices.ndjson, manifest.json ...")
    _cohort_options(generate, 10_000)
    generate.add_argument("--out", type=Path, required=True, help="output directory")
    generate.add_argument("--malformed-rate", type=_rate, default=0.0, help="share of malformed records")
    generate.add_argument("--curated", action="store_true", help="also write curated.csv for the training code")
    report = commands.add_parser(
        "report", help="generate a cohort (same options, streamed) and write report.md and a PNG plot"
    )
    _cohort_options(report, 10_000)
    report.add_argument("--out", type=Path, default=Path("artifacts/cohort"), help="default artifacts/cohort")
    commands.add_parser("scenarios", help="list the drift scenarios and what they change")
    return parser


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [item.strip() for item in value.split(",") if item.strip()]


def _config(args: argparse.Namespace) -> tuple[CohortConfig, Catalog]:
    prevalence = {}
    for item in args.prevalence:
        code, _, weight = item.partition("=")
        prevalence[code] = float(weight)
    catalog = build_catalog(
        common=_split(args.common), rare=_split(args.rare), rare_count=args.rare_count, prevalence=prevalence
    )
    config = CohortConfig(
        records=args.records,
        seed=args.seed,
        source=args.source,
        rare_share=args.rare_share,
        observed_mean=args.observed_mean,
        scenario=scenario(args.scenario),
    )
    return config, catalog


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "scenarios":
        for item in SCENARIOS.values():
            print(json.dumps(item.ground_truth()))
        return 0
    try:
        config, catalog = _config(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.command == "generate":
        manifest = write_cohort(
            args.out, config, catalog, malformed_rate=args.malformed_rate, curated=args.curated, progress=not args.quiet
        )
        summary = {k: manifest[k] for k in ("records", "malformed", "devices", "device_messages", "catalog")}
        print(json.dumps({"out": str(args.out), **summary}))
        return 0
    generator = CohortGenerator(config, catalog)
    stats = CohortStats()
    for patient in generator:
        stats.add(patient)
        if not args.quiet and stats.records % 10_000 == 0:
            print(f"\rreport: {stats.records}/{config.records} records", end="", file=sys.stderr, flush=True)
    if not args.quiet:
        print(file=sys.stderr)
    path = write_report(args.out, generator, stats)
    print(json.dumps({"report": str(path), "records": stats.records, "classes": len(stats.labels)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
