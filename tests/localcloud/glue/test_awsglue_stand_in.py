"""The awsglue stand-in's getResolvedOptions behaves as Glue's (localcloud/glue_runtime/site/awsglue)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from localcloud.glue import SITE_DIR


def _load_utils() -> ModuleType:
    # Loaded from its file: the stand-in is only on the path of job runs, not of the test process.
    spec = importlib.util.spec_from_file_location("awsglue_utils_under_test", SITE_DIR / "awsglue" / "utils.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


utils = _load_utils()
ARGV = ["script.py", "--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_1", "--JOB_NAME", "etl", "--TempDir", "s3://t/"]


def test_requested_and_glue_options_are_resolved_and_unknown_ones_ignored() -> None:
    args = utils.getResolvedOptions([*ARGV, "--input", "s3://in/", "--unused", "x"], ["JOB_NAME", "input"])
    assert args["JOB_NAME"] == "etl"
    assert args["input"] == "s3://in/"
    assert (args["JOB_ID"], args["JOB_RUN_ID"], args["SECURITY_CONFIGURATION"]) == ("j_1", "jr_1", None)
    assert args["TempDir"] == args["RedshiftTempDir"] == "s3://t/"
    assert args["job_bookmark_option"] == "job-bookmark-disable"
    assert "unused" not in args


def test_dashes_in_option_names_become_underscores() -> None:
    args = utils.getResolvedOptions([*ARGV, "--input-path", "p"], ["input-path"])
    assert args["input_path"] == "p"


def test_missing_option_raises_glue_argument_error_naming_it() -> None:
    with pytest.raises(utils.GlueArgumentError, match=r"^the following arguments are required: --output, --mode$"):
        utils.getResolvedOptions(ARGV, ["JOB_NAME", "output", "mode"])


@pytest.mark.parametrize(("option", "message"), [("JOB_RUN_ID", "--JOB_RUN_ID"), ("job-bookmark-option", "job-")])
def test_reserved_options_cannot_be_requested(option: str, message: str) -> None:
    with pytest.raises(RuntimeError, match=f"Using reserved arguments {message}"):
        utils.getResolvedOptions(ARGV, [option])


def test_continuation_option_maps_onto_the_bookmark_option() -> None:
    args = utils.getResolvedOptions([*ARGV, "--continuation-option", "continuation-enabled"], [])
    assert args["job_bookmark_option"] == "job-bookmark-enable"
    assert "continuation_option" not in args


def test_paused_bookmark_needs_both_or_neither_range_option() -> None:
    paused = [*ARGV, "--job-bookmark-option", "job-bookmark-pause", "--job-bookmark-from", "1"]
    with pytest.raises(RuntimeError, match="Missing option or value for --job-bookmark-to"):
        utils.getResolvedOptions(paused, [])


def test_invalid_bookmark_value_is_an_argument_error() -> None:
    with pytest.raises(utils.GlueArgumentError, match="invalid choice"):
        utils.getResolvedOptions([*ARGV, "--job-bookmark-option", "sometimes"], [])
