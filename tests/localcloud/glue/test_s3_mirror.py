"""The S3 mirror's mapping between s3:// arguments and the local paths a job's script receives."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcloud.glue import S3Mirror


@pytest.fixture
def mirror(tmp_path: Path) -> S3Mirror:
    return S3Mirror(s3=None, root=tmp_path / "s3")  # mapping only: no S3 call


def test_prefix_maps_to_a_file_uri_keeping_the_trailing_slash(mirror: S3Mirror) -> None:
    assert mirror.local_uri("s3://data/curated/") == f"file://{mirror.root}/data/curated/"
    assert mirror.local_uri("s3://data/reports/summary.json") == f"file://{mirror.root}/data/reports/summary.json"
    assert mirror.prefixes == {("data", "curated/"), ("data", "reports/summary.json")}


def test_only_the_parent_folder_is_created_so_that_spark_error_if_exists_writes_work(mirror: S3Mirror) -> None:
    mirror.local_uri("s3://data/curated/v1/")
    assert (mirror.root / "data" / "curated").is_dir()
    assert not (mirror.root / "data" / "curated" / "v1").exists()


def test_keys_cannot_escape_their_bucket_folder(mirror: S3Mirror) -> None:
    with pytest.raises(ValueError, match="escapes"):
        mirror.local_uri("s3://data/../other/x")


def test_local_paths_in_error_messages_become_s3_uris_again(mirror: S3Mirror) -> None:
    message = (
        f"[PATH_NOT_FOUND] Path does not exist: file:{mirror.root}/data/raw/. "
        f"or file://{mirror.root}/data/a.csv or {mirror.root}/data/b.csv"
    )
    assert mirror.to_s3(message) == (
        "[PATH_NOT_FOUND] Path does not exist: s3://data/raw/. or s3://data/a.csv or s3://data/b.csv"
    )
