"""The app the deployment-chaos benchmark runs, in one of three configurations.

Copied into a baked project and started as ``celery -A bench_app worker``. ``BENCH_VARIANT``
picks the configuration:

- ``defaults``: Celery's defaults (early ack, prefetch 4, plain warm shutdown);
- ``article``: the settings of the article the template started from (acks_late,
  reject_on_worker_lost, prefetch 1, confirm_publish, visibility timeout 900 s, plain SIGTERM);
- ``service``: the rendered service's own app and settings.

Each task run is recorded in Redis (start, heartbeat every 20 ms, end), as in the rendered
project's probe tasks, so lost tasks, re-executions and overlapping runs can be counted.
"""

import os
import time
import uuid

import redis
from celery import Celery

VARIANT = os.environ["BENCH_VARIANT"]
BROKER_URL = os.environ["CELERY_BROKER_URL"]
QUEUE = os.environ["TASK_DEFAULT_QUEUE"]

if VARIANT == "service":
    from importlib import import_module

    app = import_module(os.environ["BENCH_PACKAGE"] + ".celery_app").app
else:
    app = Celery("bench", broker=BROKER_URL)
    app.conf.task_default_queue = QUEUE
    app.conf.task_serializer = "json"
    app.conf.accept_content = ["json"]
    if VARIANT == "article":
        app.conf.update(
            task_acks_late=True,
            task_reject_on_worker_lost=True,
            worker_prefetch_multiplier=1,
            broker_connection_retry_on_startup=True,
            broker_transport_options={"confirm_publish": True, "visibility_timeout": 900},
        )

_client = None


def client() -> redis.Redis:
    global _client
    if _client is None or _client.connection_pool.pid != os.getpid():
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"], decode_responses=True)
    return _client


@app.task(name="bench.work")
def work(item: str, seconds: float) -> None:
    run = uuid.uuid4().hex
    now = time.time()
    pipe = client().pipeline()
    pipe.hset(f"bench:run:{run}", mapping={"item": item, "start": now, "last": now})
    pipe.rpush(f"bench:item:{item}", run)
    pipe.execute()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
        client().hset(f"bench:run:{run}", "last", time.time())
    now = time.time()
    client().hset(f"bench:run:{run}", mapping={"last": now, "end": now})


@app.task(name="bench.noop")
def noop(item: str) -> None:
    client().incr(f"bench:noop:{item}")
