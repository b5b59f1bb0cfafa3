"""The Redis client of locks, completion markers and dead letters: one per process, made after fork.

A client created in the worker's main process must not be used by the pool processes it forks
(the sockets would be shared): ``client()`` notices a fork by the pid and makes a new client.
Its timeouts make a dead Redis fail a call within seconds, never hang a task to its time limit.
"""

import os

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from . import config

#: Attempts after the first failed one: enough for a dropped connection, not for an outage (the
#: task's own retries ride those out). A call gives up within about 3 x (2 s + 3 s).
RETRIES = 2

_client: redis.Redis | None = None
_pid: int | None = None


def client() -> redis.Redis:
    """This process's client for ``REDIS_URL``."""
    global _client, _pid  # noqa: PLW0603
    if _client is None or _pid != os.getpid():
        _client = redis.Redis.from_url(
            config.current().redis_url,
            socket_connect_timeout=2,
            socket_timeout=3,
            socket_keepalive=True,
            health_check_interval=25,
            retry=Retry(ExponentialWithJitterBackoff(base=0.1, cap=1), RETRIES),
        )
        _pid = os.getpid()
    return _client
