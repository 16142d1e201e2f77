"""Data quality, Deequ-style: a declarative ruleset evaluated with cuallee on the curated table.

The ruleset (glue/rulesets/curated.json, syntax in glue/README.md) lists rules with an ``id``, a
``type``, a ``level`` (error: fails the dataset; warning: reported only) and the type's
parameters. Row-level rules (completeness, uniqueness, range, lab_ranges, vital_ranges, pattern,
allowed_values) become one cuallee Check evaluated in a single pass over the table, and their
failing rows are returned as a DataFrame. Dataset-level rules (device_referential,
label_distribution, freshness, row_count_change) are measured with Spark into a one-row metrics
frame that a second cuallee Check compares with the thresholds.

cuallee (maintained, pure Python on Spark, Deequ-style API) rather than PyDeequ: PyDeequ needs the
Deequ jars from Maven, which these machines cannot reach and which pins Spark versions
(python-deequ#74, #140, #146).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cuallee import Check, CheckLevel  # type: ignore[import-untyped]
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from dxops_etl.features import DEVICE_STATS, LAB_COLUMNS, VITAL_COLUMNS, device_column
from dxops_etl.units import LABS, VITALS

ROW_LEVEL = frozenset(
    {"completeness", "uniqueness", "range", "lab_ranges", "vital_ranges", "pattern", "allowed_values"}
)
DATASET_LEVEL = frozenset({"device_referential", "label_distribution", "freshness", "row_count_change"})
LEVELS = frozenset({"error", "warning"})


class RulesetError(ValueError):
    """The ruleset file is not valid (unknown type, missing parameter)."""


@dataclass(frozen=True)
class Rule:
    id: str
    type: str
    level: str
    params: dict[str, Any]
    description: str = ""


@dataclass(frozen=True)
class Ruleset:
    name: str
    version: int
    rules: tuple[Rule, ...]


_REQUIRED: dict[str, tuple[str, ...]] = {
    "completeness": ("column",),
    "uniqueness": ("column",),
    "range": ("column",),
    "lab_ranges": (),
    "vital_ranges": (),
    "pattern": ("column", "regex"),
    "allowed_values": ("column",),
    "device_referential": ("max_fraction",),
    "label_distribution": (),
    "freshness": ("column", "max_age_days"),
    "row_count_change": (),
}


def parse_ruleset(document: Mapping[str, Any]) -> Ruleset:
    rules = []
    seen: set[str] = set()
    for raw in document.get("rules", []):
        params = {k: v for k, v in raw.items() if k not in {"id", "type", "level", "description"}}
        rule = Rule(
            str(raw["id"]), str(raw["type"]), str(raw.get("level", "error")), params, raw.get("description", "")
        )
        if rule.type not in _REQUIRED:
            raise RulesetError(f"rule {rule.id}: unknown type {rule.type}")
        if rule.level not in LEVELS:
            raise RulesetError(f"rule {rule.id}: level must be error or warning")
        missing = [p for p in _REQUIRED[rule.type] if p not in params]
        if missing:
            raise RulesetError(f"rule {rule.id}: missing {', '.join(missing)}")
        if rule.id in seen:
            raise RulesetError(f"rule {rule.id}: duplicate id")
        seen.add(rule.id)
        rules.append(rule)
    return Ruleset(str(document.get("name", "ruleset")), int(document.get("version", 1)), tuple(rules))


def load_ruleset(path: str | Path) -> Ruleset:
    return parse_ruleset(json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass
class RuleResult:
    id: str
    rule: str  # the ruleset rule this result belongs to (lab_ranges expand to one result per column)
    type: str
    level: str
    column: str | None
    status: str  # pass | fail | skipped
    observed: float | None
    threshold: Any
    failing_rows: int | None
    description: str = ""


@dataclass
class DQReport:
    ruleset: str
    ruleset_version: int
    engine: str
    evaluated_at: str
    rows: int
    status: str = "pass"
    rules: list[RuleResult] = field(default_factory=list)

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.rules if r.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed_rules": [r.id for r in self.failed]}


@dataclass(frozen=True)
class DQContext:
    run_time: dt.datetime
    previous_row_count: int | None = None
    known_labels: Sequence[str] | None = None
    orphan_device_patients: DataFrame | None = None  # features.orphan_device_patients()
    device_patients: int = 0


@dataclass
class DQOutcome:
    report: DQReport
    failing_rows: DataFrame | None  # curated rows + dq_rule, for failed row-level rules
    orphans: DataFrame | None  # device patients without records, when that rule failed


@dataclass
class _RowCheck:
    result: RuleResult
    predicate: str | None  # SQL; rows where it is false fail (None: uniqueness)
    index: int = -1


def _q(column: str) -> str:
    return f"`{column.replace('`', '``')}`"


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(float(value))


def _range_predicate(column: str, low: float | None, high: float | None) -> str:
    bounds = []
    if low is not None:
        bounds.append(f"{_q(column)} >= {_literal(low)}")
    if high is not None:
        bounds.append(f"{_q(column)} <= {_literal(high)}")
    return f"({_q(column)} IS NULL OR ({' AND '.join(bounds) or 'TRUE'}))"


def _result(rule: Rule, column: str | None, threshold: Any, sub: str | None = None) -> RuleResult:
    return RuleResult(
        id=f"{rule.id}:{sub}" if sub else rule.id,
        rule=rule.id,
        type=rule.type,
        level=rule.level,
        column=column,
        status="pending",
        observed=None,
        threshold=threshold,
        failing_rows=None,
        description=rule.description,
    )


def _row_checks(rule: Rule, columns: Sequence[str], context: DQContext) -> list[tuple[_RowCheck, float]]:
    """(check, min pass fraction) for one row-level rule; columns absent from the table are skipped."""
    p = rule.params
    pct = float(p.get("min_fraction", 1.0))
    if rule.type == "completeness":
        return [(_RowCheck(_result(rule, p["column"], {"min_fraction": pct}), f"{_q(p['column'])} IS NOT NULL"), pct)]
    if rule.type == "uniqueness":
        return [(_RowCheck(_result(rule, p["column"], {"min_fraction": 1.0}), None), 1.0)]
    if rule.type == "range":
        low, high = p.get("min"), p.get("max")
        check = _RowCheck(
            _result(rule, p["column"], {"min": low, "max": high}), _range_predicate(p["column"], low, high)
        )
        return [(check, pct)]
    if rule.type in {"lab_ranges", "vital_ranges"}:
        return _table_range_checks(rule, columns, pct)
    return _code_checks(rule, context, pct)


def _code_checks(rule: Rule, context: DQContext, pct: float) -> list[tuple[_RowCheck, float]]:
    """pattern / allowed_values (allowed_values without values: skipped)."""
    p = rule.params
    if rule.type == "pattern":
        regex = str(p["regex"])
        predicate = f"({_q(p['column'])} IS NULL OR {_q(p['column'])} RLIKE {_literal(regex)})"
        return [(_RowCheck(_result(rule, p["column"], {"regex": regex}), predicate), pct)]
    values = p.get("values")
    if values is None and p.get("values_from") == "known_labels":
        values = context.known_labels
    if values is None:
        return [(_RowCheck(_result(rule, p["column"], {"values": None}), "TRUE", index=-2), pct)]
    allowed = ", ".join(_literal(str(v)) for v in values) or "NULL"
    predicate = f"({_q(p['column'])} IS NULL OR {_q(p['column'])} IN ({allowed}))"
    return [(_RowCheck(_result(rule, p["column"], {"values": len(values)}), predicate), pct)]


def _table_range_checks(rule: Rule, columns: Sequence[str], pct: float) -> list[tuple[_RowCheck, float]]:
    """lab_ranges / vital_ranges: one range check per column of the table (units.py ranges)."""
    targets: list[tuple[str, tuple[float, float]]] = []
    if rule.type == "lab_ranges":
        targets = [(c, LABS[c].plausible) for c in LAB_COLUMNS]
    else:
        for loinc in VITAL_COLUMNS:
            targets.append((loinc, VITALS[loinc].plausible))
            targets += [(device_column(loinc, s), VITALS[loinc].plausible) for s in DEVICE_STATS]
    present = set(columns)
    return [
        (
            _RowCheck(
                _result(rule, c, {"min": lo, "max": hi, "min_fraction": pct}, sub=c), _range_predicate(c, lo, hi)
            ),
            pct,
        )
        for c, (lo, hi) in targets
        if c in present
    ]


def _uniqueness_failures(table: DataFrame, column: str) -> DataFrame:
    window = Window.partitionBy(column)
    return table.withColumn("_n", F.count(F.lit(1)).over(window)).filter(F.col("_n") > 1).drop("_n")


def _add(check: Any, rule: Rule, row_check: _RowCheck, pct: float) -> None:
    column = row_check.result.column or ""
    if rule.type == "completeness":
        check.is_complete(column, pct=pct)
    elif row_check.predicate is None:
        check.is_unique(column)
    else:
        check.satisfies(column, row_check.predicate, pct=pct)
    row_check.index = len(check.rules) - 1


def _failing(table: DataFrame, row_check: _RowCheck) -> DataFrame:
    column = row_check.result.column or ""
    rows = (
        _uniqueness_failures(table, column)
        if row_check.predicate is None
        else table.filter(~F.expr(row_check.predicate))
    )
    return rows.withColumn("dq_rule", F.lit(row_check.result.id))


def _evaluate_row_level(
    table: DataFrame, rules: Sequence[Rule], context: DQContext
) -> tuple[list[RuleResult], DataFrame | None]:
    check = Check(CheckLevel.ERROR, "curated_rows")
    planned: list[_RowCheck] = []
    for rule in rules:
        for row_check, pct in _row_checks(rule, table.columns, context):
            if row_check.index == -2:
                row_check.result.status = "skipped"
            else:
                _add(check, rule, row_check, pct)
            planned.append(row_check)
    rows = table.count()
    evaluated = list(check.rules)
    if rows and evaluated:
        check.validate(table)
    failing: DataFrame | None = None
    for row_check in (c for c in planned if c.result.status != "skipped"):
        result = row_check.result
        if rows == 0:
            result.status, result.observed, result.failing_rows = "pass", 1.0, 0
            continue
        evaluated_rule = evaluated[row_check.index]
        result.observed = float(evaluated_rule.pass_rate)
        result.failing_rows = int(evaluated_rule.violations)
        result.status = "pass" if str(evaluated_rule.status).upper() == "PASS" else "fail"
        if result.failing_rows:
            tagged = _failing(table, row_check)
            failing = tagged if failing is None else failing.unionByName(tagged)
    return [c.result for c in planned], failing


def class_counts(table: DataFrame) -> dict[str, int]:
    """Rows per label (labelled rows only)."""
    rows = table.filter(F.col("label").isNotNull()).groupBy("label").count().collect()
    return {str(r["label"]): int(r["count"]) for r in rows}


def _metrics(table: DataFrame, rules: Sequence[Rule], context: DQContext, rows: int) -> dict[str, float | None]:
    metrics: dict[str, float | None] = {}
    for rule in rules:
        p = rule.params
        if rule.type == "freshness":
            newest = table.agg(F.max(F.col(_q(p["column"])))).first()
            value = newest[0] if newest is not None else None
            if value is None:
                metrics[rule.id] = None
            else:
                newest_time = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
                metrics[rule.id] = (context.run_time - newest_time).total_seconds() / 86400
        elif rule.type == "label_distribution":
            counts = class_counts(table)
            labelled = sum(counts.values())
            metrics[f"{rule.id}:labelled_rows"] = float(labelled)
            metrics[f"{rule.id}:max_class_fraction"] = max(counts.values()) / labelled if labelled else None
        elif rule.type == "row_count_change" and context.previous_row_count:
            metrics[rule.id] = rows / context.previous_row_count - 1
        elif rule.type == "device_referential":
            orphans = context.orphan_device_patients.count() if context.orphan_device_patients is not None else 0
            metrics[rule.id] = orphans / context.device_patients if context.device_patients else 0.0
    return metrics


def _dataset_checks(rule: Rule, context: DQContext) -> list[tuple[RuleResult, str, str, float]]:
    """(result, metric, comparison, bound) for one dataset-level rule."""
    p = rule.params
    if rule.type == "freshness":
        return [(_result(rule, p["column"], {"max_age_days": p["max_age_days"]}), rule.id, "<=", p["max_age_days"])]
    if rule.type == "device_referential":
        return [(_result(rule, "patient_id", {"max_fraction": p["max_fraction"]}), rule.id, "<=", p["max_fraction"])]
    if rule.type == "label_distribution":
        out = []
        if "max_class_fraction" in p:
            result = _result(rule, "label", {"max_class_fraction": p["max_class_fraction"]}, sub="max_class_fraction")
            out.append((result, f"{rule.id}:max_class_fraction", "<=", p["max_class_fraction"]))
        if "min_labelled_rows" in p:
            result = _result(rule, "label", {"min_labelled_rows": p["min_labelled_rows"]}, sub="labelled_rows")
            out.append((result, f"{rule.id}:labelled_rows", ">=", p["min_labelled_rows"]))
        return out
    # row_count_change
    threshold = {"previous_row_count": context.previous_row_count, **p}
    out = []
    if "max_drop_fraction" in p:
        out.append((_result(rule, None, threshold, sub="drop"), rule.id, ">=", -float(p["max_drop_fraction"])))
    if "max_growth_fraction" in p:
        out.append((_result(rule, None, threshold, sub="growth"), rule.id, "<=", float(p["max_growth_fraction"])))
    return out


def _evaluate_dataset_level(table: DataFrame, rules: Sequence[Rule], context: DQContext, rows: int) -> list[RuleResult]:
    metrics = _metrics(table, rules, context, rows)
    check = Check(CheckLevel.ERROR, "curated_dataset")
    planned: list[tuple[RuleResult, str, int]] = []
    for rule in rules:
        for result, metric, comparison, bound in _dataset_checks(rule, context):
            if metric not in metrics:  # row_count_change without a previous version
                result.status = "skipped"
                planned.append((result, metric, -1))
                continue
            if comparison == "<=":
                check.is_less_or_equal_than(metric, float(bound))
            else:
                check.is_greater_or_equal_than(metric, float(bound))
            planned.append((result, metric, len(check.rules) - 1))
    if check.rules:
        frame = table.sparkSession.createDataFrame(
            [tuple(metrics.values())], ", ".join(f"{_q(k)} double" for k in metrics)
        )
        check.validate(frame)
    evaluated = list(check.rules)
    for result, metric, index in planned:
        if index < 0:
            continue
        result.observed = metrics[metric]
        passed = str(evaluated[index].status).upper() == "PASS" and result.observed is not None
        result.status = "pass" if passed else "fail"
        result.failing_rows = None
    return [r for r, _, _ in planned]


def evaluate(table: DataFrame, ruleset: Ruleset, context: DQContext) -> DQOutcome:
    """Evaluates every rule of the ruleset on the curated table; never raises on a failing rule."""
    table = table.cache()
    rows = table.count()
    row_rules = [r for r in ruleset.rules if r.type in ROW_LEVEL]
    dataset_rules = [r for r in ruleset.rules if r.type in DATASET_LEVEL]
    row_results, failing = _evaluate_row_level(table, row_rules, context)
    dataset_results = _evaluate_dataset_level(table, dataset_rules, context, rows)
    by_rule = {r.id: i for i, r in enumerate(ruleset.rules)}
    results = sorted([*row_results, *dataset_results], key=lambda r: by_rule[r.rule])
    failed_errors = [r for r in results if r.status == "fail" and r.level == "error"]
    report = DQReport(
        ruleset=ruleset.name,
        ruleset_version=ruleset.version,
        engine=f"cuallee {version('cuallee')} on Spark {table.sparkSession.version}",
        evaluated_at=context.run_time.isoformat(),
        rows=rows,
        status="fail" if failed_errors else "pass",
        rules=results,
    )
    orphan_failed = any(r.type == "device_referential" and r.status == "fail" for r in results)
    return DQOutcome(report, failing, context.orphan_device_patients if orphan_failed else None)
