"""The retraining guard: what keeps alarms, schedules and new datasets from starting a storm of
trainings.

Rules, for every trigger (dxops.domain.training_runs.start_training asks before it starts a run):
- never two trainings at once: one run holds the training slot while it trains and compares its
  candidate with the champion. The slot is taken with a conditional write, so of ten triggers
  arriving together one wins and nine find it taken. The run gives it up when its comparison is
  concluded (release_slot: a review may then take days), and a holder whose execution has ended
  (succeeded, failed, timed out, aborted) or never started within `start_grace` holds nothing, so
  a crashed run or trigger cannot block training for good.
- automatic triggers (a new dataset version, the schedule, an alarm) also wait out a cooldown after
  any training started, and stop at a daily cap of started runs (UTC days). A person's request
  (POST /trainings) passes both, not the slot.
- the schedule starts a run only when enough new labelled rows arrived since the champion's
  dataset (dxops.domain.training_runs decides that, before asking the guard).
Every trigger is recorded, started or suppressed, with the reason in words (TriggerRecord).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dxops.adapters.ports import Executions, TrainingTriggers
from dxops.domain.errors import DomainError
from dxops.schemas.models import TrainingReason
from dxops.schemas.training_triggers import GuardState, SuppressionReason

AUTOMATIC_REASONS: frozenset[TrainingReason] = frozenset({"dataset-ready", "schedule", "retraining-trigger"})
MAX_ATTEMPTS = 8  # optimistic-lock retries; more losers than this means a storm far beyond a burst


class GuardContention(DomainError):
    """The guard's state kept changing under this trigger (the caller's retry decides again)."""


@dataclass(frozen=True)
class GuardPolicy:
    cooldown: dt.timedelta
    daily_cap: int
    min_new_labelled_rows: int
    start_grace: dt.timedelta = dt.timedelta(minutes=5)  # a run named in the slot but not started yet


@dataclass(frozen=True)
class Admission:
    admitted: bool
    because: SuppressionReason | None = None
    detail: str = ""


def _holds_slot(state: GuardState, runs: Executions, policy: GuardPolicy, now: dt.datetime) -> bool:
    if state.holder is None:
        return False
    status = runs.status(state.holder)
    if status is None:  # the slot is taken just before StartExecution: give it time to start
        return state.holder_since is not None and now - state.holder_since < policy.start_grace
    return status == "RUNNING"


def _refusal(
    state: GuardState, reason: TrainingReason, runs: Executions, policy: GuardPolicy, now: dt.datetime
) -> Admission | None:
    if _holds_slot(state, runs, policy, now):
        return Admission(False, "training-running", f"run {state.holder} is training (since {state.holder_since})")
    if reason not in AUTOMATIC_REASONS:
        return None
    if state.last_started_at is not None and now - state.last_started_at < policy.cooldown:
        until = state.last_started_at + policy.cooldown
        return Admission(False, "cooldown", f"a training started at {state.last_started_at}; cooldown until {until}")
    if state.day == now.date() and state.started_today >= policy.daily_cap:
        return Admission(
            False, "daily-cap", f"{state.started_today} runs started on {state.day} (cap {policy.daily_cap})"
        )
    return None


def admit(
    name: str,
    reason: TrainingReason,
    *,
    triggers: TrainingTriggers,
    runs: Executions,
    policy: GuardPolicy,
    now: dt.datetime,
) -> Admission:
    """Take the training slot for run `name`, or say why not. The run already holding the slot is
    admitted again (a redelivered event, a retried start): starting it is idempotent."""
    for _ in range(MAX_ATTEMPTS):
        state = triggers.guard_state()
        if state.holder == name:
            return Admission(True)
        refusal = _refusal(state, reason, runs, policy, now)
        if refusal is not None:
            return refusal
        same_day = state.day == now.date()
        taken = state.model_copy(
            update={
                "revision": state.revision + 1,
                "holder": name,
                "holder_since": now,
                "last_started_at": now,
                "day": now.date(),
                "started_today": state.started_today + 1 if same_day else 1,
            }
        )
        if triggers.replace_guard_state(taken, expected_revision=state.revision):
            return Admission(True)
    raise GuardContention(f"the training guard changed {MAX_ATTEMPTS} times while run {name} asked for the slot")


def release_slot(name: str, triggers: TrainingTriggers) -> bool:
    """Run `name` gives up the training slot if it still holds it; True if it did. The cooldown and
    the day's count stay: they count trainings started."""
    for _ in range(MAX_ATTEMPTS):
        state = triggers.guard_state()
        if state.holder != name:
            return False
        freed = state.model_copy(update={"revision": state.revision + 1, "holder": None, "holder_since": None})
        if triggers.replace_guard_state(freed, expected_revision=state.revision):
            return True
    raise GuardContention(f"the training guard changed {MAX_ATTEMPTS} times while run {name} released the slot")
