"""The beat's scheduler: each tick of each schedule is published once, however many beats run.

Before publishing a tick, a beat claims ``beat:tick:<schedule>:<tick>`` in Redis (SET NX); the
message's task id is derived from the schedule and the tick, so a tick published twice anyway is
skipped by the completion markers. Why, and what happens to missed ticks: docs/design_decisions.md.
"""

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.beat import ScheduleEntry, Scheduler
from celery.schedules import crontab, schedule

from . import config, logs, redis_client
from .redis_client import client

log = logs.get(__name__)

#: Namespace of the ticks' task ids (uuid5): one schedule and tick give one id.
TICK_IDS = uuid.UUID("5b0c7a52-3f8e-4d55-9a57-2f4f6f0c9e1d")
CLAIMS = "beat:tick:"
#: The latest tick published of each schedule: where a beat that starts picks up.
LAST = "beat:last:"
PUBLISHED = b"published"
#: Seconds a claim holds its tick until the publish is done: a beat killed in between leaves
#: the tick to another beat after this long.
PENDING_SECONDS = 10
#: Seconds before a beat tries again a tick it could not publish or that another beat holds.
RETRY_SECONDS = 1.0
#: Message header carrying the tick (ISO 8601, UTC) to the task.
TICK_HEADER = "beat_tick"
#: A crontab's missed ticks searched at start, at most (a minutely schedule: 4 weeks).
LONGEST_SEARCH = 40_320
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Only if still the highest: two beats finishing ticks in either order keep the later one.
SET_IF_LATER = """
local old = redis.call('GET', KEYS[1])
if not old or tonumber(old) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
"""


def tick_id(name: str, tick: datetime) -> str:
    return str(uuid.uuid5(TICK_IDS, f"{name}/{tick.isoformat()}"))


def tick_of(request: Any) -> datetime | None:
    """The tick a task was published for (``self.request`` of a bound task), or None."""
    value = getattr(request, TICK_HEADER, None)
    return datetime.fromisoformat(value) if value else None


def next_tick(every: Any, after: datetime) -> datetime:
    """The first tick of the schedule ``every`` after ``after``; the same in every beat."""
    if isinstance(every, crontab):
        start, delta, _ = every.remaining_delta(after)
        following: datetime = (start + delta).astimezone(UTC)
        return following
    if type(every) is schedule:
        step: timedelta = every.run_every
        return after + step
    raise TypeError(f"{every!r}: the beat runs interval and crontab schedules only")


def latest_tick(every: Any, now: datetime, since: datetime | None) -> datetime:
    """The last tick at or before ``now``: interval ticks are counted from the epoch, crontab
    ticks searched forward from ``since`` (or ``now`` when the schedule never ran)."""
    if type(every) is schedule:
        step = every.run_every.total_seconds()
        return EPOCH + timedelta(seconds=math.floor((now - EPOCH).total_seconds() / step) * step)
    tick = since or now
    for _ in range(LONGEST_SEARCH):
        following = next_tick(every, tick)
        if following > now:
            break
        tick = following
    return tick


class ExactlyOnceScheduler(Scheduler):
    """Celery's in-memory scheduler, publishing each tick once across beats (``beat_scheduler``)."""

    def setup_schedule(self) -> None:
        super().setup_schedule()
        #: Schedule name -> the tick this beat last saw published (by itself or another beat).
        self.last: dict[str, datetime] = {}

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Publish every due tick; the seconds until the next one (Celery sleeps that long)."""
        now = datetime.now(UTC)
        waits = [self.run(entry, now) for entry in self.schedule.values()]
        return float(min([self.max_interval, *waits]))

    def run(self, entry: ScheduleEntry, now: datetime) -> float:
        """Publish ``entry``'s due ticks in order; the seconds until its next one."""
        try:
            if entry.name not in self.last:
                self.last[entry.name] = self.starting_point(entry, now)
            while (due := next_tick(entry.schedule, self.last[entry.name])) <= now:
                if not self.publish_once(entry, due):
                    return RETRY_SECONDS
                self.last[entry.name] = due
        except redis_client.ERRORS as error:
            log.warning("beat.redis_unavailable", schedule=entry.name, error=type(error).__name__)
            return RETRY_SECONDS
        return max((due - now).total_seconds(), 0.0)

    def starting_point(self, entry: ScheduleEntry, now: datetime) -> datetime:
        """The tick before the first this beat publishes: missed ticks become one run at start."""
        stored = client().get(LAST + entry.name)
        if stored is None:  # never ran: the first tick is the next one
            return latest_tick(entry.schedule, now, None)
        last = datetime.fromtimestamp(float(stored), UTC)
        latest = latest_tick(entry.schedule, now, last)
        if latest <= last:
            return last
        log.info("beat.missed_ticks", schedule=entry.name, last=last.isoformat())
        # The tick before the latest missed one, so that it is the one published.
        step = entry.schedule.run_every if type(entry.schedule) is schedule else None
        return latest - (step or timedelta(microseconds=1))

    def publish_once(self, entry: ScheduleEntry, due: datetime) -> bool:
        """Claim and publish the tick ``due``; True once it is published, here or elsewhere."""
        key = f"{CLAIMS}{entry.name}:{due.isoformat()}"
        redis = client()
        if not redis.set(key, b"pending", nx=True, ex=PENDING_SECONDS):
            # Another beat has it: done once it says so, else try again (its claim may lapse).
            return bool(redis.get(key) == PUBLISHED)
        try:
            self.publish(entry, due)
        except BaseException as error:  # SIGTERM's SystemExit too: leave the tick to another beat
            redis.delete(key)
            if not isinstance(error, Exception):
                raise
            log.error("beat.publish_failed", schedule=entry.name, error=type(error).__name__)
            return False
        ttl = int(config.current().completion_marker_ttl)
        redis.set(key, PUBLISHED, ex=ttl)
        redis.eval(SET_IF_LATER, 1, LAST + entry.name, repr(due.timestamp()))
        return True

    def publish(self, entry: ScheduleEntry, due: datetime) -> None:
        task_id = tick_id(entry.name, due)
        headers = {**entry.options.get("headers", {}), TICK_HEADER: due.isoformat()}
        options = {**entry.options, "task_id": task_id, "headers": headers}
        task = self.app.tasks.get(entry.task)
        if task is None:
            self.send_task(entry.task, entry.args, entry.kwargs, producer=self.producer, **options)
        else:
            task.apply_async(entry.args, entry.kwargs, producer=self.producer, **options)
        log.info("beat.published", schedule=entry.name, tick=due.isoformat(), task_id=task_id)
