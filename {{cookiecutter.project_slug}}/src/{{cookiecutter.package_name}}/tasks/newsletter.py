"""The newsletter example: one newsletter sent to every user, by tasks that each stay short.

Replace it with the service's own work; the machinery stays in the core (``core/runs.py``):
a fan-out (one child task per user), a batching chain (``BATCH_SIZE`` users per task) and one
task under a lock. A step run again after it was cut off skips the users sent to (``deliver_once``).
"""

from typing import Any

from redis.client import Pipeline
from sqlalchemy import select

from ..celery_app import app
from ..core import beat, config, db, logs, runs
from ..core.locks import no_parallel_processing, task_lock
from ..core.publishing import BATCH_SIZE as PUBLISH_BATCH_SIZE
from ..core.redis_client import client
from ..models import User

log = logs.get(__name__)


def deliveries_key(newsletter: str) -> str:
    return f"newsletter:{newsletter}:deliveries"


def sent_key(newsletter: str) -> str:
    return f"newsletter:{newsletter}:sent"


def deliver(newsletter: str, user: User) -> None:
    """PLACEHOLDER, replace with the real send (an email API call, a push notification...).

    Logs the send, counts it in the Redis hash ``deliveries_key`` (which the tests read) and marks
    the user sent in the same MULTI; a real send cannot: call ``mark_sent`` as soon as it returns.
    """
    log.info("newsletter.sent", newsletter=newsletter, user_id=user.id)
    key = deliveries_key(newsletter)
    pipe = client().pipeline()
    pipe.hincrby(key, str(user.id), 1)
    pipe.expire(key, int(config.current().completion_marker_ttl))
    mark_sent(pipe, newsletter, user.id)
    pipe.execute()


def mark_sent(pipe: Pipeline, newsletter: str, user_id: int) -> None:
    """Queue on ``pipe`` the marker that ``user_id`` got ``newsletter``."""
    pipe.sadd(sent_key(newsletter), str(user_id))
    pipe.expire(sent_key(newsletter), int(config.current().completion_marker_ttl))


def deliver_once(newsletter: str, user: User) -> None:
    """``deliver``, unless ``user`` already got ``newsletter`` (its marker in ``sent_key``)."""
    if client().sismember(sent_key(newsletter), str(user.id)):
        log.info("newsletter.already_sent", newsletter=newsletter, user_id=user.id)
        return
    deliver(newsletter, user)


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
    """Publish one ``send_newsletter_to_user`` per user, a step of the run at a time."""
    runs.fan_out(
        self,
        (newsletter,),
        run_id,
        after_id,
        ids=select(User.id),
        child=send_newsletter_to_user,
        child_args=lambda user_id: (newsletter, user_id),
    )


@app.task(name="send_weekly_newsletter", bind=True)
def send_weekly_newsletter(self: Any) -> None:
    """The beat's weekly tick (``schedules.py``): that week's newsletter, by the fan-out."""
    tick = beat.tick_of(self.request)
    if tick is None:
        raise ValueError("send_weekly_newsletter runs from the beat, which sends its tick")
    newsletter = f"weekly-{tick:%Y-%m-%d}"
    # Derived from this task's id, itself from the tick: a redelivery publishes nothing new.
    task_id = runs.derived_id(self.request.id, "fan-out")
    send_newsletter_fan_out.apply_async((newsletter,), task_id=task_id)


@app.task(name="send_newsletter_batching", bind=True)
def send_newsletter_batching(
    self: Any, newsletter: str, run_id: str | None = None, after_id: int = 0
) -> None:
    """Send to the next BATCH_SIZE users, then publish the task for the rest."""
    runs.batch(
        self,
        (newsletter,),
        run_id,
        after_id,
        rows=select(User),
        key=User.id,
        handle=lambda user: deliver_once(newsletter, user),
    )


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
