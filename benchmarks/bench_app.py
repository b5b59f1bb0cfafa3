"""The app the benchmarks run (deployment chaos, fault scenarios, queue drain), in one of five
configurations.

Copied into a baked project and started as ``celery -A bench_app worker`` (the service: its own
command with ``--include bench_app``). ``BENCH_VARIANT`` picks the configuration:

- ``defaults``: Celery's defaults (early ack, prefetch 4, plain warm shutdown, no retries);
- ``defaults-quorum``: the same on a quorum queue (``task_default_queue_type``), as Celery's
  docs set one up;
- ``short-settings``: Celery with the Celery settings of the service's short-task queue in
  ``queue_drain.py`` (acks_late, reject_on_worker_lost, prefetch 8, soft and hard time limits 4
  and 5 s; on RabbitMQ a quorum queue) and none of the service's code: what Celery itself costs;
- ``article``: the settings of the article the template started from (acks_late,
  reject_on_worker_lost, prefetch 1, confirm_publish, visibility timeout 900 s, plain SIGTERM)
  and its base task (every exception retried 5 times, backoff up to 600 s, full jitter);
- ``service``: the rendered service's own app, settings, base task, Redis client and database.

Each task run is recorded in the Redis at ``BENCH_REDIS_URL`` (start, heartbeat every 20 ms, end),
as in the rendered project's probe tasks, so lost tasks, re-executions and overlaps can be counted.
"""

import os
import time
import uuid
from importlib import import_module
from typing import Any

import redis
from celery import Celery
from sqlalchemy import Engine, create_engine, text

VARIANT = os.environ["BENCH_VARIANT"]
BROKER_URL = os.environ["CELERY_BROKER_URL"]
QUEUE = os.environ["BENCH_QUEUE"]
PACKAGE = os.environ.get("BENCH_PACKAGE", "")

#: Options of every task: the article's base task retries everything; the others add none.
TASK_OPTIONS: dict[str, Any] = {}

if VARIANT == "service":
    app = import_module(PACKAGE + ".celery_app").app
else:
    app = Celery("bench", broker=BROKER_URL)
    app.conf.task_default_queue = QUEUE
    app.conf.task_serializer = "json"
    app.conf.accept_content = ["json"]
    if VARIANT == "defaults-quorum" or (
        VARIANT == "short-settings" and BROKER_URL.startswith("amqp")
    ):
        app.conf.task_default_queue_type = "quorum"
    if VARIANT == "short-settings":
        app.conf.update(
            task_acks_late=True,
            task_reject_on_worker_lost=True,
            worker_prefetch_multiplier=8,
            task_soft_time_limit=4,
            task_time_limit=5,
        )
    if VARIANT == "article":
        app.conf.update(
            task_acks_late=True,
            task_reject_on_worker_lost=True,
            worker_prefetch_multiplier=1,
            broker_connection_retry_on_startup=True,
            broker_transport_options={"confirm_publish": True, "visibility_timeout": 900},
        )
        TASK_OPTIONS = {
            "autoretry_for": (Exception,),
            "max_retries": 5,
            "retry_backoff": True,
            "retry_backoff_max": 600,
            "retry_jitter": True,
        }

_client = None
_engine: Engine | None = None
_engine_pid: int | None = None


def client() -> redis.Redis:
    """The service's own Redis client (its REDIS_URL is BENCH_REDIS_URL); a plain one otherwise."""
    global _client
    if VARIANT == "service":
        return import_module(PACKAGE + ".core.redis_client").client()
    if _client is None or _client.connection_pool.pid != os.getpid():
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"], decode_responses=True)
    return _client


def read_row(row: int) -> str:
    """One row of ``bench_rows``, through the service's sessions or a plain engine."""
    global _engine, _engine_pid
    query = text("SELECT value FROM bench_rows WHERE id = :id")
    if VARIANT == "service":
        with import_module(PACKAGE + ".core.db").session() as session:
            return str(session.execute(query, {"id": row}).scalar_one())
    if _engine is None or _engine_pid != os.getpid():
        _engine = create_engine(os.environ["BENCH_DATABASE_URL"])
        _engine_pid = os.getpid()
    with _engine.connect() as connection:
        return str(connection.execute(query, {"id": row}).scalar_one())


def start_run(item: str) -> str:
    run = uuid.uuid4().hex
    now = time.time()
    pipe = client().pipeline()
    pipe.hset(f"bench:run:{run}", mapping={"item": item, "start": now, "last": now})
    pipe.rpush(f"bench:item:{item}", run)
    pipe.execute()
    return run


def work_for(run: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
        client().hset(f"bench:run:{run}", "last", time.time())


def end_run(run: str) -> None:
    now = time.time()
    client().hset(f"bench:run:{run}", mapping={"last": now, "end": now})


@app.task(name="bench.work", **TASK_OPTIONS)
def work(item: str, seconds: float) -> None:
    run = start_run(item)
    work_for(run, seconds)
    end_run(run)


@app.task(name="bench.read_row", **TASK_OPTIONS)
def read_row_task(item: str, row: int, seconds: float) -> None:
    """Loads its input first, as most tasks do, then works on it."""
    run = start_run(item)
    client().hset(f"bench:run:{run}", "value", read_row(row))
    work_for(run, seconds)
    end_run(run)


@app.task(name="bench.noop", **TASK_OPTIONS)
def noop(item: str) -> None:
    client().incr(f"bench:noop:{item}")


#: The service's no-op without a completion marker (``completion_marker=False``): two Redis round
#: trips fewer per task (queue_drain.py).
UNMARKED = {"completion_marker": False} if VARIANT == "service" else {}


@app.task(name="bench.noop_unmarked", **TASK_OPTIONS, **UNMARKED)
def noop_unmarked(item: str) -> None:
    client().incr(f"bench:noop:{item}")
