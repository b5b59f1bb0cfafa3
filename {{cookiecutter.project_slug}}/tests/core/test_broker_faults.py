"""Broker faults under load: a producer publishing and two workers running while the broker fails.

Each test starts a private broker (``support/private_services.py``), never touching the shared
one, and accounts for every task it sent: completed, or dead-lettered with a reason; none missing.
A publish that rides through the fault returns; one that cannot raises to the caller.
"""

import contextlib
import os
import time
from pathlib import Path

import pytest
import redis

{% if cookiecutter.broker == 'rabbitmq' -%}
from {{ cookiecutter.package_name }}.core import config
{%- else -%}
from {{ cookiecutter.package_name }}.core import broker, config
{%- endif %}
from {{ cookiecutter.package_name }}.core.celery_settings import PUBLISH_RETRY_POLICY, PUBLISH_RETRY_SECONDS
from {{ cookiecutter.package_name }}.core.refusal import shown_url

from ..support.faults import (
    Tally,
    completed_items,
    outcomes,
    private_app,
    start_producer,
    tally,
{%- if cookiecutter.broker == 'redis' %}
    unacked_items,
{%- endif %}
)
{%- if cookiecutter.broker == 'rabbitmq' %}
from ..support.private_services import dead_port, private_rabbitmq
{%- else %}
from ..support.private_services import private_redis
from ..support.redelivery import redeliver_unacknowledged
from ..support.runs import runs_of
{%- endif %}
from ..support.workers import Fleet, wait_for

#: Tasks published during each test, one every PAUSE seconds: the fault lands in the middle.
COUNT = 150
PAUSE = 0.03
#: Seconds the broker stays down: longer than Celery's default publish retries (0.6 s), well
#: inside the service's (about 30 s).
OUTAGE = 8.0
WORKER_ENV = {"WORKER_CONCURRENCY": "2"}
#: The sleeps of the publish retry policy: kombu's intervals, capped at interval_max.
RETRY_SLEEPS = sum(
    min(PUBLISH_RETRY_POLICY["interval_start"] + step * PUBLISH_RETRY_POLICY["interval_step"],
        PUBLISH_RETRY_POLICY["interval_max"])
    for step in range(PUBLISH_RETRY_POLICY["max_retries"])
)  # fmt: skip


def test_a_failover_list_shows_no_password() -> None:
    shown = shown_url("amqp://u:first-secret@a:5672//;amqp://u:second-secret@b:5672//")
    assert "secret" not in shown
    assert shown.count("***") == 2


def test_the_publish_retry_policy_rides_through_a_restart() -> None:
    # Measured in docs/design_decisions.md: a RabbitMQ app restart takes ~1 s, a node restart
    # ~7 s, a Redis restart replaying 200 MB of AOF under 1 s; the policy allows about 30 s.
    assert RETRY_SLEEPS == PUBLISH_RETRY_SECONDS


def run_under_fault(
    fleet: Fleet, env: dict[str, str], item: str, tmp_path: Path, fault: object
) -> list[dict[str, object]]:
    """Two workers and a producer on ``env``'s broker; ``fault()`` once a third is published."""
    workers = [fleet.start({**WORKER_ENV, **env}) for _ in range(2)]
    for worker in workers:
        fleet.wait_ready(worker, timeout=60)
    log = tmp_path / "producer.log"
    producer = start_producer(env, item, COUNT, PAUSE, log)
    try:
        wait_for(lambda: len(outcomes(log)) >= COUNT // 3, 60, "a third of the publishes")
        fault()  # type: ignore[operator]
        producer.wait(timeout=120)
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()
    published = outcomes(log)
    assert len(published) == COUNT, log.read_text()[-3000:]
    return published


def wait_settled(
    client: redis.Redis, items: list[str], env: dict[str, str], timeout: float
) -> Tally:
    """Wait until every item completed; then account for each (dead letters included)."""
    with contextlib.suppress(AssertionError):
        wait_for(lambda: completed_items(client, items) == set(items), timeout, "every task")
    return tally(client, items, env)
{%- if cookiecutter.broker == 'rabbitmq' %}


@pytest.mark.slow
def test_rabbitmq_stop_app_under_a_producer_and_two_workers_loses_nothing(
    tmp_path: Path, item: str, redis_client: redis.Redis
) -> None:
    with private_rabbitmq("pubfault") as node:
        env = {"CELERY_BROKER_URL": node.url}
        fleet = Fleet(os.environ, tmp_path, private_app(env))
        try:

            def restart() -> None:
                node.stop_app()
                time.sleep(OUTAGE)  # the outage itself, not a wait for something
                node.start_app()

            published = run_under_fault(fleet, env, item, tmp_path, restart)
            items = [f"{item}-{index}" for index in range(COUNT)]
            result = wait_settled(redis_client, items, env, 60)
        finally:
            fleet.kill_all()
    raised = [outcome for outcome in published if not outcome["ok"]]
    slowest = max(float(outcome["seconds"]) for outcome in published)  # type: ignore[arg-type]
    print(f"rabbitmq stop_app {OUTAGE:g} s: {result.figures()} raised={len(raised)} "
          f"slowest_publish={slowest:.1f}s")  # fmt: skip
    assert raised == []
    assert result.missing == set(), result.figures()
    assert all(result.dead_lettered.values()), result.dead_lettered


@pytest.mark.slow
def test_a_failover_url_reaches_the_live_broker_and_hides_every_password(
    tmp_path: Path, item: str, redis_client: redis.Redis
) -> None:
    with dead_port() as dead, private_rabbitmq("failover") as node:
        url = f"amqp://guest:dead-secret@127.0.0.1:{dead}//;{node.url}"
        env = {"CELERY_BROKER_URL": url}
        assert config.from_env({**os.environ, **env}).broker_url == url
        fleet = Fleet(os.environ, tmp_path, private_app(env))
        try:
            worker = fleet.start({**WORKER_ENV, **env})
            fleet.wait_ready(worker, timeout=60)
            log = tmp_path / "producer.log"
            start_producer(env, item, 20, 0, log).wait(timeout=60)
            items = [f"{item}-{index}" for index in range(20)]
            result = wait_settled(redis_client, items, env, 30)
        finally:
            fleet.kill_all()
    assert all(outcome["ok"] for outcome in outcomes(log)), outcomes(log)
    assert result.completed == set(items), result.figures()
    assert "dead-secret" not in worker.output()


def test_a_rabbitmq_url_of_another_scheme_is_refused_without_its_password() -> None:
    url = "amqp://guest:guest@a//;redis://user:hidden-secret@b:6379/0"
    with pytest.raises(config.ConfigError) as refused:
        config.from_env({**os.environ, "CELERY_BROKER_URL": url})
    assert "CELERY_BROKER_URL=" in str(refused.value)
    assert "hidden-secret" not in str(refused.value)


@pytest.mark.slow
def test_a_publish_that_cannot_reach_any_broker_raises_after_the_retry_policy(
    tmp_path: Path, item: str
) -> None:
    log = tmp_path / "producer.log"
    with dead_port() as dead:
        env = {"CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{dead}//"}
        start_producer(env, item, 1, 0, log).wait(timeout=90)
    (outcome,) = outcomes(log)
    assert not outcome["ok"]
    assert "OperationalError" in str(outcome["error"])
    # A connection never made waits connect_retries_timeout; kombu checks it between attempts.
    seconds = float(outcome["seconds"])  # type: ignore[arg-type]
    assert PUBLISH_RETRY_SECONDS <= seconds <= PUBLISH_RETRY_SECONDS + 15
{%- else %}


def test_the_persistence_warning_tells_a_redis_without_persistence() -> None:
    with private_redis(appendonly=False, save="") as plain:
        found = broker.persistence_off(plain.url)
    with private_redis(appendonly=True) as durable:
        assert broker.persistence_off(durable.url) is None
    assert found == {"aof_enabled": 0, "rdb_save": "''", "replicas": 0}


def test_a_worker_on_a_broker_without_persistence_warns_and_starts(
    tmp_path: Path,
) -> None:
    with private_redis(appendonly=False, save="") as plain:
        env = {"CELERY_BROKER_URL": plain.url.replace("//", "//:pw-secret@")}
        plain.client().config_set("requirepass", "pw-secret")
        fleet = Fleet(os.environ, tmp_path, private_app(env))
        try:
            worker = fleet.start({**WORKER_ENV, **env})
            fleet.wait_ready(worker, timeout=60)
        finally:
            fleet.kill_all()
    assert worker.events("broker.persistence_off", aof_enabled=0)
    assert "pw-secret" not in worker.output()


@pytest.mark.slow
def test_a_redis_broker_sigkilled_under_load_loses_nothing(tmp_path: Path, item: str) -> None:
    with private_redis(appendonly=True, appendfsync="always") as server:
        # The broker and the service's own Redis (markers, locks, dead letters) are the same
        # server, as in a small deployment: the crash takes both away.
        env = {"CELERY_BROKER_URL": server.url, "REDIS_URL": server.url}
        app = private_app(env)
        fleet = Fleet(os.environ, tmp_path, app)
        client = server.client()
        try:

            def crash() -> None:
                server.kill()
                time.sleep(OUTAGE)  # the outage itself, not a wait for something
                server.restart()

            published = run_under_fault(fleet, env, item, tmp_path, crash)
            items = [f"{item}-{index}" for index in range(COUNT)]
            # The tasks running when Redis died are terminated (their acknowledgement cannot
            # reach the broker) and their messages wait in kombu's "unacked" hash, replayed from
            # the AOF, for the visibility timeout; restore them now, once nothing else is left.
            queue = config.current().broker_queue()

            def only_held_left() -> bool:
                held = unacked_items(client)
                done = completed_items(client, items) | held
                # A held message whose run is still alive is being worked on, not stranded.
                stale = all(
                    run.completed or time.time() - run.last > 1
                    for item in held
                    for run in runs_of(client, item)
                )
                return not client.llen(queue) and done >= set(items) and stale

            with contextlib.suppress(AssertionError):
                wait_for(only_held_left, 40, "every task completed or held unacknowledged")
            before = tally(client, items, env)
            held = unacked_items(client) & before.missing
            redeliver_unacknowledged(app)
            result = wait_settled(client, items, env, 40)
        finally:
            fleet.kill_all()
    raised = [outcome for outcome in published if not outcome["ok"]]
    print(f"redis SIGKILL {OUTAGE:g} s: before restore {before.figures()}, held in unacked="
          f"{len(held)}; after {result.figures()} raised={len(raised)}")  # fmt: skip
    assert raised == []
    assert result.missing == set(), result.figures()
    assert all(result.dead_lettered.values()), result.dead_lettered
{%- endif %}
