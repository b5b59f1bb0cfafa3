"""The Redis client for locks and completion markers: one per process, made after the fork.

A client (and its connection pool) created in the worker's main process must not be used by the
pool processes it forks: the sockets would be shared. ``client()`` notices a fork by the pid and
makes a new client.
"""

import os

import redis

from . import config

_client: redis.Redis | None = None
_pid: int | None = None


def client() -> redis.Redis:
    """This process's client for ``REDIS_URL``."""
    global _client, _pid  # noqa: PLW0603
    if _client is None or _pid != os.getpid():
        _client = redis.Redis.from_url(
            config.current().redis_url,
            socket_connect_timeout=5,
            socket_timeout=10,
            socket_keepalive=True,
            health_check_interval=25,
        )
        _pid = os.getpid()
    return _client
