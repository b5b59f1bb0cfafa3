"""The Redis client of locks, completion markers and dead letters, one per process.

Made per process (``per_process.py``), so a pool process never shares its parent's sockets.
Its timeouts make a dead Redis fail a call within seconds, never hang a task to its time limit.
"""

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from . import config
from .per_process import PerProcess

#: What a call raises when Redis fails (refused, timed out, reset, a read-only replica...).
ERRORS = (redis.RedisError, OSError)
#: Attempts after the first failed one: enough for a dropped connection, not for an outage (the
#: task's own retries ride those out). A call gives up within about 3 x (2 s + 3 s).
RETRIES = 2


def _connect() -> redis.Redis:
    return redis.Redis.from_url(
        config.current().redis_url,
        socket_connect_timeout=2,
        socket_timeout=3,
        socket_keepalive=True,
        health_check_interval=25,
        retry=Retry(ExponentialWithJitterBackoff(base=0.1, cap=1), RETRIES),
    )


_client = PerProcess(_connect)


def client() -> redis.Redis:
    """This process's client for ``REDIS_URL``."""
    return _client.get()
