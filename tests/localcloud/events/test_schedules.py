"""Scheduled rules and EventBridge Scheduler schedules: on demand in tests, on a clock in the demo."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest

from localcloud import events
from localcloud.cloud import LocalCloud
from localcloud.events import ScheduleExpression
from tests.localcloud.events.support import messages, received_by_probe, started


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with started() as local_cloud:
        yield local_cloud


def test_a_scheduled_rule_fires_on_demand_with_the_scheduled_event(cloud: LocalCloud) -> None:
    rule = cloud.physical_id("EveryMinute")
    event = events.fire_scheduled_rule(rule)
    assert event is not None

    [message] = messages(cloud.physical_id("TickQueue"), expected=1)
    scheduled = message["Json"]
    assert (scheduled["source"], scheduled["detail-type"], scheduled["detail"]) == ("aws.events", "Scheduled Event", {})
    assert scheduled["resources"] == [f"arn:aws:events:eu-west-1:123456789012:rule/{rule}"]
    assert scheduled["id"] == event["id"]


def test_a_scheduled_lambda_target_gets_its_constant_input(cloud: LocalCloud) -> None:
    events.fire_scheduled_rule(cloud.physical_id("ProbeFunctionTick"))
    assert events.flush()
    assert received_by_probe(cloud) == [{"tick": True}]


def test_a_disabled_scheduled_rule_does_not_fire(cloud: LocalCloud) -> None:
    assert events.fire_scheduled_rule(cloud.physical_id("Disabled")) is None
    messages(cloud.physical_id("TickQueue"), expected=0)


def test_a_scheduler_schedule_fires_on_demand_with_its_input(cloud: LocalCloud) -> None:
    assert events.fire_schedule(cloud.physical_id("NightlySchedule")) is not None
    [message] = messages(cloud.physical_id("TickQueue"), expected=1)
    assert message["Json"] == {"from": "scheduler"}


def test_the_clock_fires_rate_rules_faster_with_a_speedup(cloud: LocalCloud) -> None:
    clock = events.start_scheduler(cloud, speedup=600, tick_seconds=0.02)  # rate(1 minute): every 0.1 s
    deadline = time.monotonic() + 5
    while (
        time.monotonic() < deadline
        and sum(1 for name, _ in clock.fired if name == cloud.physical_id("EveryMinute")) < 2
    ):
        time.sleep(0.05)
    events.shutdown()  # stops the clock; the fixture's shutdown is then a no-op

    ticks = messages(cloud.physical_id("TickQueue"))
    assert len(ticks) >= 2
    assert {m["Json"]["detail-type"] for m in ticks} == {"Scheduled Event"}  # the disabled rule never fires
    times = sorted(m["Json"]["time"] for m in ticks)
    assert times[0] != times[1]  # scheduled times on the simulated clock, a minute apart


def test_schedule_expressions() -> None:
    start = dt.datetime(2026, 11, 27, 11, 20, 30, tzinfo=dt.UTC)  # a Friday
    assert ScheduleExpression("rate(5 minutes)").next_after(start) == start + dt.timedelta(minutes=5)
    assert ScheduleExpression("rate(1 day)").next_after(start) == start + dt.timedelta(days=1)
    assert ScheduleExpression("cron(0/15 * * * ? *)").next_after(start) == start.replace(minute=30, second=0)
    # AWS counts days of the week from Sunday = 1: MON-FRI at 08:00 UTC -> Monday 30 November.
    assert ScheduleExpression("cron(0 8 ? * MON-FRI *)").next_after(start) == dt.datetime(
        2026, 11, 30, 8, 0, tzinfo=dt.UTC
    )
    assert ScheduleExpression("cron(0 8 ? * 2 *)").next_after(start) == dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
    # 02:30 in Amsterdam (UTC+1 in winter) is 01:30 UTC.
    nightly = ScheduleExpression("cron(30 2 * * ? *)", "Europe/Amsterdam")
    assert nightly.next_after(start) == dt.datetime(2026, 11, 28, 1, 30, tzinfo=dt.UTC)
    assert ScheduleExpression("cron(0 0 1 JAN ? 2025)").next_after(start) is None  # in the past
    once = ScheduleExpression("at(2026-12-01T09:00:00)")
    assert once.next_after(start) == dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    assert once.next_after(dt.datetime(2026, 12, 2, tzinfo=dt.UTC)) is None
    with pytest.raises(ValueError, match="not supported"):
        ScheduleExpression("cron(0 8 L * ? *)").next_after(start)
