"""Deployment chaos: Celery's defaults vs the article's settings vs the rendered service.

Bakes the default project of each broker, then, for each configuration, starts K workers,
publishes N tasks of 0.5-10 s, and every P seconds does what an ECS deployment does: start a
replacement, SIGTERM the oldest worker's main process, SIGKILL its process group S seconds later
if it is still alive. Prints, side by side: tasks lost (not completed 60 s after the last
deployment), re-executions, overlapping runs, SIGKILLs and seconds from the last deployment until
every task completed. Then the drain throughput of no-op tasks, defaults vs the service, measured
in the same run.

    .venv/bin/python benchmarks/deployment_chaos.py [--brokers rabbitmq redis]

The service runs with a 1.5 s soft shutdown inside the 4 s stop timeout. Its tasks need a hard
time limit of 11 s, which the service only accepts with a stop timeout that fits it, so it is told
ECS_STOP_TIMEOUT=30 while this harness SIGKILLs after 4 s: a real deployment would either give the
task definition that stop timeout or split the 10 s tasks.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE.parent
REDIS_URL = "redis://localhost:6379/0"
BROKER_URLS = {"rabbitmq": "amqp://guest:guest@localhost:5672//", "redis": REDIS_URL}

TASKS = 30
WORKERS = 3
DEPLOYMENTS = 6
INTERVAL = 3.0
STOP_TIMEOUT = 4.0
DEADLINE = 60.0
NOOP_TASKS = 3000

VARIANTS = {
    "defaults": {},
    "article": {},
    "service": {
        "REMAP_SIGTERM": "SIGQUIT",
        "ECS_STOP_TIMEOUT": "30",
        "WORKER_SOFT_SHUTDOWN_TIMEOUT": "1.5",
        "TASK_SOFT_TIME_LIMIT": "10.5",
        "TASK_TIME_LIMIT": "11",
    },
}


def durations() -> list[float]:
    values = [round(0.5 + index * 9.5 / (TASKS - 1), 2) for index in range(TASKS)]
    random.Random(7).shuffle(values)
    return values


# --- outer: bake, install, re-run inside the baked project's environment -----------------------


def outer(brokers: list[str]) -> None:
    uv = Path(sys.executable).parent / "uv"
    from cookiecutter.main import cookiecutter  # noqa: PLC0415

    work = Path(tempfile.mkdtemp(prefix="chaos-"))
    try:
        results = {}
        for broker in brokers:
            project = Path(
                cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(work / broker),
                             extra_context={"broker": broker})
            )
            shutil.copy(HERE / "bench_app.py", project / "bench_app.py")
            env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))}
            subprocess.run([str(uv), "sync", "--locked", "--quiet"], cwd=project, env=env, check=True)
            out = subprocess.run(
                [str(project / ".venv/bin/python"), __file__, "--inner", broker],
                cwd=project, env=env, check=True, capture_output=True, text=True,
            )
            sys.stderr.write(out.stderr)
            results[broker] = json.loads(out.stdout.strip().splitlines()[-1])
        report(results)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(results: dict) -> None:
    print(f"\nDeployment chaos: {TASKS} tasks of 0.5-10 s, {WORKERS} workers x 1 process, "
          f"a deployment every {INTERVAL:g} s ({DEPLOYMENTS} in all), SIGKILL {STOP_TIMEOUT:g} s "
          "after SIGTERM\n")
    header = f"{'broker':9} {'settings':9} {'lost':>5} {'re-runs':>8} {'overlaps':>9} " \
             f"{'SIGKILLs':>9} {'drained after last deploy':>26}"
    print(header)
    print("-" * len(header))
    for broker, variants in results.items():
        for name, row in variants["chaos"].items():
            drained = f"{row['drain']:.1f} s" if row["drain"] is not None else \
                f"not within {DEADLINE:g} s"
            print(f"{broker:9} {name:9} {row['lost']:>5} {row['reruns']:>8} {row['overlaps']:>9} "
                  f"{row['sigkills']:>9} {drained:>26}")
    print(f"\nDrain throughput of {NOOP_TASKS} no-op tasks, 1 worker x 2 processes, same run:\n")
    print(f"{'broker':9} {'defaults':>12} {'service':>12} {'ratio':>7}")
    for broker, variants in results.items():
        base, ours = variants["throughput"]["defaults"], variants["throughput"]["service"]
        print(f"{broker:9} {base:>8.0f} t/s {ours:>8.0f} t/s {ours / base:>6.2f}x")


# --- inner: runs inside the baked project's environment ------------------------------------------


def inner(broker: str) -> None:
    import redis  # noqa: PLC0415
    from celery import Celery  # noqa: PLC0415

    package = json.loads(Path(".cookiecutter.json").read_text())["package_name"]
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    results = {"chaos": {}, "throughput": {}}
    for variant, extra in VARIANTS.items():
        queue = f"bench-{uuid.uuid4().hex[:10]}"
        env = base_env(broker, queue, package, variant, extra)
        producer = Celery("producer", broker=BROKER_URLS[broker])
        producer.conf.task_default_queue = queue
        results["chaos"][variant] = chaos(producer, client, env)
        if variant in ("defaults", "service"):
            throughput_env = {**env, "WORKER_CONCURRENCY": "2"}
            results["throughput"][variant] = throughput(producer, client, throughput_env)
        cleanup(producer, queue, broker)
        print(f"{broker} {variant}: {results['chaos'][variant]}", file=sys.stderr)
    print(json.dumps(results))


def base_env(broker: str, queue: str, package: str, variant: str, extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "REMAP_SIGTERM"}
    env.update(
        CELERY_BROKER_URL=BROKER_URLS[broker], REDIS_URL=REDIS_URL, BENCH_REDIS_URL=REDIS_URL,
        TASK_DEFAULT_QUEUE=queue, BENCH_VARIANT=variant, BENCH_PACKAGE=package,
        WORKER_CONCURRENCY="1", PYTHONPATH=str(Path.cwd()),
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
    )
    env.update(extra)
    return env


def start_worker(env: dict, concurrency: str = "1") -> tuple[subprocess.Popen, str]:
    hostname = f"bench-{uuid.uuid4().hex[:8]}@chaos"
    command = ["celery", "-A", "bench_app", "worker", "--loglevel=WARNING", "--without-mingle",
               "--without-gossip", "--concurrency", concurrency, "--hostname", hostname]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
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
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def runs_of(client, item: str) -> list[dict]:
    runs = [client.hgetall(f"bench:run:{run}") for run in client.lrange(f"bench:item:{item}", 0, -1)]
    return sorted(runs, key=lambda run: float(run["start"]))


def chaos(producer, client, env: dict) -> dict:
    workers = []
    for _ in range(WORKERS):
        workers.append(start_worker(env))
    for _, hostname in workers:
        wait_ready(producer, hostname)
    items = [uuid.uuid4().hex for _ in range(TASKS)]
    for item, seconds in zip(items, durations(), strict=True):
        producer.send_task("bench.work", args=[item, seconds])
    kills: list = []
    stoppers = []
    for _ in range(DEPLOYMENTS):
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
            overlaps += sum(1 for later in item_runs[index + 1:] if float(later["start"]) < ended)
    ends = [float(run["end"]) for item_runs in runs.values() for run in item_runs if "end" in run]
    return {
        "lost": TASKS - len(completed),
        "reruns": sum(len(item_runs) for item_runs in runs.values()) - len(
            [item for item in items if runs[item]]),
        "overlaps": overlaps,
        "sigkills": len(kills),
        "drain": max(0.0, max(ends) - last_deployment) if len(completed) == TASKS else None,
    }


def throughput(producer, client, env: dict) -> float:
    item = uuid.uuid4().hex
    with producer.producer_or_acquire() as publisher:
        for _ in range(NOOP_TASKS):
            producer.send_task("bench.noop", args=[item], producer=publisher)
    process, hostname = start_worker(env, concurrency=env["WORKER_CONCURRENCY"])
    wait_ready(producer, hostname)
    started = time.monotonic()
    count_at_start = int(client.get(f"bench:noop:{item}") or 0)
    while int(client.get(f"bench:noop:{item}") or 0) < NOOP_TASKS:
        if time.monotonic() - started > 300:
            raise RuntimeError("no-op drain did not finish")
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    stop_like_ecs(process, [])
    return (NOOP_TASKS - count_at_start) / elapsed


def cleanup(producer, queue: str, broker: str) -> None:
    with producer.connection_for_write() as connection:
        channel = connection.default_channel
        if broker == "rabbitmq":
            channel.queue_delete(queue)
        else:
            channel.queue_purge(queue)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inner", choices=list(BROKER_URLS))
    parser.add_argument("--brokers", nargs="+", default=list(BROKER_URLS), choices=list(BROKER_URLS))
    arguments = parser.parse_args()
    if arguments.inner:
        inner(arguments.inner)
    else:
        outer(arguments.brokers)
