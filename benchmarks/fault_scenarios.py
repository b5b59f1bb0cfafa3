"""Fault scenarios: Celery's defaults vs the article's settings vs the rendered service.

Bakes the default project of each broker, then runs each scenario against each configuration of
``bench_app.py`` (2 workers of 2 processes; the service started with the task definition's command
and environment, plus short retry countdowns). Every scenario makes sense for every variant:

- ``redis``: 200 tasks of 0.1-0.5 s, each recording its run in a private Redis (AOF, fsync always,
  so the ledger survives) and touching it every 20 ms; that Redis (the service's REDIS_URL) is
  killed for 15 s once a quarter of the tasks completed, then restarted.
- ``database``: the same load, each task first reading a row of a private PostgreSQL cluster
  (and recording its run in Redis); the cluster is stopped (``-m immediate``) for 15 s, then
  started again.
- ``bad-messages``: four messages published raw with kombu (malformed JSON, a pickle body, an
  unknown task name, no Celery headers), then a good task behind them.
- ``broker``: a producer publishes the 200 tasks one every 30 ms while the broker fails once a
  quarter of them are published: the Redis broker (AOF) SIGKILLed and restarted 8 s later, or a
  private RabbitMQ node's application stopped for 8 s (``rabbitmqctl stop_app``). A publish that
  raised to the producer is counted apart ("publish raised"): the caller knows it failed.

Prints, per scenario, broker and variant: tasks lost (never completed and not in the dead-letter
store), dead-lettered (with reasons, from ``python -m <pkg>.core.dead_letters list``), duplicated
(completed more than once), recorded runs cut short by the fault (an attempt while the ledger
Redis is down cannot record itself), and seconds from the end of the fault until the last task
completed or was dead-lettered. Defaults and article declare no dead-letter
exchange (and Redis has none): for them lost = not completed. A run ends when every task is
accounted for, or once nothing changed for QUIET s (longer than any countdown of the variant);
what is missing then is lost.

    .venv/bin/python benchmarks/fault_scenarios.py [--brokers rabbitmq redis]
        [--scenarios redis database bad-messages] [--variants defaults article service]

The Redis broker is a private redis-server with AOF, the RabbitMQ broker the local one (a queue
of its own per run, deleted at the end), except in ``broker``, which starts a private node. The
private servers take ports reserved at run time (the baked project's
``tests/support/private_services.py``), so the benchmark can run beside test suites.

Measured 2026-11-25 (2 cores shared with other test runs; 573 s for both brokers), lost of 200
for defaults / article / service: Redis killed 149 / 55 / 0 (RabbitMQ) and 148 / 70 / 0 (Redis);
database stopped 146 / 56 / 0 and 146 / 60 / 0; bad messages 4 / 4 / 0 of 4, the service's four
listed (undecodable 2, unknown_task 1, not_a_task 1). No duplicates; the service drained 12-16 s
after the fault. With the row read halfway through the task, the article lost none: its failed
attempts queued behind each other long enough to outlast the outage.

Measured 2026-11-25, ``--scenarios broker`` (219 s for both brokers), of 200 publishes for
defaults / article / service: publish raised 12 / 12 / 0 (Redis) and 14 / 13 / 0 (RabbitMQ);
lost 16 / 0 / 0 (Redis) and 1 / 0 / 0 (RabbitMQ); duplicated 0 / 0 / 0 and 0 / 4 / 0; the
service drained 12 s (Redis) and 8 s (RabbitMQ) after the broker came back.
"""

import argparse
import contextlib
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from baking import QUEUE_NAME, each_broker, namespace_of, run_queue

RABBITMQ_URL = "amqp://guest:guest@localhost:5672//"
BROKERS = ("rabbitmq", "redis")
SCENARIOS = ("redis", "database", "bad-messages", "broker")
VARIANTS = ("defaults", "article", "service")

TASKS = 200
SHORTEST, LONGEST = 0.1, 0.5
WORKERS = 2
CONCURRENCY = "2"
OUTAGE = 15.0
#: The broker's outage: well past Celery's default publish retries (0.6 s), inside the service's
#: (about 30 s).
BROKER_OUTAGE = 8.0
#: Seconds between two publishes of the producer in ``broker``.
PUBLISH_EVERY = 0.03
#: Seconds without progress after which what is missing counts as lost: above the longest
#: countdown of each variant (article: 16 s with full jitter; service: TASK_RETRY_BACKOFF_MAX).
QUIET = {"defaults": 8.0, "article": 20.0, "service": 20.0}
#: Seconds after the fault by which everything must be settled, whatever happens.
DEADLINE = 150.0
#: The service as the task definition runs it, with short retries so a run takes a minute.
SERVICE_ENV = {
    "WORKER_CONCURRENCY": CONCURRENCY,
    "TASK_RETRY_FIRST_COUNTDOWN": "2",
    "TASK_RETRY_BACKOFF_MAX": "16",
}
ARTICLE_SETTINGS = (
    "acks_late, reject_on_worker_lost, prefetch 1, confirm_publish, visibility_timeout 900; "
    "tasks: autoretry_for=(Exception,), max_retries 5, retry_backoff (max 600 s), retry_jitter"
)


# --- outer: bake, install, re-run inside the baked project's environment -----------------------


def outer(brokers: list[str], scenarios: list[str], variants: list[str]) -> None:
    started = time.monotonic()
    arguments = ["--scenarios", *scenarios, "--variants", *variants]
    report(each_broker(__file__, brokers, *arguments), scenarios, variants)
    print(f"\n(whole run: {time.monotonic() - started:.0f} s)")


def report(results: dict[str, Any], scenarios: list[str], variants: list[str]) -> None:
    print("\nSettings:")
    for broker, result in results.items():
        for variant in variants:
            print(f"  {broker:9} {variant:9} {result['settings'][variant]}")
    print(
        f"\nFault scenarios: {WORKERS} workers x {CONCURRENCY} processes; {TASKS} tasks of "
        f"{SHORTEST:g}-{LONGEST:g} s; outages of {OUTAGE:g} s (the broker's {BROKER_OUTAGE:g} s). "
        "Lost = published, then neither completed nor dead-lettered.\n"
    )
    header = (
        f"{'scenario':13} {'broker':9} {'settings':9} {'sent':>5} {'publish raised':>14}"
        f" {'lost':>5} {'dead-lettered':>13} {'duplicated':>10} {'runs cut':>8}"
        f" {'drained after fault':>19}  reasons"
    )
    print(header)
    print("-" * len(header))
    for scenario in scenarios:
        for broker, result in results.items():
            for variant in variants:
                row = result["rows"][f"{scenario}/{variant}"]
                letters = "-" if row["dead_lettered"] is None else str(row["dead_lettered"])
                drained = "-" if row["drain"] is None else f"{row['drain']:.1f} s"
                reasons = ", ".join(f"{name} {count}" for name, count in row["reasons"].items())
                print(
                    f"{scenario:13} {broker:9} {variant:9} {row['sent']:>5} {row['raised']:>14} "
                    f"{row['lost']:>5} {letters:>13} {row['duplicated']:>10} {row['cut']:>8} "
                    f"{drained:>19}  {reasons}"
                )


# --- inner: runs inside the baked project's environment ------------------------------------------


class Run:
    """One scenario against one variant: its queue, ledger Redis, environment, workers."""

    def __init__(
        self,
        broker: str,
        broker_url: str,
        variant: str,
        directory: Path,
        broker_outage: Callable[[], None],
    ) -> None:
        from celery import Celery
        from tests.support.private_services import private_redis

        self.broker, self.variant, self.directory = broker, variant, directory
        self.broker_outage = broker_outage
        #: Items whose publish raised to the producer (``broker``).
        self.raised: set[str] = set()
        self.package = json.loads(Path(".cookiecutter.json").read_text())["package_name"]
        self.queue = run_queue("bench-faults")
        (directory / "ledger").mkdir(parents=True)
        self.servers = contextlib.ExitStack()
        self.ledger = self.servers.enter_context(
            private_redis(appendonly=True, dir=directory / "ledger")
        )
        self.env = {k: v for k, v in os.environ.items() if k != "REMAP_SIGTERM"}
        self.env.update(
            CELERY_BROKER_URL=broker_url,
            BENCH_QUEUE=self.queue,
            BROKER_NAMESPACE=namespace_of(self.queue),
            BENCH_VARIANT=variant,
            BENCH_PACKAGE=self.package,
            BENCH_REDIS_URL=self.ledger.url,
            PYTHONPATH=str(Path.cwd()),
            TMPDIR=str(directory),
            PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
        )
        self.producer = Celery("producer", broker=broker_url)
        self.producer.conf.task_default_queue = self.queue
        self.workers: list[subprocess.Popen[bytes]] = []
        self.task_ids: dict[str, str] = {}

    def configure(self, **extra: str) -> None:
        """Add ``extra`` to the workers' environment; the service reads its own on top."""
        from importlib import import_module

        from tests.support.workers import deployed_environment

        self.env.update(extra)
        if self.variant == "service":
            self.env.update(deployed_environment())
            self.env.update(SERVICE_ENV, REDIS_URL=self.ledger.url)
            # Publish as the service does: its queue (a quorum queue on RabbitMQ, whose
            # arguments every declaration must repeat), exchange and confirmation settings.
            config = import_module(f"{self.package}.core.config").from_env(self.env)
            settings = import_module(f"{self.package}.core.celery_settings").celery_settings(config)
            self.producer.conf.update(settings)

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.ledger.url, decode_responses=True, socket_timeout=5)

    def start_workers(self) -> None:
        from tests.support.workers import deployed_command

        hostnames = []
        for _ in range(WORKERS):
            hostname = f"bench-{uuid.uuid4().hex[:8]}@faults"
            if self.variant == "service":
                command = [*deployed_command(), "--include", "bench_app"]
            else:
                command = ["celery", "-A", "bench_app", "worker", "--loglevel=WARNING"]
                command += ["--without-mingle", "--without-gossip", "--concurrency", CONCURRENCY]
            log = (self.directory / f"{hostname}.log").open("wb")
            self.workers.append(
                subprocess.Popen(
                    [*command, "--hostname", hostname],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            hostnames.append(hostname)
        for hostname in hostnames:
            wait(
                lambda h=hostname: self.producer.control.ping(destination=[h], timeout=0.3),
                60,
                f"worker {hostname}",
            )

    def send(self, task: str, item: str, *args: Any) -> None:
        self.task_ids[item] = self.producer.send_task(task, args=[item, *args]).id

    def ledger_runs(self, client: Any, items: list[str]) -> dict[str, list[dict[str, str]]]:
        """Every recorded run of each item."""
        with client.pipeline() as pipe:
            for item in items:
                pipe.lrange(f"bench:item:{item}", 0, -1)
            run_ids = pipe.execute()
        with client.pipeline() as pipe:
            for runs in run_ids:
                for run in runs:
                    pipe.hgetall(f"bench:run:{run}")
            hashes = iter(pipe.execute())
        return {
            item: [next(hashes) for _ in runs] for item, runs in zip(items, run_ids, strict=True)
        }

    def dead_letter_count(self, client: Any) -> int:
        """How many messages the service's store holds, without listing them (cheap to poll)."""
        if self.variant != "service":
            return 0
        if self.broker == "redis":
            return int(client.llen(f"dead_letters:{self.queue}"))
        with self.producer.connection_for_write() as connection:
            declared = connection.default_channel.queue_declare(
                f"{self.queue}.dead_letters", passive=True
            )
            return int(declared.message_count)

    def dead_letters(self) -> list[dict[str, Any]] | None:
        """The service's dead letters, as its command lists them; None for the others."""
        if self.variant != "service":
            return None
        command = f"{self.package}.core.dead_letters"
        listed = subprocess.run(
            [sys.executable, "-m", command, "--queue", QUEUE_NAME, "list"],
            env=self.env,
            capture_output=True,
            text=True,
        )
        if listed.returncode:
            raise RuntimeError(f"dead_letters list failed: {listed.stderr}")
        return [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]

    def settle(
        self, items: list[str], fault_end: float, quiet: float | None = None
    ) -> dict[str, Any]:
        """Wait until each item completed or was dead-lettered, or nothing moved for ``quiet`` s."""
        quiet = QUIET[self.variant] if quiet is None else quiet
        items = [item for item in items if item not in self.raised]
        import redis

        client = self.client()
        state: tuple[int, int, int] = (-1, -1, 0)
        changed = time.monotonic()
        last_letter = fault_end
        while time.monotonic() - changed < quiet:
            if time.monotonic() - fault_end > DEADLINE:
                break
            try:
                runs = self.ledger_runs(client, items)
                letters = self.dead_letter_count(client)
            except redis.RedisError:  # the ledger is still loading its AOF
                time.sleep(0.5)
                continue
            completed = sum(1 for item in items if any("end" in run for run in runs[item]))
            now = (sum(map(len, runs.values())), completed, letters)
            if now != state:
                if letters > state[2]:
                    last_letter = time.time()
                state, changed = now, time.monotonic()
            if completed + letters >= len(items):
                break
            time.sleep(0.5)
        runs = self.ledger_runs(client, items)
        self.stop_workers()
        row = count(items, runs, self.dead_letters(), self.task_ids, fault_end, last_letter)
        return {**row, "raised": len(self.raised)}

    def stop_workers(self) -> None:
        # Everything is counted: SIGKILL is quickest and the queue is deleted afterwards.
        for process in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self.workers = []

    def close(self) -> None:
        self.stop_workers()
        self.servers.close()
        if self.broker == "rabbitmq":
            with self.producer.connection_for_write() as connection:
                channel = connection.default_channel
                channel.queue_delete(self.queue)
                channel.queue_delete(f"{self.queue}.dead_letters")

    def settings(self) -> str:
        if self.variant == "defaults":
            return "Celery's defaults (early ack, prefetch 4, no retries)"
        if self.variant == "article":
            return ARTICLE_SETTINGS
        from importlib import import_module

        config = import_module(f"{self.package}.core.config").from_env(self.env)
        broker = import_module(f"{self.package}.core.broker")
        visibility = getattr(broker, "visibility_timeout", None)
        shown = {k: self.env[k] for k in ("ECS_STOP_TIMEOUT", *SERVICE_ENV)}
        return (
            f"task definition's command and environment, {shown}; so max_retries "
            f"{config.max_retries}, delivery limit {config.delivery_limit}, time limits "
            f"{config.soft_time_limit:g}/{config.time_limit:g} s"
            + (f", visibility {visibility(config):g} s" if self.broker == "redis" else "")
        )


def count(
    items: list[str],
    runs: dict[str, list[dict[str, str]]],
    letters: list[dict[str, Any]] | None,
    task_ids: dict[str, str],
    fault_end: float,
    last_letter: float,
) -> dict[str, Any]:
    completions = {item: sum(1 for run in runs[item] if "end" in run) for item in items}
    ours = {task_ids[item]: item for item in items}
    lettered = {
        ours[letter["id"]]: letter["reason"] for letter in letters or [] if letter["id"] in ours
    }
    ends = [float(run["end"]) for item in items for run in runs[item] if "end" in run]
    last = max([*ends, last_letter if lettered else 0.0], default=None)
    return {
        "sent": len(items),
        "lost": sum(1 for item in items if not completions[item] and item not in lettered),
        "dead_lettered": None if letters is None else len(lettered),
        "reasons": dict(Counter(lettered.values())),
        "duplicated": sum(1 for item in items if completions[item] > 1),
        "cut": sum(1 for item in items for run in runs[item] if "end" not in run),
        "drain": None if not last else max(0.0, last - fault_end),
    }


def wait(condition: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


def durations() -> list[float]:
    step = (LONGEST - SHORTEST) / (TASKS - 1)
    values = [round(SHORTEST + index * step, 3) for index in range(TASKS)]
    random.Random(7).shuffle(values)
    return values


def under_load(run: Run, task: str, fault: Callable[[], None], extra_args: bool = False) -> dict:
    """Publish TASKS tasks, run ``fault`` once a quarter completed, settle, count."""
    items = [uuid.uuid4().hex for _ in range(TASKS)]
    for row, (item, seconds) in enumerate(zip(items, durations(), strict=True), start=1):
        run.send(task, item, *((row, seconds) if extra_args else (seconds,)))
    client = run.client()

    def quarter() -> bool:
        runs = run.ledger_runs(client, items)
        return sum(1 for item in items if any("end" in r for r in runs[item])) >= TASKS // 4

    wait(quarter, 120, "a quarter of the tasks")
    fault()
    return run.settle(items, time.time())


def redis_scenario(run: Run) -> dict:
    run.configure()
    run.start_workers()

    def outage() -> None:
        run.ledger.kill()
        time.sleep(OUTAGE)  # the outage itself
        run.ledger.start()

    return under_load(run, "bench.work", outage)


def database_scenario(run: Run) -> dict:
    from sqlalchemy import create_engine, text
    from tests.support.private_services import private_postgres

    with private_postgres() as database:
        database.start()
        engine = create_engine(database.url)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE bench_rows (id int PRIMARY KEY, value text)"))
            connection.execute(
                text("INSERT INTO bench_rows SELECT i, 'row ' || i FROM generate_series(1, :n) i"),
                {"n": TASKS},
            )
        engine.dispose()
        run.configure(DATABASE_URL=database.url, BENCH_DATABASE_URL=database.url)
        run.start_workers()

        def outage() -> None:
            database.stop()
            time.sleep(OUTAGE)  # the outage itself
            database.start()

        return under_load(run, "bench.read_row", outage, extra_args=True)


def bad_messages_scenario(run: Run) -> dict:
    from importlib import import_module

    run.configure()
    run.start_workers()
    message_id = import_module(f"{run.package}.core.dead_letters").message_id
    json_type = {"content_type": "application/json", "content_encoding": "utf-8"}
    headers = {"lang": "py", "argsrepr": "()", "kwargsrepr": "{}", "retries": 0}
    empty = b'[[], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'
    headerless = b'{"hello": "not a task"}'
    kinds = {
        "malformed-json": (b'[["unterminated', {"task": "bench.work"}, json_type),
        "pickle": (
            pickle.dumps([["x", 0.1], {}, {}]),
            {"task": "bench.work"},
            {"content_type": "application/x-python-serialize", "content_encoding": "binary"},
        ),
        "unknown-task": (empty, {"task": "bench.no_such_task"}, json_type),
        "no-headers": (headerless, None, json_type),
    }
    queue = run.producer.amqp.queues[run.queue]
    with run.producer.connection_for_write() as connection:
        publisher = connection.Producer()
        for kind, (body, task, properties) in kinds.items():
            task_id = uuid.uuid4().hex
            sent = {**headers, **task, "id": task_id} if task else {}
            run.task_ids[kind] = task_id if task else message_id({}, {}, body)
            publisher.publish(
                body,
                exchange=queue.exchange,
                routing_key=queue.routing_key,
                headers=sent,
                declare=[queue],
                **properties,
            )
    published = time.time()
    # A good task behind them: once it ran, the worker has handled every bad one.
    sentinel = uuid.uuid4().hex
    run.send("bench.work", sentinel, 0.1)
    client = run.client()
    wait(lambda: run.ledger_runs(client, [sentinel])[sentinel], 60, "the task behind them")
    # Nothing retries a bad message: once the task behind them ran, they were all handled.
    return run.settle(list(kinds), published, quiet=3.0)


def broker_scenario(run: Run) -> dict:
    run.configure()
    run.start_workers()
    items = [uuid.uuid4().hex for _ in range(TASKS)]
    outage = threading.Thread(target=run.broker_outage)
    for row, (item, seconds) in enumerate(zip(items, durations(), strict=True)):
        if row == TASKS // 4:
            outage.start()
        try:
            run.send("bench.work", item, seconds)
        except Exception:  # what the producer is told: counted as raised, not as lost
            run.raised.add(item)
        time.sleep(PUBLISH_EVERY)  # the producer's pace, not a wait for something
    outage.join()
    return run.settle(items, time.time())


SCENARIO_RUNNERS = {
    "redis": redis_scenario,
    "database": database_scenario,
    "bad-messages": bad_messages_scenario,
    "broker": broker_scenario,
}


@contextlib.contextmanager
def broker_for(
    broker: str, scenario: str, directory: Path
) -> Iterator[tuple[str, Callable[[], None]]]:
    """The broker URL of a scenario, and how to make that broker fail for BROKER_OUTAGE s."""
    from tests.support.private_services import private_rabbitmq, private_redis

    if broker == "rabbitmq" and scenario != "broker":
        yield RABBITMQ_URL, lambda: None
        return
    if broker == "rabbitmq":
        with private_rabbitmq("bench-faults") as node:

            def stop_app() -> None:
                node.stop_app()
                time.sleep(BROKER_OUTAGE)  # the outage itself
                node.start_app()

            yield node.url, stop_app
        return
    with private_redis() as server:

        def kill() -> None:
            server.kill()
            time.sleep(BROKER_OUTAGE)  # the outage itself
            server.start()

        yield server.url, kill


def inner(broker: str, scenarios: list[str], variants: list[str]) -> None:
    sys.path.insert(0, str(Path.cwd()))  # the baked project's tests.support
    results: dict[str, Any] = {"settings": {}, "rows": {}}
    with tempfile.TemporaryDirectory(prefix="faults-") as scratch:
        directory = Path(scratch)
        for scenario in scenarios:
            with broker_for(broker, scenario, directory) as (broker_url, outage):
                for variant in variants:
                    where = directory / f"{scenario}-{variant}"
                    run = Run(broker, broker_url, variant, where, outage)
                    try:
                        row = SCENARIO_RUNNERS[scenario](run)
                        results["settings"][variant] = run.settings()
                    finally:
                        run.close()
                    results["rows"][f"{scenario}/{variant}"] = row
                    print(f"{broker} {scenario} {variant}: {row}", file=sys.stderr, flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inner", choices=BROKERS)
    parser.add_argument("--brokers", nargs="+", default=list(BROKERS), choices=BROKERS)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    arguments = parser.parse_args()
    if arguments.inner:
        inner(arguments.inner, arguments.scenarios, arguments.variants)
    else:
        outer(arguments.brokers, arguments.scenarios, arguments.variants)
