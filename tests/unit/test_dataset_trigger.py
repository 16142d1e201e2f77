"""Raw objects -> data-processing runs: one run per window, replays start nothing (fakes, no AWS)."""

from __future__ import annotations

import datetime as dt

from dxops.domain.dataset_trigger import RawObjectEvent, schedule_processing, window_run
from tests.fakes import InMemoryObjectClaims, RecordingRunStarter

T0 = dt.datetime(2026, 11, 27, 13, 7, 30, tzinfo=dt.UTC)
WINDOW, SETTLE = 900, 120


def raw_events(
    count: int, start: int = 0, prefix: str = "raw/clinical/source=site-a/ingest_date=2026-11-27"
) -> list[RawObjectEvent]:
    return [
        RawObjectEvent(message_id=f"m{i}", bucket="raw", key=f"{prefix}/b{i}.ndjson", version=f"v{i}")
        for i in range(start, start + count)
    ]


def schedule(events: list[RawObjectEvent], now: dt.datetime, claims: InMemoryObjectClaims, runs: RecordingRunStarter):  # type: ignore[no-untyped-def]
    return schedule_processing(events, now=now, window_seconds=WINDOW, settle_seconds=SETTLE, claims=claims, runs=runs)


def test_the_window_names_the_run_and_sets_when_it_starts() -> None:
    run = window_run(T0, WINDOW, SETTLE)
    assert run.name == "raw-20261127T130000Z"
    assert run.trigger.window_start == dt.datetime(2026, 11, 27, 13, 0, tzinfo=dt.UTC)
    assert run.trigger.window_end == dt.datetime(2026, 11, 27, 13, 15, tzinfo=dt.UTC)
    assert run.trigger.start_after == dt.datetime(2026, 11, 27, 13, 17, tzinfo=dt.UTC)


def test_a_burst_in_several_batches_of_one_window_starts_one_run() -> None:
    claims, runs = InMemoryObjectClaims(), RecordingRunStarter()
    outcomes = [
        schedule(raw_events(1000, start=i * 1000), T0 + dt.timedelta(seconds=i * 60), claims, runs) for i in range(5)
    ]
    assert sum(o.claimed for o in outcomes) == 5000
    assert [o.started for o in outcomes] == [["raw-20261127T130000Z"], [], [], [], []]
    assert list(runs.executions) == ["raw-20261127T130000Z"]


def test_the_next_window_starts_the_next_run() -> None:
    claims, runs = InMemoryObjectClaims(), RecordingRunStarter()
    schedule(raw_events(3), T0, claims, runs)
    later = schedule(raw_events(2, start=3), T0 + dt.timedelta(minutes=15), claims, runs)
    assert later.started == ["raw-20261127T131500Z"]
    assert len(runs.executions) == 2


def test_duplicates_and_replays_start_nothing_new() -> None:
    claims, runs = InMemoryObjectClaims(), RecordingRunStarter()
    schedule(raw_events(10), T0, claims, runs)
    duplicate = schedule(raw_events(10), T0 + dt.timedelta(seconds=5), claims, runs)  # same window
    replay = schedule(raw_events(10), T0 + dt.timedelta(days=3), claims, runs)  # an archive replay
    assert (duplicate.claimed, duplicate.replayed, duplicate.started) == (0, 10, [])
    assert (replay.claimed, replay.replayed, replay.started) == (0, 10, [])
    assert list(runs.executions) == ["raw-20261127T130000Z"]


def test_a_claim_whose_run_never_started_is_repaired_by_the_redelivery() -> None:
    claims, runs = InMemoryObjectClaims(), RecordingRunStarter()
    claims.claim(raw_events(1)[0].identity, window_run(T0, WINDOW, SETTLE))  # claimed, then the function died
    redelivered = schedule(raw_events(1), T0 + dt.timedelta(hours=1), claims, runs)
    assert redelivered.started == ["raw-20261127T130000Z"]  # the claimed window's run, not the current one


def test_objects_being_claimed_elsewhere_are_redelivered_and_others_ignored() -> None:
    events = raw_events(3)
    claims = InMemoryObjectClaims(busy={events[1].identity})
    other = [RawObjectEvent(message_id="q", bucket="raw", key="quarantine/clinical/x.ndjson", version="1")]
    outcome = schedule(events + other, T0, claims, RecordingRunStarter())
    assert (outcome.claimed, outcome.ignored, outcome.retry_message_ids) == (2, 1, ["m1"])


def test_object_identity_includes_the_version() -> None:
    first, rewritten = (RawObjectEvent("m", "raw", "raw/device/x.ndjson", v) for v in ("v1", "v2"))
    assert first.identity != rewritten.identity
    assert first.is_raw_data
    assert not RawObjectEvent("m", "raw", "raw/device/x.json", "v1").is_raw_data
