"""The catalog adapter against moto's Glue Data Catalog: the table follows the published version."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dxops.adapters.glue_catalog import GlueDatasetCatalog
from dxops.schemas.datasets import DatasetManifest

COLUMNS = [{"name": "record_id", "type": "string"}, {"name": "age_years", "type": "double"}]


def manifest(version: str, partitions: list[str], rows: int = 10) -> DatasetManifest:
    return DatasetManifest.model_validate(
        {
            "dataset_version": version,
            "created_at": "2026-11-27T00:00:00Z",
            "content_hash": "sha256:" + version[-1] * 64,
            "schema_version": "1.0",
            "table_uri": f"s3://curated/datasets/{version}/table/",
            "partition_keys": ["source"],
            "partitions": partitions,
            "rows": {"curated": rows},
            "class_counts": {},
            "label_status_counts": {},
            "columns": {},
            "sources_uri": "s3://curated/x/sources.json",
            "source_objects": 1,
            "dq_status": "pass",
            "dq_ruleset": "curated v1",
            "dq_report_uri": "s3://curated/x/dq_report.json",
            "run_summary_uri": "s3://curated/x/run_summary.json",
            "previous_version": None,
            "pipeline": {},
        }
    )


@pytest.fixture
def glue(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        client = boto3.client("glue")
        client.create_database(DatabaseInput={"Name": "dxops_test"})
        client.create_table(
            DatabaseName="dxops_test",
            TableInput={"Name": "curated_records", "PartitionKeys": [{"Name": "source", "Type": "string"}]},
        )
        yield client


def test_the_table_and_its_partitions_follow_the_published_version(glue: Any) -> None:
    catalog = GlueDatasetCatalog("dxops_test", "curated_records", client=glue)
    first, second = "v20261127T000000Z-0000000a", "v20261128T000000Z-0000000b"
    catalog.point_to(manifest(first, ["source=site-a", "source=site-b"]), "s3://curated/m1.json", COLUMNS)
    catalog.point_to(manifest(second, ["source=site-b", "source=site-c"]), "s3://curated/m2.json", COLUMNS)

    table = glue.get_table(DatabaseName="dxops_test", Name="curated_records")["Table"]
    assert table["StorageDescriptor"]["Location"] == f"s3://curated/datasets/{second}/table/"
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == ["record_id", "age_years"]
    assert (table["Parameters"]["dataset_version"], table["Parameters"]["manifest_uri"]) == (
        second,
        "s3://curated/m2.json",
    )
    partitions = glue.get_partitions(DatabaseName="dxops_test", TableName="curated_records")["Partitions"]
    assert sorted((p["Values"][0], p["StorageDescriptor"]["Location"]) for p in partitions) == [
        ("site-b", f"s3://curated/datasets/{second}/table/source=site-b/"),  # updated in place
        ("site-c", f"s3://curated/datasets/{second}/table/source=site-c/"),  # added
    ]  # site-a, which the new version does not have, is gone


def test_an_erasure_amends_the_figures_of_the_published_version_only(glue: Any) -> None:
    catalog = GlueDatasetCatalog("dxops_test", "curated_records", client=glue)
    published = manifest("v20261127T000000Z-0000000a", ["source=site-a"])
    catalog.point_to(published, "s3://curated/m1.json", COLUMNS)
    catalog.amend(manifest("v20261101T000000Z-00000009", ["source=site-a"], rows=3))  # an older version
    catalog.amend(published.model_copy(update={"rows": {"curated": 9}, "content_hash": "sha256:" + "f" * 64}))
    parameters = glue.get_table(DatabaseName="dxops_test", Name="curated_records")["Table"]["Parameters"]
    assert (parameters["row_count"], parameters["content_hash"]) == ("9", "sha256:" + "f" * 64)
    assert parameters["dataset_version"] == published.dataset_version
