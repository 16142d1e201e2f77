"""Job for local runs: init / commit bracket the script as on AWS; job bookmarks are not kept.

On AWS, commit() saves the job bookmark (which input was processed) when bookmarks are enabled.
Locally every run processes its whole input, as with --job-bookmark-option job-bookmark-disable
(Glue's default): scripts must not rely on bookmarks for correctness.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .context import GlueContext

logger = logging.getLogger("awsglue.job")


class Job:
    def __init__(self, glue_context: GlueContext) -> None:
        self._glue_context = glue_context
        self._name: str | None = None
        self._args: dict[str, Any] = {}
        self._committed = False

    def init(self, job_name: str, args: Mapping[str, Any] | None = None) -> None:
        self._name = job_name
        self._args = dict(args or {})
        if self._args.get("job_bookmark_option") == "job-bookmark-enable":
            logger.warning("job bookmarks are not kept locally: this run processes its whole input")

    def isInitialized(self) -> bool:
        return self._name is not None

    def commit(self) -> None:
        """Ends the job (a no-op locally: there is no bookmark state to save)."""
        if self._name is None:
            raise RuntimeError("Job.commit() before Job.init()")
        self._committed = True
