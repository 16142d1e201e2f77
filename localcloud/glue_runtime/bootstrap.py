"""Starts a Glue script the way Glue does, and records why it failed for the job run's ErrorMessage.

Usage (by localcloud/glue.py, in the run's subprocess): python bootstrap.py SCRIPT --key value ...
The script runs as __main__ with sys.argv = [SCRIPT, --key, value, ...] and its own folder first on
sys.path. When it raises, the traceback goes to stderr (the run's error log) and only the
exception's type and the first line of its message go to $DXOPS_GLUE_ERROR_FILE: logs may hold
data values, the ErrorMessage should not.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback
from pathlib import Path
from types import TracebackType

MAX_MESSAGE = 1000


def _first_line(error: BaseException) -> str:
    # Py4JJavaError's own first line is "An error occurred while calling o42.save."; the Java
    # exception it wraps says what went wrong.
    java_exception = getattr(error, "java_exception", None)
    text = str(java_exception) if java_exception is not None else str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:MAX_MESSAGE] if lines else ""


def _from_script(tb: TracebackType | None, script: str) -> TracebackType | None:
    """The traceback from the script's first frame on: the bootstrap's and runpy's frames are noise."""
    frame = tb
    while frame is not None and frame.tb_frame.f_code.co_filename != script:
        frame = frame.tb_next
    return frame or tb


def _record(error_type: str, message: str) -> None:
    path = os.environ.get("DXOPS_GLUE_ERROR_FILE")
    if path:
        Path(path).write_text(json.dumps({"type": error_type, "message": message}))


def main() -> int:
    script = sys.argv[1]
    sys.argv = [script, *sys.argv[2:]]
    sys.path[0] = str(Path(script).resolve().parent)
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit_:
        if exit_.code in (None, 0):
            return 0
        _record("SystemExit", f"exit code {exit_.code}")
        return exit_.code if isinstance(exit_.code, int) else 1
    except BaseException as error:
        traceback.print_exception(error.with_traceback(_from_script(error.__traceback__, script)))
        _record(type(error).__name__, _first_line(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
