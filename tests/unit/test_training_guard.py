"""The retraining guard (dxops.domain.training_guard) and the triggers that ask it
(dxops.domain.training_runs.start_training): one training at a time, a cooldown and a daily cap for
automatic triggers, the schedule only with enough new labelled rows, every trigger recorded.

The contract tests at the end run the guard's state and records against the DynamoDB adapter, on
the table template.yaml defines.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from dxops.adapters.ports import TrainingTriggers
from dxops.adapters.training_triggers import DynamoDbTrainingTriggers
from dxops.domain.training_guard import GuardContention, GuardPolicy, release_slot
from dxops.domain.training_runs import (
    TriggerContext,
    run_name,
    start_training,
    training_request_for_event,
)
from dxops.schemas.models import TrainingRequest
from dxops.schemas.training_triggers import GuardState, TriggerRecord
from localcloud.template import load_template
from tests.fakes import (
    InMemoryExecutions,
    InMemoryJsonDocuments,
    InMemoryModelVersions,
    InMemoryTrainingTriggers,
    StaticFiringAlarms,
)
from tests.unit.test_training_runs import (
    CURATED,
    OLDER_VERSION,
    VERSION,
    Account,
    dataset_ready,
    manifest,
    manifest_uri,
    manual,
)

NOW = dt.datetime(2026, 11, 27, 14, 0, tzinfo=dt.UTC)
POLICY = GuardPolicy(cooldown=dt.timedelta(hours=6), daily_cap=2, min_new_labelled_rows=100)
DRIFT_ALARM = "dxops-dev-drift"
SUMMARY_URI = "s3://dxops-dev-monitoring/monitoring/latest.json"


def alarm_event(timestamp: str = "2026-11-27T13:55:00.000+0000", name: str = DRIFT_ALARM) -> TrainingRequest:
    """The request an alarm's "CloudWatch Alarm State Change" event makes (as EventBridge delivers it)."""
    detail = {
        "alarmName": name,
        "state": {"value": "ALARM", "reason": "Threshold Crossed: 3 datapoints", "timestamp": timestamp},
        "previousState": {"value": "OK", "reason": "", "timestamp": "2026-11-27T10:00:00.000+0000"},
        "configuration": {"metrics": []},
    }
    return training_request_for_event(
        source="aws.cloudwatch",
        detail_type="CloudWatch Alarm State Change",
        detail=detail,
        event_id="0d9e8f7a-1b2c-3d4e-5f60-718293a4b5c6",
        time=NOW,
    )


def scheduled() -> TrainingRequest:
    return training_request_for_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, event_id="e-1", time=NOW
    )


class Guarded:
    """A training state machine, the triggers table and the guard's policy."""

    def __init__(self, policy: GuardPolicy = POLICY, context: TriggerContext | None = None) -> None:
        self.runs = InMemoryExecutions()
        self.triggers = InMemoryTrainingTriggers()
        self.policy = policy
        self.context = context

    def trigger(self, request: TrainingRequest, at: dt.datetime = NOW) -> TriggerRecord:
        return start_training(
            request, runs=self.runs, triggers=self.triggers, policy=self.policy, context=self.context, now=at
        )


# --- One training at a time -----------------------------------------------------------------------------


def test_a_burst_of_ten_alarms_starts_exactly_one_training_and_records_nine_suppressions() -> None:
    guarded = Guarded()
    outcomes = [guarded.trigger(alarm_event(f"2026-11-27T13:55:{second:02d}.000+0000")) for second in range(10)]

    assert [o.outcome for o in outcomes].count("started") == 1 and len(guarded.runs.starts) == 1
    suppressed = [o for o in outcomes if o.outcome == "suppressed"]
    assert len(suppressed) == 9 and {o.suppressed_because for o in suppressed} == {"training-running"}
    assert all(guarded.runs.starts[0] in o.detail for o in suppressed)  # says which run trains
    assert guarded.triggers.records == outcomes  # every trigger recorded, in order


def test_of_triggers_racing_for_the_slot_only_the_conditional_write_that_wins_starts() -> None:
    guarded = Guarded()

    def rival_takes_the_slot() -> None:  # another trigger writes between this one's read and write
        guarded.trigger(alarm_event("2026-11-27T13:55:01.000+0000", name="dxops-dev-api-errors"))

    guarded.triggers.interleave = rival_takes_the_slot
    mine = guarded.trigger(alarm_event())

    assert mine.outcome == "suppressed" and mine.suppressed_because == "training-running"
    assert guarded.runs.starts == [run_name(alarm_event("2026-11-27T13:55:01.000+0000", "dxops-dev-api-errors"))]


def test_the_slot_frees_itself_when_the_holding_execution_ends_however_it_ends() -> None:
    guarded = Guarded(GuardPolicy(dt.timedelta(0), daily_cap=10, min_new_labelled_rows=0))
    first = guarded.trigger(dataset_ready())
    guarded.runs.finish(first.run_name, "FAILED")  # nothing releases it explicitly

    second = guarded.trigger(alarm_event(), NOW + dt.timedelta(minutes=1))

    assert second.outcome == "started" and guarded.triggers.state.holder == second.run_name


def test_a_run_gives_up_the_slot_once_its_comparison_is_concluded_and_its_review_holds_nothing() -> None:
    guarded = Guarded(GuardPolicy(dt.timedelta(0), daily_cap=10, min_new_labelled_rows=0))
    first = guarded.trigger(dataset_ready())

    assert release_slot(first.run_name, guarded.triggers)
    assert not release_slot(first.run_name, guarded.triggers)  # it holds nothing any more
    assert guarded.runs.status(first.run_name) == "RUNNING"  # waiting for its reviewer
    later = guarded.trigger(alarm_event(), NOW + dt.timedelta(minutes=1))

    assert later.outcome == "started"
    assert not release_slot(first.run_name, guarded.triggers)  # never frees another run's slot
    assert guarded.triggers.state.holder == later.run_name and guarded.triggers.state.started_today == 2


def test_a_slot_taken_by_a_start_that_crashed_is_free_after_the_grace_period() -> None:
    guarded = Guarded(GuardPolicy(dt.timedelta(0), daily_cap=10, min_new_labelled_rows=0))
    guarded.runs.fail_next = RuntimeError("Lambda timed out before StartExecution")
    with pytest.raises(RuntimeError):
        guarded.trigger(dataset_ready())

    soon = guarded.trigger(alarm_event(), NOW + dt.timedelta(minutes=1))
    later = guarded.trigger(alarm_event(), NOW + POLICY.start_grace + dt.timedelta(seconds=1))

    assert soon.suppressed_because == "training-running"  # it may still be starting
    assert later.outcome == "started"


def test_a_retried_trigger_starts_its_own_run_that_a_crash_left_unstarted() -> None:
    guarded = Guarded()
    guarded.runs.fail_next = RuntimeError("throttled")
    with pytest.raises(RuntimeError):
        guarded.trigger(dataset_ready())

    retried = guarded.trigger(dataset_ready())  # Lambda's retry of the same event

    assert retried.outcome == "started" and guarded.runs.starts == [f"dataset-{VERSION}"]


def test_a_person_waits_for_a_run_in_progress_but_not_for_the_cooldown_or_the_cap() -> None:
    guarded = Guarded(GuardPolicy(dt.timedelta(hours=6), daily_cap=1, min_new_labelled_rows=0))
    first = guarded.trigger(dataset_ready())

    refused = guarded.trigger(manual("retrain-now"), NOW + dt.timedelta(minutes=5))
    guarded.runs.finish(first.run_name)
    accepted = guarded.trigger(manual("retrain-now"), NOW + dt.timedelta(minutes=30))

    assert refused.suppressed_because == "training-running"
    assert accepted.outcome == "started"  # within the cooldown and over the cap: a person decided
    assert guarded.triggers.state.started_today == 2


# --- Cooldown and daily cap --------------------------------------------------------------------------------


def test_automatic_triggers_wait_out_the_cooldown_after_any_training_started() -> None:
    guarded = Guarded()
    first = guarded.trigger(alarm_event())
    guarded.runs.finish(first.run_name)

    early = guarded.trigger(alarm_event("2026-11-27T15:00:00.000+0000"), NOW + dt.timedelta(hours=1))
    after = guarded.trigger(alarm_event("2026-11-27T20:01:00.000+0000"), NOW + dt.timedelta(hours=6, minutes=1))

    assert early.suppressed_because == "cooldown" and "cooldown until 2026-11-27 20:00:00+00:00" in early.detail
    assert after.outcome == "started"


def test_the_daily_cap_counts_runs_started_in_a_utc_day() -> None:
    guarded = Guarded(GuardPolicy(dt.timedelta(0), daily_cap=2, min_new_labelled_rows=0))
    outcomes = []
    for hour in (1, 2, 3):
        at = NOW.replace(hour=hour)
        outcome = guarded.trigger(alarm_event(f"2026-11-27T{hour:02d}:00:00.000+0000"), at)
        guarded.runs.finish(outcome.run_name)
        outcomes.append(outcome)
    next_day = guarded.trigger(alarm_event("2026-11-28T00:05:00.000+0000"), NOW.replace(day=28, hour=0, minute=5))

    assert [o.outcome for o in outcomes] == ["started", "started", "suppressed"]
    assert outcomes[2].suppressed_because == "daily-cap" and "cap 2" in outcomes[2].detail
    assert next_day.outcome == "started" and guarded.triggers.state.started_today == 1


def test_a_guard_that_keeps_changing_gives_up_and_lets_the_caller_retry() -> None:
    class Churning(InMemoryTrainingTriggers):
        def replace_guard_state(self, state: GuardState, *, expected_revision: int) -> bool:
            self.state = self.state.model_copy(update={"revision": self.state.revision + 1})
            return False

    guarded = Guarded()
    guarded.triggers = Churning()
    with pytest.raises(GuardContention):
        guarded.trigger(alarm_event())
    assert guarded.runs.starts == [] and guarded.triggers.records == []


# --- The schedule: only with enough new labelled rows -----------------------------------------------------


def schedule_context(champion_rows: int | None, published_rows: int) -> TriggerContext:
    account = Account()
    documents = account.documents
    documents.write(
        manifest_uri(VERSION),
        manifest(VERSION, {"ICD10:J45": published_rows // 2, "ORPHA:558": published_rows - published_rows // 2}),
    )
    if champion_rows is not None:
        documents.write(
            manifest_uri(OLDER_VERSION),
            manifest(OLDER_VERSION, {"ICD10:J45": champion_rows // 2, "ORPHA:558": champion_rows - champion_rows // 2}),
        )
        account.earlier_versions(1)  # the champion, trained on OLDER_VERSION
    return TriggerContext(curated_bucket=CURATED, documents=documents, versions=account.versions)


@pytest.mark.parametrize(
    ("champion_rows", "published_rows", "outcome"),
    [(None, 40, "started"), (300, 399, "suppressed"), (300, 400, "started")],
)
def test_the_schedule_trains_only_when_enough_new_labelled_rows_arrived(
    champion_rows: int | None, published_rows: int, outcome: str
) -> None:
    guarded = Guarded(context=schedule_context(champion_rows, published_rows))
    trigger = guarded.trigger(scheduled())
    assert trigger.outcome == outcome
    if outcome == "suppressed":
        assert trigger.suppressed_because == "not-enough-new-data"
        assert trigger.detail.startswith("99 new labelled rows (need 100)")
        assert guarded.triggers.state == GuardState()  # the slot was never asked for


def test_a_champion_trained_on_the_published_version_leaves_nothing_new() -> None:
    context = schedule_context(300, 300)
    context.documents.write(manifest_uri(OLDER_VERSION), manifest(OLDER_VERSION, {"ICD10:J45": 1, "ORPHA:558": 1}))
    champion = context.versions.get(1)
    assert champion is not None
    context.versions.put_version(champion.model_copy(update={"dataset_version": VERSION}))

    trigger = Guarded(context=context).trigger(scheduled())

    assert trigger.suppressed_because == "not-enough-new-data" and "trained on the published version" in trigger.detail


# --- Alarms: the trigger carries its evidence ---------------------------------------------------------------


def test_an_alarm_becomes_a_retraining_trigger_with_the_alarm_and_the_monitors_latest_results() -> None:
    documents = InMemoryJsonDocuments()
    summary = {"report_uri": "s3://dxops-dev-monitoring/monitoring/reports/x/monitoring.md", "drift": {"share": 0.4}}
    documents.write(SUMMARY_URI, summary)
    context = TriggerContext(CURATED, documents, InMemoryModelVersions(), monitoring_summary_uri=SUMMARY_URI)
    guarded = Guarded(context=context)

    trigger = guarded.trigger(alarm_event())

    assert trigger.reason == "retraining-trigger" and trigger.requested_by == f"alarm:{DRIFT_ALARM}"
    assert trigger.run_name.startswith("retrain-dxops-dev-drift-2026-11-27T13-55-00-000-0000")
    started = TrainingRequest.model_validate(guarded.runs.input(trigger.run_name))
    assert started.evidence == {
        "alarm": {
            "name": DRIFT_ALARM,
            "state": "ALARM",
            "reason": "Threshold Crossed: 3 datapoints",
            "changed_at": "2026-11-27T13:55:00.000+0000",
            "previous_state": "OK",
        },
        "monitoring": summary,
    }
    assert trigger.evidence == started.evidence  # the suppressed ones keep it too


def test_redeliveries_of_one_alarm_episode_name_one_run() -> None:
    guarded = Guarded()
    first, again = guarded.trigger(alarm_event()), guarded.trigger(alarm_event())
    assert (first.outcome, again.outcome) == ("started", "already-started")
    assert guarded.runs.starts == [first.run_name]


# --- Contract: the fake behaves as the DynamoDB adapter --------------------------------------------------


@pytest.fixture(params=["in-memory", "dynamodb"])
def table(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrainingTriggers]:
    if request.param == "in-memory":
        yield InMemoryTrainingTriggers()
        return
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    props = load_template().resources["TrainingTriggersTable"]["Properties"]
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        client.create_table(
            TableName="dxops-dev-training-triggers",
            KeySchema=props["KeySchema"],
            AttributeDefinitions=props["AttributeDefinitions"],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoDbTrainingTriggers("dxops-dev-training-triggers", dt.timedelta(days=400), client)


def test_contract_a_state_is_written_only_over_the_revision_it_was_read_at(table: TrainingTriggers) -> None:
    assert table.guard_state() == GuardState()
    first = GuardState(
        revision=1, holder="dataset-v1", holder_since=NOW, last_started_at=NOW, day=NOW.date(), started_today=1
    )
    assert table.replace_guard_state(first, expected_revision=0)
    assert not table.replace_guard_state(first.model_copy(update={"holder": "other"}), expected_revision=0)
    second = first.model_copy(update={"revision": 2, "holder": "retrain-x"})
    assert table.replace_guard_state(second, expected_revision=1)
    assert not table.replace_guard_state(second, expected_revision=1)
    assert table.guard_state() == second


def test_contract_concurrent_triggers_start_one_training(table: TrainingTriggers) -> None:
    runs = InMemoryExecutions()

    def trigger(second: int) -> TriggerRecord:
        request = alarm_event(f"2026-11-27T13:55:{second:02d}.000+0000")
        return start_training(request, runs=runs, triggers=table, policy=POLICY, now=NOW)

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(trigger, range(10)))

    assert sorted(o.outcome for o in outcomes) == ["started"] + ["suppressed"] * 9
    assert len(runs.starts) == 1


def test_contract_triggers_are_listed_oldest_first_since_a_time(table: TrainingTriggers) -> None:
    records = [
        TriggerRecord(
            at=NOW - dt.timedelta(hours=hours),
            run_name=f"retrain-{hours}",
            reason="retraining-trigger",
            requested_by=f"alarm:{DRIFT_ALARM}",
            trigger_id=f"{DRIFT_ALARM}@{hours}",
            outcome="suppressed" if hours else "started",
            suppressed_because="cooldown" if hours else None,
        )
        for hours in (30, 20, 1, 0)
    ]
    for record in records:
        table.record(record)
    since = NOW - dt.timedelta(hours=25)
    assert [r.run_name for r in table.recent(since)] == ["retrain-20", "retrain-1", "retrain-0"]


def test_a_redelivered_cause_of_a_finished_run_never_takes_the_slot_again() -> None:
    guarded = Guarded(GuardPolicy(dt.timedelta(0), daily_cap=10, min_new_labelled_rows=0))
    first = guarded.trigger(dataset_ready())
    guarded.runs.finish(first.run_name)
    other = guarded.trigger(alarm_event(), NOW + dt.timedelta(minutes=5))
    guarded.runs.finish(other.run_name)

    again = guarded.trigger(dataset_ready(trigger_id="redelivered"), NOW + dt.timedelta(days=2))

    assert again.outcome == "already-started" and guarded.triggers.state.holder == other.run_name
    assert (guarded.triggers.state.revision, guarded.triggers.state.started_today) == (2, 2)  # untouched


def test_a_champion_whose_dataset_cannot_be_read_lets_the_schedule_train() -> None:
    context = schedule_context(300, 310)
    context.documents.documents.pop(manifest_uri(OLDER_VERSION))  # the champion's manifest is gone
    trigger = Guarded(context=context).trigger(scheduled())
    assert trigger.outcome == "started"


def firing(name: str, changed_at: dt.datetime) -> dict[str, object]:
    return {
        "name": name,
        "state": "ALARM",
        "reason": "Threshold Crossed",
        "changed_at": changed_at.isoformat(),
        "previous_state": None,
    }


def test_the_schedule_takes_up_an_alarm_the_guard_suppressed_while_it_still_fires() -> None:
    """The drift alarm fired during the cooldown (suppressed; an alarm changes state once): the next
    schedule firing retrains for it, with the alarm as evidence, without asking for new rows."""
    context = schedule_context(300, 300)  # no new labelled rows
    guarded = Guarded(GuardPolicy(dt.timedelta(hours=6), daily_cap=3, min_new_labelled_rows=100), context)
    earlier = guarded.trigger(dataset_ready(), NOW - dt.timedelta(hours=2))
    guarded.runs.finish(earlier.run_name)
    suppressed = guarded.trigger(alarm_event("2026-11-27T13:55:00.000+0000"), NOW - dt.timedelta(minutes=5))
    assert suppressed.suppressed_because == "cooldown"
    guarded.context = TriggerContext(
        CURATED,
        context.documents,
        context.versions,
        alarms=StaticFiringAlarms(firing(DRIFT_ALARM, NOW - dt.timedelta(minutes=5))),
    )

    taken_up = guarded.trigger(scheduled(), NOW + dt.timedelta(hours=5))

    assert (taken_up.outcome, taken_up.reason) == ("started", "retraining-trigger")
    assert taken_up.run_name == "retrain-20261127T140000Z"
    assert taken_up.evidence is not None and taken_up.evidence["alarm"]["name"] == DRIFT_ALARM
    assert "still in ALARM" in taken_up.requested_by


def test_an_alarm_a_training_already_answered_does_not_retrain_every_day() -> None:
    context = schedule_context(300, 300)
    context = TriggerContext(
        CURATED,
        context.documents,
        context.versions,
        alarms=StaticFiringAlarms(firing(DRIFT_ALARM, NOW - dt.timedelta(hours=3))),
    )
    guarded = Guarded(GuardPolicy(dt.timedelta(0), daily_cap=3, min_new_labelled_rows=100), context)
    answered = guarded.trigger(alarm_event(), NOW - dt.timedelta(hours=2))  # started after the alarm fired
    guarded.runs.finish(answered.run_name)

    next_day = guarded.trigger(scheduled(), NOW + dt.timedelta(days=1))

    assert (next_day.reason, next_day.suppressed_because) == ("schedule", "not-enough-new-data")


def test_only_alarms_in_alarm_are_firing(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import mock_aws

    from dxops.adapters.cloudwatch_alarms import CloudWatchFiringAlarms

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        client = boto3.client("cloudwatch", region_name="eu-west-1")
        for name in (DRIFT_ALARM, "dxops-dev-quality-drop", "dxops-dev-api-errors-slo"):
            client.put_metric_alarm(
                AlarmName=name,
                Namespace="dxops/dev",
                MetricName="M",
                Statistic="Maximum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
            )
        client.set_alarm_state(AlarmName=DRIFT_ALARM, StateValue="ALARM", StateReason="drifted")
        client.set_alarm_state(AlarmName="dxops-dev-api-errors-slo", StateValue="ALARM", StateReason="errors")

        firing = CloudWatchFiringAlarms([DRIFT_ALARM, "dxops-dev-quality-drop"], client).firing()

    assert [(a["name"], a["state"], a["reason"]) for a in firing] == [(DRIFT_ALARM, "ALARM", "drifted")]
    assert dt.datetime.fromisoformat(str(firing[0]["changed_at"])).tzinfo is not None
