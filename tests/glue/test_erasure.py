"""GDPR erasure in the curated datasets (dxops_etl.erasure) on local folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dxops_etl.erasure import erasable_datasets, erase_everywhere
from dxops_etl.fingerprint import content_hash

P, OTHER = "a" * 64, "b" * 64


def curated_root(spark: Any, root: Path) -> str:
    table = spark.createDataFrame(
        [
            ("r1", P, 40.0, "site-a"),
            ("r2", OTHER, 50.0, "site-a"),
            ("r3", P, 60.0, "site-b"),
            ("r4", OTHER, 70.0, "site-b"),
        ],
        "record_id string, patient_id string, age_years double, source string",
    )
    table.write.partitionBy("source").parquet(str(root / "datasets" / "v1" / "table"))
    table.filter("record_id = 'r2'").write.partitionBy("source").parquet(str(root / "datasets" / "v0" / "table"))
    table.filter("record_id = 'r3'").drop("source").write.parquet(str(root / "quarantine" / "v1" / "dq_failing_rows"))
    lines = root / "quarantine" / "v1" / "lines" / "kind=clinical"
    lines.mkdir(parents=True)
    quarantined = [
        {"reason": "malformed", "source_file": "s3://raw/x.ndjson", "line": json.dumps({"patient_pseudonym": P})},
        {"reason": "malformed", "source_file": "s3://raw/x.ndjson", "line": "{broken"},
    ]
    (lines / "part-0.json").write_text("".join(json.dumps(q) + "\n" for q in quarantined))
    return f"file://{root}/"


def test_the_patient_is_erased_from_every_dataset_and_only_the_patient(spark: Any, tmp_path: Path) -> None:
    root = curated_root(spark, tmp_path)
    assert {(d.version, d.kind, d.data_format) for d in erasable_datasets(spark, root)} == {
        ("v0", "table", "parquet"),
        ("v1", "table", "parquet"),
        ("v1", "quarantine", "parquet"),
        ("v1", "quarantine", "json"),
    }
    before = content_hash(spark.read.parquet(str(tmp_path / "datasets" / "v1" / "table")))

    changes = erase_everywhere(spark, root, P, "er-test")

    by_path = {c["path"].removeprefix(root): c for c in changes}
    assert set(by_path) == {"datasets/v1/table/", "quarantine/v1/dq_failing_rows/", "quarantine/v1/lines/"}
    table_change = by_path["datasets/v1/table/"]
    assert (table_change["rows_removed"], table_change["rows_after"]) == (2, 2)
    table = spark.read.parquet(str(tmp_path / "datasets" / "v1" / "table"))
    assert sorted(r.record_id for r in table.collect()) == ["r2", "r4"]
    assert sorted({r.source for r in table.collect()}) == ["site-a", "site-b"]  # partitions kept
    assert table_change["content_hash"] == content_hash(table) != before
    assert spark.read.parquet(str(tmp_path / "quarantine" / "v1" / "dq_failing_rows")).count() == 0
    kept_lines = spark.read.json(str(tmp_path / "quarantine" / "v1" / "lines")).collect()
    assert [r.line for r in kept_lines] == ["{broken"] and kept_lines[0].kind == "clinical"
    assert by_path["quarantine/v1/lines/"]["content_hash"] is None
    # Untouched: the version without the patient; no scratch folder left behind.
    assert spark.read.parquet(str(tmp_path / "datasets" / "v0" / "table")).count() == 1
    assert not [p for p in tmp_path.rglob("*__erasure_*")]


def test_nothing_changes_for_a_patient_who_is_not_there(spark: Any, tmp_path: Path) -> None:
    root = curated_root(spark, tmp_path)
    assert erase_everywhere(spark, root, "c" * 64, "er-none") == []
    assert spark.read.parquet(str(tmp_path / "datasets" / "v1" / "table")).count() == 4


def test_a_dataset_of_the_patient_alone_stays_readable_and_empty(spark: Any, tmp_path: Path) -> None:
    lines = tmp_path / "quarantine" / "v2" / "lines" / "kind=device"
    lines.mkdir(parents=True)
    (lines / "part-0.json").write_text(json.dumps({"reason": "malformed", "source_file": "x", "line": P}) + "\n")
    table = spark.createDataFrame([("r1", P, "site-a")], "record_id string, patient_id string, source string")
    table.write.partitionBy("source").parquet(str(tmp_path / "datasets" / "v2" / "table"))

    changes = erase_everywhere(spark, f"file://{tmp_path}/", P, "er-alone")

    assert sorted((c["kind"], c["rows_removed"], c["rows_after"]) for c in changes) == [
        ("quarantine", 1, 0),
        ("table", 1, 0),
    ]
    emptied = spark.read.parquet(str(tmp_path / "datasets" / "v2" / "table"))
    assert emptied.count() == 0 and set(emptied.columns) == {"record_id", "patient_id", "source"}


def test_a_rerun_finishes_from_the_complete_scratch_copy(spark: Any, tmp_path: Path) -> None:
    root = curated_root(spark, tmp_path)
    table = tmp_path / "datasets" / "v1" / "table"
    scratch = tmp_path / "datasets" / "v1" / "table__erasure_er-crash"
    kept = spark.read.parquet(str(table)).filter(f"patient_id != '{P}'")
    kept.write.partitionBy("source").parquet(str(scratch))
    (scratch / "_ERASURE.json").write_text(json.dumps({"rows_removed": 2, "partitions": ["source"]}))
    for part in table.rglob("*.parquet"):  # the crash: the dataset half overwritten
        part.unlink()
        break

    changes = erase_everywhere(spark, root, P, "er-crash")

    (change,) = [c for c in changes if c["kind"] == "table"]
    assert (change["rows_removed"], change["rows_after"]) == (2, 2)
    assert sorted(r.record_id for r in spark.read.parquet(str(table)).collect()) == ["r2", "r4"]
    assert not scratch.exists()
