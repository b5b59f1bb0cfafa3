"""Tasks that record every run in Redis, so tests can count runs, overlaps and interruptions.

Workers started by the tests import this module with ``--include tests.support.probe_tasks``.
Each run is a hash ``probe:run:<uuid>`` with the item it worked on, the pid, its start, the last
moment it was seen alive (refreshed every 20 ms) and its end, if it got there.
"""

import os
import signal
import time
import uuid
from typing import Any

from celery.exceptions import Reject
from sqlalchemy import text

from {{ cookiecutter.package_name }}.celery_app import app
from {{ cookiecutter.package_name }}.core import beat, db
from {{ cookiecutter.package_name }}.core.locks import no_parallel_processing
from {{ cookiecutter.package_name }}.core.redis_client import client

HEARTBEAT = 0.02


def start_run(item: str, **fields: Any) -> str:
    run = uuid.uuid4().hex
    now = time.time()
    pipe = client().pipeline()
    pipe.hset(
        f"probe:run:{run}",
        mapping={"item": item, "pid": os.getpid(), "start": now, "last": now, **fields},
    )
    pipe.rpush(f"probe:item:{item}", run)
    pipe.execute()
    return run


def alive(run: str) -> None:
    client().hset(f"probe:run:{run}", "last", time.time())


def end_run(run: str) -> None:
    now = time.time()
    client().hset(f"probe:run:{run}", mapping={"last": now, "end": now})


def work_for(run: str, seconds: float) -> None:
    """Busy for ``seconds``, reporting that the run is alive as it goes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(HEARTBEAT)
        alive(run)


@app.task(name="probe.echo")
def echo(value: Any) -> Any:
    """Returns its argument: proof that a worker runs tasks."""
    return value


@app.task(name="probe.work", bind=True)
def work(self: Any, item: str, seconds: float) -> None:
    """Simulated work of a given length."""
    run = start_run(item, hostname=self.request.hostname)
    work_for(run, seconds)
    end_run(run)


@app.task(name="probe.on_slow_queue", bind=True, queue="probe-slow")
def on_slow_queue(self: Any, item: str) -> None:
    """Names its queue, the tests' ``probe-slow``: wherever it is published from, it runs there."""
    end_run(start_run(item, hostname=self.request.hostname))


@app.task(name="probe.publishes_to_slow_queue", bind=True)
def publishes_to_slow_queue(self: Any, item: str) -> None:
    """Publishes ``probe.on_slow_queue`` the plain way, ``delay``."""
    end_run(start_run(item, hostname=self.request.hostname))
    on_slow_queue.delay(f"{item}-published")


@app.task(name="probe.reads_database")
def reads_database(item: str) -> None:
    """Queries the database, then records a run: a run that met an outage records nothing."""
    with db.session() as session:
        session.execute(text("SELECT 1"))
    end_run(start_run(item))


@app.task(name="probe.kills_its_process", bind=True)
def kills_its_process(self: Any, item: str) -> None:
    """SIGKILLs the process running it, every time, until ``probe:fixed:<item>`` is set."""
    run = start_run(item, hostname=self.request.hostname)
    if not client().exists(f"probe:fixed:{item}"):
        os.kill(os.getpid(), signal.SIGKILL)
    end_run(run)


@app.task(name="probe.rejects", bind=True)
def rejects(self: Any, item: str) -> None:
    """Rejects its message: the task decides it must never run again."""
    run = start_run(item)
    end_run(run)
    raise Reject(f"{item} cannot be processed", requeue=False)


@app.task(name="probe.always_fails", bind=True)
def always_fails(self: Any, item: str) -> None:
    """Fails every time with a permanent error, recording the attempt number first."""
    run = start_run(item, retries=self.request.retries)
    end_run(run)
    raise RuntimeError(f"attempt {self.request.retries} of {item} fails on purpose")


@app.task(name="probe.fails_transiently", bind=True)
def fails_transiently(self: Any, item: str) -> None:
    """Fails with a transient error until ``probe:fixed:<item>`` is set."""
    run = start_run(item, retries=self.request.retries)
    end_run(run)
    if not client().exists(f"probe:fixed:{item}"):
        raise ConnectionError(f"attempt {self.request.retries} of {item} cannot connect")


class SlowFinalizer:
    """Its ``__del__`` outlasts the task's soft time limit, so the limit fires inside it."""

    def __init__(self, run: str, seconds: float) -> None:
        self.run = run
        self.seconds = seconds

    def __del__(self) -> None:
        work_for(self.run, self.seconds)


class FailingFinalizer:
    """Its ``__del__`` raises an ordinary exception, which Python reports as unraisable."""

    def __del__(self) -> None:
        raise ValueError("an unrelated error inside a finalizer")


@app.task(name="probe.soft_limit_in_finalizer", bind=True)
def soft_limit_in_finalizer(self: Any, item: str, seconds: float) -> None:
    """The first delivery spends ``seconds`` in a finalizer; a redelivery finishes at once."""
    first = client().incr(f"probe:deliveries:{item}") == 1
    run = start_run(item)
    if first:
        finalizer = SlowFinalizer(run, seconds)
        del finalizer
        client().hset(f"probe:run:{run}", "ran_past_finalizer", 1)
        work_for(run, seconds)
    end_run(run)


@app.task(name="probe.unrelated_unraisable")
def unrelated_unraisable(item: str) -> None:
    """Triggers an unraisable ValueError, then completes."""
    run = start_run(item)
    finalizer = FailingFinalizer()
    del finalizer
    end_run(run)


@app.task(name="probe.locked_work", bind=True)
@no_parallel_processing
def locked_work(self: Any, item: str, seconds: float) -> None:
    """Simulated work under the lock of its task id."""
    run = start_run(item, hostname=self.request.hostname, retries=self.request.retries)
    work_for(run, seconds)
    end_run(run)


@app.task(name="probe.locked_by_item", bind=True)
@no_parallel_processing(key=lambda item, seconds: f"item:{item}")
def locked_by_item(self: Any, item: str, seconds: float) -> None:
    """Simulated work under a lock of the work item, whatever the task id."""
    run = start_run(item, hostname=self.request.hostname, retries=self.request.retries)
    work_for(run, seconds)
    end_run(run)


@app.task(name="probe.count_tick", bind=True, completion_marker=False)
def count_tick(self: Any, item: str) -> None:
    """Counts each delivery of a beat's tick, by tick and by task id (no completion marker, so a
    tick published twice counts twice)."""
    pipe = client().pipeline()
    for key, field in (("ticks", beat.TICK_HEADER), ("tick_ids", "id")):
        pipe.hincrby(f"probe:{key}:{item}", getattr(self.request, field), 1)
        pipe.expire(f"probe:{key}:{item}", 3600)
    pipe.execute()
