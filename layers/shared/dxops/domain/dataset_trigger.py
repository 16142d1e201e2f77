"""From raw objects landing in S3 to data-processing runs: one run per trigger window, replays ignored.

Objects land in the raw zone (S3 -> EventBridge -> SQS -> this). Time is cut into tumbling windows
of `window_seconds` (default 15 min). Each new object is claimed, once and for all, by the run of
the window in which the trigger first sees it (the ledger keeps the claim; the claim's key is the
object's identity, bucket/key@version, so a duplicate delivery or an EventBridge replay finds the
earlier claim). The run of a window is a state machine execution named after the window
(`raw-20261127T130000Z`): StartExecution with that name and the same input starts it at most once,
however many batches of that window arrive, so a burst of thousands of objects starts one run.

The run waits until `start_after` = window end + `settle_seconds` (a margin) before its Glue job
reads the raw zone: an object is in S3 before its event is claimed, so every object claimed by the
window is there by then. A batch that arrives after its window has closed claims its objects for
the next window.

For every claim the batch touched, the run is (re)started: for a fresh claim it starts the run; for
a replay it is a no-op (the execution exists), unless an earlier batch crashed between claiming and
starting, in which case it repairs that. Claims expire after the ledger's retention (30 days by
default, below Step Functions' 90 days of execution-name uniqueness): a replay older than that
counts as new data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from dxops.adapters.ports import ObjectClaims, RunStarter
from dxops.schemas.datasets import ProcessingTrigger

RAW_PREFIXES = ("raw/clinical/", "raw/device/")


@dataclass(frozen=True)
class RawObjectEvent:
    message_id: str
    bucket: str
    key: str
    version: str  # S3 version id, or the event's sequencer when the bucket is not versioned

    @property
    def identity(self) -> str:
        return f"{self.bucket}/{self.key}@{self.version}"

    @property
    def is_raw_data(self) -> bool:
        return self.key.startswith(RAW_PREFIXES) and self.key.endswith(".ndjson")


@dataclass(frozen=True)
class ProcessingRun:
    name: str
    trigger: ProcessingTrigger


@dataclass(frozen=True)
class Claim:
    run: ProcessingRun  # the run the object belongs to
    fresh: bool  # claimed by this call (False: claimed before, so a duplicate or a replay)


@dataclass
class TriggerOutcome:
    claimed: int = 0  # new objects, claimed by this batch's window
    replayed: int = 0  # objects claimed before (duplicates, replays)
    ignored: int = 0  # not raw data (quarantine/, other prefixes)
    started: list[str] = field(default_factory=list)  # runs this batch started
    retry_message_ids: list[str] = field(default_factory=list)  # claimed concurrently elsewhere


def window_run(now: dt.datetime, window_seconds: int, settle_seconds: int) -> ProcessingRun:
    epoch = int(now.timestamp())
    start = dt.datetime.fromtimestamp(epoch - epoch % window_seconds, dt.UTC)
    end = start + dt.timedelta(seconds=window_seconds)
    trigger = ProcessingTrigger(
        trigger="raw-objects",
        window_start=start,
        window_end=end,
        start_after=end + dt.timedelta(seconds=settle_seconds),
    )
    return ProcessingRun(name=f"raw-{start:%Y%m%dT%H%M%SZ}", trigger=trigger)


def schedule_processing(
    events: Iterable[RawObjectEvent],
    *,
    now: dt.datetime,
    window_seconds: int,
    settle_seconds: int,
    claims: ObjectClaims,
    runs: RunStarter,
) -> TriggerOutcome:
    current = window_run(now, window_seconds, settle_seconds)
    outcome = TriggerOutcome()
    to_start: dict[str, ProcessingRun] = {}
    for event in events:
        if not event.is_raw_data:
            outcome.ignored += 1
            continue
        claim = claims.claim(event.identity, current)
        if claim is None:  # another invocation is claiming it right now: redeliver later
            outcome.retry_message_ids.append(event.message_id)
            continue
        if claim.fresh:
            outcome.claimed += 1
        else:
            outcome.replayed += 1
        to_start[claim.run.name] = claim.run
    for run in to_start.values():
        if runs.ensure_started(run):
            outcome.started.append(run.name)
    return outcome
