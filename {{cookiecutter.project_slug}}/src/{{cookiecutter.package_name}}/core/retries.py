"""What a task retries, and after how long: transient errors, on a budget that outlasts a failover.

Any other exception is permanent: the task's message goes to the dead letters on its first
failure (see docs/design_decisions.md, "Retries and dead letters").
"""

import random

import amqp.exceptions
import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc

#: Errors that time can cure: a dependency that does not answer for a while (a Redis or database
#: failover, a broker restart). A task extends it with
#: ``@app.task(autoretry_for=(*TRANSIENT_ERRORS, MyClientError))``.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError,
    TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    # A failed-over primary, now a replica, refuses writes until clients reconnect.
    redis.exceptions.ReadOnlyError,
    # Lost and refused connections, failovers, serialization failures and deadlocks.
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    kombu.exceptions.OperationalError,
    # A Redis publish batch cut off by a lost connection: some of its messages may be queued;
    # publishing them again under the same task ids is what the completion markers absorb.
    kombu.exceptions.BatchPublishError,
    amqp.exceptions.ConnectionError,
)


def countdown(retries: int, first: float, longest: float) -> float:
    """Seconds before retry number ``retries + 1``: doubling from ``first``, capped at ``longest``.

    Jittered within the upper half, so failed tasks spread out and none comes back sooner than
    half its nominal value or 1 s (Celery's full jitter draws 0 s; RabbitMQ's delayed delivery
    counts whole seconds and refuses a countdown below 1).
    """
    nominal = min(longest, first * 2**retries)
    return float(max(1.0, nominal * random.uniform(0.5, 1.0)))  # noqa: S311 (spreading)


def shortest_span(max_retries: int, first: float, longest: float) -> float:
    """The least time the retries of one task can take: each countdown at its floor."""
    return float(sum(min(longest, first * 2**retries) / 2 for retries in range(max_retries)))
