"""What the retraining guard keeps: its state (who trains now, when training last started, how
many runs started today) and one record per training trigger, started or suppressed.

Kept in the training triggers table (template.yaml TrainingTriggersTable, adapter
dxops.adapters.training_triggers); the rules are dxops.domain.training_guard's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from dxops.schemas.models import LifecycleDocument, TrainingReason

TriggerOutcome = Literal["started", "already-started", "suppressed"]
SuppressionReason = Literal["training-running", "cooldown", "daily-cap", "not-enough-new-data"]


class GuardState(LifecycleDocument):
    """The guard's one item. revision grows by one with every change: a change is written only if
    the revision it read is still the table's (optimistic locking)."""

    revision: int = Field(default=0, ge=0)
    holder: str | None = Field(default=None, description="the run that holds the training slot")
    holder_since: dt.datetime | None = None
    last_started_at: dt.datetime | None = None
    day: dt.date | None = Field(default=None, description="the UTC day started_today counts")
    started_today: int = Field(default=0, ge=0)


class TriggerRecord(LifecycleDocument):
    """One training trigger and what became of it (every suppressed trigger is recorded)."""

    at: dt.datetime
    run_name: str
    reason: TrainingReason
    requested_by: str
    trigger_id: str
    outcome: TriggerOutcome
    suppressed_because: SuppressionReason | None = None
    detail: str = Field(default="", description="why, in words: the running run, the cooldown's end, the cap")
    evidence: dict[str, Any] | None = None


# --- Alarms that trigger retraining (EventBridge "CloudWatch Alarm State Change") -------------------

ALARM_EVENT_SOURCE = "aws.cloudwatch"
ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"


class AlarmState(BaseModel):
    value: str
    reason: str = ""
    timestamp: str


class AlarmStateChange(BaseModel):
    """The event's detail (the fields used; AWS sends more)."""

    alarm_name: str = Field(alias="alarmName", min_length=1, max_length=255)
    state: AlarmState
    previous_state: AlarmState | None = Field(default=None, alias="previousState")

    def evidence(self) -> dict[str, Any]:
        return {
            "name": self.alarm_name,
            "state": self.state.value,
            "reason": self.state.reason,
            "changed_at": self.state.timestamp,
            "previous_state": self.previous_state.value if self.previous_state else None,
        }
