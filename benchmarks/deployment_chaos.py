"""Deployment chaos: Celery's defaults vs the article's settings vs the rendered service.

Bakes the default project of each broker, then, for each configuration and workload, starts 3
workers, publishes the tasks, and every 3 s does what an ECS deployment does: start a replacement,
SIGTERM the oldest worker's main process, SIGKILL its process group 4 s later if it is still alive.
Prints, side by side: tasks lost (not completed 60 s after the last deployment), re-executions,
overlapping runs, SIGKILLs, and seconds from the last deployment until every task had completed.
Then the drain throughput of no-op tasks, Celery's defaults vs the service, in the same run.

    .venv/bin/python benchmarks/deployment_chaos.py [--brokers rabbitmq redis]

Two workloads: "short" tasks that fit the 4 s stop window (the service runs exactly as it would be
configured for them), and the article's "long" tasks of up to 10 s (see WORKLOADS for how the
service is set up for those).
"""

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from baking import each_broker, namespace_of, run_queue

REDIS_URL = "redis://localhost:6379/0"
BROKER_URLS = {"rabbitmq": "amqp://guest:guest@localhost:5672//", "redis": REDIS_URL}

WORKERS = 3
INTERVAL = 3.0
STOP_TIMEOUT = 4.0
DEADLINE = 60.0
NOOP_TASKS = 3000
THROUGHPUT_ROUNDS = 3


@dataclass(frozen=True)
class Workload:
    name: str
    tasks: int
    shortest: float
    longest: float
    deployments: int
    #: Environment of the rendered service for this workload (its time limits must admit the tasks).
    service_env: dict[str, str]

    def durations(self) -> list[float]:
        step = (self.longest - self.shortest) / (self.tasks - 1)
        values = [round(self.shortest + index * step, 2) for index in range(self.tasks)]
        random.Random(7).shuffle(values)
        return values


WORKLOADS = [
    # Every task fits the 4 s stop window, so the service runs exactly as configured for it:
    # ECS_STOP_TIMEOUT=4, shutdown window 2 s, hard limit 2 s. The longest task
    # stays well below the soft limit: a task cut off by its time limit is not "lost".
    Workload(
        "short",
        tasks=30,
        shortest=0.2,
        longest=1.5,
        deployments=6,
        service_env={
            "ECS_STOP_TIMEOUT": f"{STOP_TIMEOUT:g}",
            "TASK_SOFT_TIME_LIMIT": "1.9",
            "TASK_TIME_LIMIT": "2",
        },
    ),
    # The article's workload: tasks up to 10 s, longer than the stop window. The service needs
    # a 12 s hard limit for them, which its check only admits with ECS_STOP_TIMEOUT >= 24, so
    # it is told 30 while this harness still SIGKILLs after 4 s; its 1.5 s shutdown window fits.
    Workload(
        "long",
        tasks=30,
        shortest=0.5,
        longest=10.0,
        deployments=10,
        service_env={
            "ECS_STOP_TIMEOUT": "30",
            "WORKER_SOFT_SHUTDOWN_TIMEOUT": "1.5",
            "TASK_SOFT_TIME_LIMIT": "11",
            "TASK_TIME_LIMIT": "12",
        },
    ),
]
VARIANTS = ("defaults", "article", "service")


# --- outer: bake, install, re-run inside the baked project's environment -----------------------


def outer(brokers: list[str], parts: list[str]) -> None:
    report(each_broker(__file__, brokers, "--parts", *parts))


def report(results: dict) -> None:
    print(
        f"\nDeployment chaos: {WORKERS} workers x 1 process, a deployment every {INTERVAL:g} s "
        f"(replacement started, oldest worker SIGTERMed), SIGKILL {STOP_TIMEOUT:g} s after SIGTERM."
    )
    for workload in WORKLOADS if all(v["chaos"] for v in results.values()) else []:
        print(
            f"\n{workload.name}: {workload.tasks} tasks of "
            f"{workload.shortest:g}-{workload.longest:g} s, {workload.deployments} deployments; "
            f"service env {workload.service_env}\n"
        )
        header = (
            f"{'broker':9} {'settings':9} {'lost':>5} {'re-runs':>8} {'overlaps':>9} "
            f"{'SIGKILLs':>9} {'drained after last deployment':>30}"
        )
        print(header)
        print("-" * len(header))
        for broker, variants in results.items():
            for variant in VARIANTS:
                row = variants["chaos"][f"{workload.name}/{variant}"]
                drained = (
                    f"{row['drain']:.1f} s"
                    if row["drain"] is not None
                    else f"not within {DEADLINE:g} s"
                )
                print(
                    f"{broker:9} {variant:9} {row['lost']:>5} {row['reruns']:>8} "
                    f"{row['overlaps']:>9} {row['sigkills']:>9} {drained:>30}"
                )
    if not all(v["throughput"] for v in results.values()):
        return
    print(
        f"\nDrain throughput of {NOOP_TASKS} no-op tasks, 1 worker x 2 processes, best of "
        f"{THROUGHPUT_ROUNDS} alternating rounds in the same run:\n"
    )
    print(f"{'broker':9} {'defaults':>12} {'service':>12} {'service/defaults':>17}")
    for broker, variants in results.items():
        base, ours = variants["throughput"]["defaults"], variants["throughput"]["service"]
        print(f"{broker:9} {base:>8.0f} t/s {ours:>8.0f} t/s {ours / base:>16.2f}x")


# --- inner: runs inside the baked project's environment ------------------------------------------


def inner(broker: str, parts: list[str]) -> None:
    from importlib import import_module

    import redis
    from celery import Celery

    package = json.loads(Path(".cookiecutter.json").read_text())["package_name"]
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    results: dict = {"chaos": {}, "throughput": {}}

    def session(variant: str, extra: dict) -> tuple:
        queue = run_queue("bench")
        env = base_env(broker, queue, package, variant, extra)
        producer = Celery("producer", broker=BROKER_URLS[broker])
        producer.conf.task_default_queue = queue
        if variant == "service":
            # Publish as the service does: its queue (a quorum queue on RabbitMQ, whose
            # arguments every declaration must repeat), exchange and confirmation settings.
            config = import_module(f"{package}.core.config").from_env(env)
            settings = import_module(f"{package}.core.celery_settings").celery_settings(config)
            producer.conf.update(settings)
        return producer, queue, env

    for workload in WORKLOADS if "chaos" in parts else []:
        for variant in VARIANTS:
            extra = workload.service_env if variant == "service" else {}
            producer, queue, env = session(variant, extra)
            row = chaos(producer, client, env, workload)
            results["chaos"][f"{workload.name}/{variant}"] = row
            cleanup(producer, queue, broker)
            print(f"{broker} {workload.name} {variant}: {row}", file=sys.stderr)
    # Alternating rounds, best of each: a passing load on the machine hits both sides alike.
    for variant in ("defaults", "service") * THROUGHPUT_ROUNDS if "throughput" in parts else ():
        extra = WORKLOADS[0].service_env if variant == "service" else {}
        producer, queue, env = session(variant, {**extra, "WORKER_CONCURRENCY": "2"})
        rate = throughput(producer, client, env)
        results["throughput"][variant] = max(rate, results["throughput"].get(variant, 0.0))
        cleanup(producer, queue, broker)
    print(json.dumps(results))


def base_env(broker: str, queue: str, package: str, variant: str, extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "REMAP_SIGTERM"}
    env.update(
        CELERY_BROKER_URL=BROKER_URLS[broker],
        REDIS_URL=REDIS_URL,
        BENCH_REDIS_URL=REDIS_URL,
        BENCH_QUEUE=queue,
        BROKER_NAMESPACE=namespace_of(queue),
        BENCH_VARIANT=variant,
        BENCH_PACKAGE=package,
        WORKER_CONCURRENCY="1",
        PYTHONPATH=str(Path.cwd()),
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
    )
    env.update(extra)
    return env


def start_worker(env: dict, concurrency: str = "1") -> tuple[subprocess.Popen, str]:
    hostname = f"bench-{uuid.uuid4().hex[:8]}@chaos"
    command = [
        "celery",
        "-A",
        "bench_app",
        "worker",
        "--loglevel=WARNING",
        "--without-mingle",
        "--without-gossip",
        "--concurrency",
        concurrency,
        "--hostname",
        hostname,
    ]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return process, hostname


def wait_ready(producer, hostname: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not producer.control.ping(destination=[hostname], timeout=0.3):
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker {hostname} did not start")


def stop_like_ecs(process: subprocess.Popen, kills: list) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        kills.append(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def runs_of(client, item: str) -> list[dict]:
    runs = [
        client.hgetall(f"bench:run:{run}") for run in client.lrange(f"bench:item:{item}", 0, -1)
    ]
    return sorted(runs, key=lambda run: float(run["start"]))


def chaos(producer, client, env: dict, workload: Workload) -> dict:
    workers = []
    for _ in range(WORKERS):
        workers.append(start_worker(env))
    for _, hostname in workers:
        wait_ready(producer, hostname)
    items = [uuid.uuid4().hex for _ in range(workload.tasks)]
    for item, seconds in zip(items, workload.durations(), strict=True):
        producer.send_task("bench.work", args=[item, seconds])
    kills: list = []
    stoppers = []
    for _ in range(workload.deployments):
        time.sleep(INTERVAL)  # the deployment cadence under test, not a wait for a condition
        replacement = start_worker(env)
        process, _ = workers.pop(0)
        stopper = threading.Thread(target=stop_like_ecs, args=(process, kills))
        stopper.start()
        stoppers.append(stopper)
        workers.append(replacement)
    last_deployment = time.time()
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if all(any("end" in run for run in runs_of(client, item)) for item in items):
            break
        time.sleep(0.2)
    for stopper in stoppers:
        stopper.join()
    for process, _ in workers:
        stop_like_ecs(process, [])
    runs = {item: runs_of(client, item) for item in items}
    completed = [item for item in items if any("end" in run for run in runs[item])]
    overlaps = 0
    for item_runs in runs.values():
        for index, earlier in enumerate(item_runs):
            ended = float(earlier.get("end", earlier["last"]))
            overlaps += sum(1 for later in item_runs[index + 1 :] if float(later["start"]) < ended)
    ends = [float(run["end"]) for item_runs in runs.values() for run in item_runs if "end" in run]
    return {
        "lost": workload.tasks - len(completed),
        "reruns": sum(len(item_runs) for item_runs in runs.values())
        - len([item for item in items if runs[item]]),
        "overlaps": overlaps,
        "sigkills": len(kills),
        "drain": max(0.0, max(ends) - last_deployment)
        if len(completed) == workload.tasks
        else None,
    }


def throughput(
    producer, client, env: dict, tasks: int = NOOP_TASKS, task: str = "bench.noop"
) -> float:
    """No-op tasks per second one worker drains, from when it answers until the last one ran."""
    item = uuid.uuid4().hex
    with producer.producer_or_acquire() as publisher:
        for _ in range(tasks):
            producer.send_task(task, args=[item], producer=publisher)
    process, hostname = start_worker(env, concurrency=env["WORKER_CONCURRENCY"])
    wait_ready(producer, hostname)
    started = time.monotonic()
    count_at_start = int(client.get(f"bench:noop:{item}") or 0)
    while int(client.get(f"bench:noop:{item}") or 0) < tasks:
        if time.monotonic() - started > 300:
            raise RuntimeError("no-op drain did not finish")
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    stop_like_ecs(process, [])
    return (tasks - count_at_start) / elapsed


def cleanup(producer, queue: str, broker: str) -> None:
    with producer.connection_for_write() as connection:
        channel = connection.default_channel
        if broker == "rabbitmq":
            channel.queue_delete(queue)
            channel.queue_delete(f"{queue}.dead_letters")
        else:
            channel.queue_purge(queue)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inner", choices=list(BROKER_URLS))
    parser.add_argument(
        "--parts", nargs="+", default=["chaos", "throughput"], choices=["chaos", "throughput"]
    )
    parser.add_argument(
        "--brokers", nargs="+", default=list(BROKER_URLS), choices=list(BROKER_URLS)
    )
    arguments = parser.parse_args()
    if arguments.inner:
        inner(arguments.inner, arguments.parts)
    else:
        outer(arguments.brokers, arguments.parts)
