"""What the SageMaker Processing jobs of ml/ share (dxops-compare, ml/compare.py; dxops-monitor,
ml/monitor.py): where the job's folders are, and how a failure is reported.

A processing job reads /opt/ml/processing/input/<name>/ and writes /opt/ml/processing/output/;
DXOPS_PROCESSING_ROOT replaces /opt/ml/processing (the failure message then goes to its sibling
output/message); on the local cloud, paths are under LOCALCLOUD_CONTAINER_ROOT. A failed job
writes its reason to /opt/ml/output/message, which SageMaker reports as the job's ExitMessage
(its first 1 KB).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

PROCESSING = "/opt/ml/processing"
MESSAGE_BYTES = 1024  # SageMaker keeps the first 1 KB of /opt/ml/output/message


def processing_root() -> Path | None:
    """/opt/ml/processing (or its override) when this runs as a SageMaker Processing job, else None."""
    override = os.environ.get("DXOPS_PROCESSING_ROOT")
    if override:
        return Path(override)
    root = Path(os.environ.get("LOCALCLOUD_CONTAINER_ROOT", "/")) / PROCESSING.lstrip("/")
    if (root / "input").is_dir() or (root.parent / "config" / "processingjobconfig.json").is_file():
        return root
    return None


def failure_message(error: BaseException, program: str, ours: tuple[type[BaseException], ...], task: str) -> str:
    """`ours` errors as they are (their messages never quote a record's value); anyone else's
    without its text (it may quote a value), with only its type and where it was raised."""
    if isinstance(error, ours):
        return f"{program}: {error}"
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{program}: the {task} failed ({type(error).__name__}{where}; details withheld)"


def report_failure(message: str, root: Path | None) -> None:
    """The message on stderr and, in a processing job, in /opt/ml/output/message (the job's
    ExitMessage: its first 1 KB, cut on a character boundary)."""
    print(message, file=sys.stderr, flush=True)
    if root is not None:
        failure = root.parent / "output" / "message"
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_bytes(message.encode()[:MESSAGE_BYTES].decode(errors="ignore").encode())
