"""Work over many rows, split into steps that each end well inside the ECS stop window.

A run (a fan-out or a batching chain) is named by its first task's id. It keeps its progress in
Redis, and every task it publishes has an id derived from the run and the position, so a
redelivered step publishes the same ids and the completion markers drop the copies: a redelivered
fan-out adds no children, a redelivered batch does not fork the chain. A step task takes its own
arguments, then ``run_id=None, after_id=0``; ``tasks/newsletter.py`` shows both kinds of run.
"""

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Task
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from . import config, db, logs
from .locks import task_lock
from .publishing import BATCH_SIZE as PUBLISH_BATCH_SIZE
from .publishing import Publisher
from .redis_client import client

log = logs.get(__name__)

#: Namespace of the derived task ids (uuid5): the same run and position give the same id.
TASK_IDS = uuid.UUID("c38ffd29-1ce4-4fc9-b1b1-0a2064e262dc")

Row = TypeVar("Row")


def derived_id(run_id: str, position: str) -> str:
    return str(uuid.uuid5(TASK_IDS, f"{run_id}/{position}"))


class Progress:
    """Where a run stands, in Redis, so a redelivered step neither repeats nor forks it.

    ``head``: the id after which the run's current step starts (a step that starts before it
    already handed over). ``cursor``: the last id whose work is done within the current step.
    """

    def __init__(self, run_id: str) -> None:
        self.key = f"progress:{run_id}"

    def read(self) -> tuple[int, int]:
        head, cursor = client().hmget(self.key, ["head", "cursor"])
        return int(head or 0), int(cursor or 0)

    def _set(self, **fields: int) -> None:
        pipe = client().pipeline()
        for name, value in fields.items():
            pipe.hset(self.key, name, value)
        pipe.expire(self.key, int(config.current().completion_marker_ttl))
        pipe.execute()

    def advance(self, cursor: int) -> None:
        self._set(cursor=cursor)

    def hand_over(self, head: int) -> None:
        self._set(head=head, cursor=head)


def continue_run(step: Task, args: tuple[Any, ...], run_id: str, after_id: int) -> None:
    """Publish the run's next step, starting after ``after_id``, under its derived id."""
    task_id = derived_id(run_id, f"{step.name}/after/{after_id}")
    step.apply_async((*args, run_id, after_id), task_id=task_id)


def fan_out(
    step: Task,
    args: tuple[Any, ...],
    run_id: str | None,
    after_id: int,
    *,
    ids: Select[tuple[int]],
    child: Task,
    child_args: Callable[[int], tuple[Any, ...]],
) -> None:
    """One step of a fan-out: publish ``child(*child_args(id))`` for each of ``ids`` in order.

    The ids are streamed (memory stays flat) and published a batch at a time, each batch
    confirmed by the broker; at half the soft time limit the step hands over to the next one.
    """
    run_id = run_id or step.request.id
    progress = Progress(run_id)
    key = ids.selected_columns[0]
    with task_lock(f"{step.name}:{run_id}"):
        head, cursor = progress.read()
        if after_id < head:
            continue_run(step, args, run_id, head)
            return
        # Half the soft limit, then hand over: the continuation gets a full time limit of its own.
        deadline = time.monotonic() + config.current().soft_time_limit / 2
        query = (
            ids.where(key > max(after_id, cursor))
            .order_by(key)
            .execution_options(yield_per=PUBLISH_BATCH_SIZE)
        )
        published = 0
        with db.session() as session, Publisher(child, step.request) as out:
            for batch in session.scalars(query).partitions():
                calls = [(derived_id(run_id, f"{child.name}/{i}"), child_args(i)) for i in batch]
                out.publish(calls)
                progress.advance(batch[-1])
                published += len(batch)
                if time.monotonic() > deadline:
                    progress.hand_over(batch[-1])
                    continue_run(step, args, run_id, batch[-1])
                    break
        log.info("run.fanned_out", run=run_id, published=published)


def batch(
    step: Task,
    args: tuple[Any, ...],
    run_id: str | None,
    after_id: int,
    *,
    rows: Select[tuple[Row]],
    key: InstrumentedAttribute[int],
    handle: Callable[[Row], None],
) -> None:
    """One step of a batching chain: ``handle`` the next BATCH_SIZE rows, then hand over.

    Keyset pagination (``key > after_id ORDER BY key LIMIT n``); the next step is published as
    this one's last act.
    """
    run_id = run_id or step.request.id
    progress = Progress(run_id)
    with task_lock(f"{step.name}:{run_id}"):
        head, _ = progress.read()
        if after_id < head:
            continue_run(step, args, run_id, head)
            return
        query = rows.where(key > after_id).order_by(key).limit(config.current().batch_size)
        with db.session() as session:
            found = session.scalars(query).all()
        for row in found:
            handle(row)
        if found:
            last = int(getattr(found[-1], key.key))
            progress.hand_over(last)
            continue_run(step, args, run_id, last)
