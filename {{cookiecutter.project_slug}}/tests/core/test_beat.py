"""The beat: two beats publish every tick of a 1 s schedule once; one SIGKILLed loses none.

Real beats (the deployed command, with the test's schedule from ``support/beat_app.py``) and a
real worker running ``probe.count_tick``, which counts every delivery by tick and by task id.
"""

import itertools
import signal
from datetime import UTC, datetime, timedelta

import pytest
import redis
from celery.schedules import crontab, schedule

from {{ cookiecutter.package_name }}.core import beat, rules

from ..support.workers import Fleet, Worker, wait_for

SCHEDULE = timedelta(seconds=1)


def published(beats: list[Worker]) -> list[str]:
    """The ticks the beats' logs say they published."""
    return [event["tick"] for one in beats for event in one.events("beat.published")]


def counted(redis_client: redis.Redis, item: str) -> tuple[dict[str, int], dict[str, int]]:
    """Deliveries the worker ran: by tick and by task id."""
    by_tick = redis_client.hgetall(f"probe:ticks:{item}")
    by_id = redis_client.hgetall(f"probe:tick_ids:{item}")
    return {k: int(v) for k, v in by_tick.items()}, {k: int(v) for k, v in by_id.items()}


def stop(beats: list[Worker]) -> None:
    """SIGTERM each beat, as ECS does: each exits 0 well inside its stop timeout."""
    for one in beats:
        stopped = one.stop_like_ecs(rules.BEAT_STOP_TIMEOUT)
        assert not stopped.sigkilled, one.output()
        assert stopped.exit_code == 0, one.output()
        assert stopped.seconds < rules.BEAT_STOP_TIMEOUT / 2, stopped


def assert_each_tick_once(redis_client: redis.Redis, item: str, beats: list[Worker]) -> list[str]:
    """Every tick published once, run once, under its derived id; consecutive, no gap."""
    sent = published(beats)
    wait_for(lambda: len(counted(redis_client, item)[0]) >= len(set(sent)), 30, "the ticks' runs")
    by_tick, by_id = counted(redis_client, item)
    assert sorted(sent) == sorted(set(sent)), "a tick was published twice"
    assert sorted(by_tick) == sorted(sent)
    assert set(by_tick.values()) == {1}, by_tick
    assert set(by_id.values()) == {1}, by_id
    name = f"probe-{item}"
    assert set(by_id) == {beat.tick_id(name, datetime.fromisoformat(tick)) for tick in sent}
    ticks = sorted(datetime.fromisoformat(tick) for tick in sent)
    gaps = [(a, b) for a, b in itertools.pairwise(ticks) if b - a != SCHEDULE]
    assert not gaps, gaps
    claims = redis_client.keys(f"{beat.CLAIMS}{name}:*")
    assert {redis_client.get(key) for key in claims} == {beat.PUBLISHED.decode()}
    return sorted(sent)


def cleanup(redis_client: redis.Redis, item: str) -> None:
    name = f"probe-{item}"
    keys = [*redis_client.keys(f"{beat.CLAIMS}{name}:*"), beat.LAST + name]
    redis_client.delete(*keys, f"probe:ticks:{item}", f"probe:tick_ids:{item}")


@pytest.mark.slow
def test_two_beats_publish_each_tick_once(
    fleet: Fleet, redis_client: redis.Redis, item: str
) -> None:
    fleet.start_ready()
    try:
        beats = [fleet.start_beat({"BEAT_TEST_ITEM": item}) for _ in range(2)]
        wait_for(lambda: len(published(beats)) >= 20, 40, "twenty ticks")
        stop(beats)
        sent = assert_each_tick_once(redis_client, item, beats)
        assert len(sent) >= 20, sent
        assert all(published([one]) for one in beats), "one beat never got a tick"
    finally:
        cleanup(redis_client, item)


@pytest.mark.slow
def test_a_killed_beat_leaves_no_tick_lost_or_doubled(
    fleet: Fleet, redis_client: redis.Redis, item: str
) -> None:
    fleet.start_ready()
    try:
        beats = [fleet.start_beat({"BEAT_TEST_ITEM": item}) for _ in range(2)]
        wait_for(lambda: len(published(beats)) >= 6, 30, "six ticks")
        # The beat that published the latest tick: it may be between a claim and its publish.
        killed = max(beats, key=lambda one: max(published([one]), default=""))
        killed.process.send_signal(signal.SIGKILL)
        killed.process.wait()
        killed_at = datetime.fromisoformat(max(published(beats)))
        survivor = next(one for one in beats if one is not killed)
        # Its ticks go on past the claim a killed beat may have left behind.
        after = killed_at + timedelta(seconds=beat.PENDING_SECONDS + 3)
        wait_for(
            lambda: max(published([survivor])) >= after.isoformat(),
            beat.PENDING_SECONDS + 20,
            "the survivor's ticks after the kill",
        )
        stop([survivor])
        assert_each_tick_once(redis_client, item, beats)
    finally:
        cleanup(redis_client, item)


@pytest.mark.slow
def test_a_starting_beat_publishes_the_ticks_it_missed_once(
    fleet: Fleet, redis_client: redis.Redis, item: str
) -> None:
    name = f"probe-{item}"
    last = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    redis_client.set(beat.LAST + name, repr(last.timestamp()))
    fleet.start_ready()
    try:
        beats = [fleet.start_beat({"BEAT_TEST_ITEM": item})]
        wait_for(lambda: len(published(beats)) >= 3, 30, "three ticks")
        stop(beats)
        first = datetime.fromisoformat(assert_each_tick_once(redis_client, item, beats)[0])
        (missed,) = beats[0].events("beat.missed_ticks", schedule=name, last=last.isoformat())
        started = datetime.fromisoformat(missed["timestamp"])
        # The 30 and more missed ticks became one: the latest before the beat started. The line
        # that says so is written a moment after the tick was chosen, which may be a new second.
        assert started - 2 * SCHEDULE < first <= started, (started, first)
    finally:
        cleanup(redis_client, item)


def test_ticks_are_the_same_in_every_beat() -> None:
    """Interval ticks sit on a grid from the epoch, crontab ticks on the crontab."""
    monday = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    weekly = crontab(minute="0", hour="8", day_of_week="mon")
    assert beat.next_tick(weekly, monday) == monday + timedelta(weeks=1)
    assert beat.next_tick(weekly, monday - timedelta(seconds=1)) == monday
    thursday = monday + timedelta(days=3, hours=5)
    assert beat.latest_tick(weekly, thursday, monday - timedelta(weeks=3)) == monday
    every_ten = schedule(timedelta(seconds=10))
    now = datetime(2026, 11, 25, 12, 0, 17, 250000, tzinfo=UTC)
    assert beat.latest_tick(every_ten, now, None) == now.replace(second=10, microsecond=0)
    assert beat.next_tick(every_ten, now.replace(second=10, microsecond=0)) == now.replace(
        second=20, microsecond=0
    )
