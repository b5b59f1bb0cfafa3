"""The newsletter example: one newsletter sent to every user, by tasks that each stay short.

Replace it with the service's own work; keep the shapes. A task must end well inside the ECS stop
window (see ``config.py``), so work over many rows is split:

- ``send_newsletter_fan_out``: one task reads the user ids (streamed, memory flat in the number of
  users) and publishes one ``send_newsletter_to_user`` per user, in batches confirmed by the broker
  (``publishing.py``). If it nears its time limit it hands the rest to a continuation of itself.
- ``send_newsletter_batching``: each task sends to the next ``BATCH_SIZE`` users by keyset
  pagination (``id > last id ORDER BY id LIMIT n``) and, as its last step, publishes the task for
  the next batch.
- ``send_newsletter_locking``: the article's single task under a lock, for work small enough to
  fit one run.

Delivery is at least once, so every step can run again. Each run (a fan-out or a batching chain,
named by the id of its first task) keeps its progress in Redis, and every task it publishes has
an id derived from the run and the position, so a redelivered step publishes the same ids and the
completion markers drop the copies: a redelivered fan-out adds no children, a redelivered batch
does not fork the chain. A step cut off half-way (its worker lost the broker) runs again from its
start: a marker per newsletter and user (``deliver_once``) skips the users it already sent to.
"""

import time
import uuid
from typing import Any

from redis.client import Pipeline
from sqlalchemy import select

from .. import config, db, logs
from ..celery_app import app
from ..locks import no_parallel_processing, task_lock
from ..models import User
from ..publishing import BATCH_SIZE as PUBLISH_BATCH_SIZE
from ..publishing import Publisher
from ..redis_client import client

log = logs.get(__name__)

#: Namespace of the task ids derived here (uuid5): the same run and position give the same id.
TASK_IDS = uuid.UUID("c38ffd29-1ce4-4fc9-b1b1-0a2064e262dc")


def derived_id(run_id: str, position: str) -> str:
    return str(uuid.uuid5(TASK_IDS, f"{run_id}/{position}"))


def deliveries_key(newsletter: str) -> str:
    return f"newsletter:{newsletter}:deliveries"


def deliver(newsletter: str, user: User) -> None:
    """PLACEHOLDER, replace with the real send (an email API call, a push notification...).

    Logs the send and counts it in the Redis hash ``newsletter:<newsletter>:deliveries`` (user id
    -> sends), which the tests read, and marks the user sent (``mark_sent``) in the same MULTI.
    A real send cannot share a transaction with Redis: call ``mark_sent`` as soon as it returns.
    """
    log.info("newsletter.sent", newsletter=newsletter, user_id=user.id)
    key = deliveries_key(newsletter)
    pipe = client().pipeline()
    pipe.hincrby(key, str(user.id), 1)
    pipe.expire(key, int(config.current().completion_marker_ttl))
    mark_sent(pipe, newsletter, user.id)
    pipe.execute()


def sent_key(newsletter: str) -> str:
    return f"newsletter:{newsletter}:sent"


def mark_sent(pipe: Pipeline, newsletter: str, user_id: int) -> None:
    """Queue on ``pipe`` the marker that ``user_id`` got ``newsletter``."""
    pipe.sadd(sent_key(newsletter), str(user_id))
    pipe.expire(sent_key(newsletter), int(config.current().completion_marker_ttl))


def deliver_once(newsletter: str, user: User) -> None:
    """``deliver``, unless ``user`` already got ``newsletter`` (its marker, a set per newsletter).

    A step run again after it was cut off mid-way (its worker lost the broker, a redelivered
    batch) skips the users it already sent to.
    """
    if client().sismember(sent_key(newsletter), str(user.id)):
        log.info("newsletter.already_sent", newsletter=newsletter, user_id=user.id)
        return
    deliver(newsletter, user)


class Progress:
    """Where a run stands, in Redis, so a redelivered step neither repeats nor forks it.

    ``head``: the id after which the run's current step starts. A step that starts before it is
    a redelivery of a step that already handed over: its work is done.
    ``cursor``: the last id whose work is done within the current step (a fan-out advances it
    after each batch the broker confirmed; a redelivery resumes after it).
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


def continue_run(task: Any, newsletter: str, run_id: str, after_id: int) -> None:
    """Publish the run's next step, starting after ``after_id``, under its derived id."""
    task_id = derived_id(run_id, f"{task.name}/after/{after_id}")
    task.apply_async((newsletter, run_id, after_id), task_id=task_id)


@app.task(name="send_newsletter_to_user", bind=True)
def send_newsletter_to_user(self: Any, newsletter: str, user_id: int) -> None:
    """One user's newsletter: the child task of the fan-out."""
    # A fan-out step that failed mid-batch publishes the batch again: two copies of one child id
    # can run at once, and neither has a completion marker yet. The lock makes one wait. The send
    # comes after the transaction ended: a database failing at commit must not send twice.
    with task_lock(f"newsletter:{newsletter}:user:{user_id}"):
        with db.session() as session:
            user = session.get(User, user_id)
        if user is None:
            log.info("newsletter.skipped", newsletter=newsletter, user_id=user_id)
            return
        deliver_once(newsletter, user)


@app.task(name="send_newsletter_fan_out", bind=True)
def send_newsletter_fan_out(
    self: Any, newsletter: str, run_id: str | None = None, after_id: int = 0
) -> None:
    """Publish one ``send_newsletter_to_user`` per user with an id above ``after_id``."""
    run_id = run_id or self.request.id
    progress = Progress(run_id)
    with task_lock(f"{self.name}:{run_id}"):
        head, cursor = progress.read()
        if after_id < head:
            continue_run(self, newsletter, run_id, head)
            return
        # Half the soft limit, then hand over: the continuation gets a full time limit of its own.
        deadline = time.monotonic() + config.current().soft_time_limit / 2
        query = (
            select(User.id)
            .where(User.id > max(after_id, cursor))
            .order_by(User.id)
            .execution_options(yield_per=PUBLISH_BATCH_SIZE)
        )
        published = 0
        with db.session() as session, Publisher(send_newsletter_to_user, self.request) as out:
            for user_ids in session.scalars(query).partitions():
                out.publish(
                    [(derived_id(run_id, f"user/{uid}"), (newsletter, uid)) for uid in user_ids]
                )
                progress.advance(user_ids[-1])
                published += len(user_ids)
                if time.monotonic() > deadline:
                    progress.hand_over(user_ids[-1])
                    continue_run(self, newsletter, run_id, user_ids[-1])
                    break
        log.info("newsletter.fanned_out", newsletter=newsletter, run=run_id, published=published)


@app.task(name="send_newsletter_batching", bind=True)
def send_newsletter_batching(
    self: Any, newsletter: str, run_id: str | None = None, after_id: int = 0
) -> None:
    """Send to the next BATCH_SIZE users with an id above ``after_id``; then publish the rest."""
    run_id = run_id or self.request.id
    progress = Progress(run_id)
    with task_lock(f"{self.name}:{run_id}"):
        head, _ = progress.read()
        if after_id < head:
            continue_run(self, newsletter, run_id, head)
            return
        query = (
            select(User)
            .where(User.id > after_id)
            .order_by(User.id)
            .limit(config.current().batch_size)
        )
        with db.session() as session:
            users = session.scalars(query).all()
        for user in users:
            deliver_once(newsletter, user)
        if users:
            progress.hand_over(users[-1].id)
            continue_run(self, newsletter, run_id, users[-1].id)


@app.task(name="send_newsletter_locking", bind=True)
@no_parallel_processing(key=lambda newsletter: f"newsletter:{newsletter}")
def send_newsletter_locking(self: Any, newsletter: str) -> None:
    """Send to every user in one run, never two runs of one newsletter at once.

    The article's design: simple, but the whole run must fit the hard time limit, so only for a
    few users; past that, fan out or batch.
    """
    query = select(User).order_by(User.id).execution_options(yield_per=PUBLISH_BATCH_SIZE)
    with db.session() as session:
        for user in session.scalars(query):
            deliver_once(newsletter, user)
