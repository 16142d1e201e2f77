"""The Glue Data Catalog table of the curated dataset (created by template.yaml): a view of the
published version (datasets/published.json is the source of truth), so that Athena, Spark and the
training code find it by name."""

from __future__ import annotations

from typing import Any

import boto3

from dxops.schemas.datasets import DatasetManifest

_PARQUET = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
}
_TABLE_INPUT_KEYS = ("Name", "Description", "TableType", "StorageDescriptor", "PartitionKeys")
_BATCH_LIMIT = 25  # BatchDeletePartition's limit; BatchCreatePartition allows 100


class GlueDatasetCatalog:
    def __init__(self, database: str, table: str, client: Any | None = None) -> None:
        self.database = database
        self.table = table
        self._client = client or boto3.client("glue")

    def point_to(self, manifest: DatasetManifest, manifest_uri: str, columns: list[dict[str, str]]) -> None:
        partition_keys = [{"Name": key, "Type": "string"} for key in manifest.partition_keys]
        self._client.update_table(
            DatabaseName=self.database,
            TableInput={
                "Name": self.table,
                "TableType": "EXTERNAL_TABLE",
                "Description": "Curated dxops training table; the version is in Parameters.dataset_version",
                "PartitionKeys": partition_keys,
                "StorageDescriptor": {
                    **_PARQUET,
                    "Columns": [{"Name": c["name"], "Type": c["type"]} for c in columns],
                    "Location": manifest.table_uri,
                },
                "Parameters": {
                    "classification": "parquet",
                    "dataset_version": manifest.dataset_version,
                    "content_hash": manifest.content_hash,
                    "row_count": str(manifest.rows["curated"]),
                    "manifest_uri": manifest_uri,
                    "schema_version": manifest.schema_version,
                },
            },
        )
        self._replace_partitions(manifest, columns)

    def amend(self, manifest: DatasetManifest) -> None:
        table = self._client.get_table(DatabaseName=self.database, Name=self.table)["Table"]
        parameters = dict(table.get("Parameters", {}))
        if parameters.get("dataset_version") != manifest.dataset_version:
            return
        parameters.update(content_hash=manifest.content_hash, row_count=str(manifest.rows["curated"]))
        table_input = {key: table[key] for key in _TABLE_INPUT_KEYS if key in table}
        self._client.update_table(DatabaseName=self.database, TableInput={**table_input, "Parameters": parameters})

    def _replace_partitions(self, manifest: DatasetManifest, columns: list[dict[str, str]]) -> None:
        """Point each partition at the new version: update the ones that stay, add the new ones, then
        drop the ones the version no longer has, so that readers never see the table without them."""
        existing = {
            tuple(p["Values"])
            for page in self._client.get_paginator("get_partitions").paginate(
                DatabaseName=self.database, TableName=self.table
            )
            for p in page["Partitions"]
        }
        wanted = {
            (folder.split("=", 1)[1],): {
                "Values": [folder.split("=", 1)[1]],
                "StorageDescriptor": {
                    **_PARQUET,
                    "Columns": [{"Name": c["name"], "Type": c["type"]} for c in columns],
                    "Location": f"{manifest.table_uri}{folder}/",
                },
            }
            for folder in manifest.partitions
        }
        updates = [{"PartitionValueList": list(v), "PartitionInput": p} for v, p in wanted.items() if v in existing]
        self._in_batches(self._client.batch_update_partition, "Entries", updates)
        created = [p for v, p in wanted.items() if v not in existing]
        self._in_batches(self._client.batch_create_partition, "PartitionInputList", created)
        stale = [{"Values": list(v)} for v in sorted(existing - set(wanted))]
        self._in_batches(self._client.batch_delete_partition, "PartitionsToDelete", stale)

    def _in_batches(self, call: Any, argument: str, entries: list[dict[str, Any]]) -> None:
        for start in range(0, len(entries), _BATCH_LIMIT):
            chunk = {argument: entries[start : start + _BATCH_LIMIT]}
            self._check(call(DatabaseName=self.database, TableName=self.table, **chunk))

    @staticmethod
    def _check(response: Any) -> None:
        """Batch partition calls answer 200 and list what failed."""
        errors = response.get("Errors") or []
        if errors:
            raise RuntimeError(
                f"{len(errors)} catalog partition changes failed: {errors[0].get('ErrorDetail', {}).get('ErrorCode')}"
            )
