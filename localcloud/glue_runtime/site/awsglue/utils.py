"""getResolvedOptions with AWS Glue's semantics, so that job scripts parse their arguments as on AWS.

Glue starts a script as `script.py --JOB_ID j_.. --JOB_RUN_ID jr_.. --JOB_NAME name --key value ...`.
getResolvedOptions(sys.argv, ["JOB_NAME", "input"]) returns a dict with the requested options and
Glue's own ones (JOB_ID, JOB_RUN_ID, TempDir, job_bookmark_option, ...; None when absent). As on
AWS: every requested option is required (GlueArgumentError names the missing ones), a dash in a
name becomes an underscore in the key (argparse), unknown arguments are ignored, reserved names
raise RuntimeError, and TempDir / RedshiftTempDir stand in for each other.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

BOOKMARK_OPTION = "job-bookmark-option"
BOOKMARK_CHOICES = ("job-bookmark-enable", "job-bookmark-pause", "job-bookmark-disable")
CONTINUATION_OPTION = "continuation-option"
CONTINUATION_CHOICES = ("continuation-enabled", "continuation-readonly", "continuation-ignore")
BOOKMARK_RANGE_OPTIONS = ("job-bookmark-from", "job-bookmark-to")
# JOB_NAME is not reserved: scripts ask for it (and then it is required).
RESERVED_ID_OPTIONS = ("JOB_ID", "JOB_RUN_ID", "SECURITY_CONFIGURATION")
ENCRYPTION_OPTION = "encryption-type"
TEMP_DIR_OPTIONS = ("TempDir", "RedshiftTempDir")

_global_args: dict[str, Any] = {}


class GlueArgumentError(Exception):
    """A required job argument is missing or a value is not allowed (argparse's message)."""


class GlueArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so that the failure surfaces as the run's error."""

    def error(self, message: str) -> NoReturn:
        raise GlueArgumentError(message)


def _check_reserved(options: Sequence[str]) -> None:
    for name in (CONTINUATION_OPTION, BOOKMARK_OPTION):
        if name in options:
            raise RuntimeError(f"Using reserved arguments {name}")
    for name in (*BOOKMARK_RANGE_OPTIONS, *RESERVED_ID_OPTIONS, ENCRYPTION_OPTION):
        if name in options:
            raise RuntimeError(f"Using reserved arguments --{name}")


def _bookmark_option(parsed: dict[str, Any]) -> str:
    """--job-bookmark-option wins; the older --continuation-option maps onto it; default: disabled."""
    continuation = parsed.pop(CONTINUATION_OPTION.replace("-", "_"), None)
    chosen: str | None = parsed.get(BOOKMARK_OPTION.replace("-", "_"))
    if chosen is not None:
        return chosen
    if continuation is None:
        return "job-bookmark-disable"
    return BOOKMARK_CHOICES[CONTINUATION_CHOICES.index(continuation)]


def _check_bookmark_range(parsed: dict[str, Any]) -> None:
    absent = [name for name in BOOKMARK_RANGE_OPTIONS if parsed.get(name.replace("-", "_")) is None]
    if parsed["job_bookmark_option"] == "job-bookmark-pause":
        if len(absent) == 1:
            raise RuntimeError(f"Missing option or value for --{absent[0]}")
    elif not absent:
        raise RuntimeError("Invalid option(s) " + " ".join(f"--{name}" for name in BOOKMARK_RANGE_OPTIONS))


def getResolvedOptions(args: Sequence[str], options: Sequence[str]) -> dict[str, Any]:
    """The job's arguments as a dict: the requested options (required) plus Glue's own ones."""
    _check_reserved(options)
    parser = GlueArgumentParser(add_help=False)
    parser.add_argument(f"--{BOOKMARK_OPTION}", choices=BOOKMARK_CHOICES, required=False)
    parser.add_argument(f"--{CONTINUATION_OPTION}", choices=CONTINUATION_CHOICES, required=False)
    for name in (*BOOKMARK_RANGE_OPTIONS, *RESERVED_ID_OPTIONS):
        parser.add_argument(f"--{name}", required=False)
    parser.add_argument(f"--{ENCRYPTION_OPTION}", choices=("sse-s3",))
    for name in TEMP_DIR_OPTIONS:
        parser.add_argument(f"--{name}", required=False)
    for name in options:
        if name not in TEMP_DIR_OPTIONS:
            parser.add_argument(f"--{name}", required=True)
    parsed_namespace, _unknown = parser.parse_known_args(list(args[1:]))
    parsed = vars(parsed_namespace)
    if parsed["TempDir"] is not None:
        parsed["RedshiftTempDir"] = parsed["TempDir"]
    elif parsed["RedshiftTempDir"] is not None:
        parsed["TempDir"] = parsed["RedshiftTempDir"]
    parsed["job_bookmark_option"] = _bookmark_option(parsed)
    _check_bookmark_range(parsed)
    _global_args.update(parsed)
    return parsed
