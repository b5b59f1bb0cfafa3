"""Stop time: seconds from ECS's SIGTERM to the worker's exit, busy and idle, side by side.

Bakes the default project of each broker, then for Celery's defaults, the article's settings and
the rendered service (its default answers: a 120 s stop timeout) starts one worker of one
process and stops it as ECS does (SIGTERM to the main process, SIGKILL to the group after 120 s):
once while a task of TASK_SECONDS runs (stopped 1 s into it) and once idle. Prints the stop time,
what the running task still needed, and whether that task completed exactly once.

    .venv/bin/python benchmarks/stop_time.py [--brokers rabbitmq redis]
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from baking import command_line, each_broker, run_queue
from deployment_chaos import BROKER_URLS, REDIS_URL, base_env, cleanup, runs_of, start_worker
from deployment_chaos import wait_ready as wait_until_ready

STOP_TIMEOUT = 120.0
TASK_SECONDS = 3.0
#: The busy worker is stopped this far into its task.
INTO_TASK = 1.0
VARIANTS = ("defaults", "article", "service")


def outer(brokers: list[str]) -> None:
    report(each_broker(__file__, brokers))


def report(results: dict) -> None:
    print(
        f"\nStop time: 1 worker x 1 process, SIGTERM to the main process, SIGKILL after "
        f"{STOP_TIMEOUT:g} s; busy = stopped {INTO_TASK:g} s into a {TASK_SECONDS:g} s task.\n"
    )
    header = (
        f"{'broker':9} {'settings':9} {'busy stop':>10} {'task needed':>12} "
        f"{'task ran':>9} {'idle stop':>10}"
    )
    print(header)
    print("-" * len(header))
    for broker, variants in results.items():
        for variant in VARIANTS:
            row = variants[variant]
            ran = "once" if row["runs"] == 1 and row["completed"] else f"{row['runs']}x"
            ran += "" if row["completed"] else ", lost"
            killed = " (SIGKILL)" if row["busy_sigkilled"] or row["idle_sigkilled"] else ""
            print(
                f"{broker:9} {variant:9} {row['busy']:>8.1f} s {row['remaining']:>10.1f} s "
                f"{ran:>9} {row['idle']:>8.1f} s{killed}"
            )


# --- inner: runs inside the baked project's environment ------------------------------------------


def inner(broker: str) -> None:
    from importlib import import_module

    import redis
    from celery import Celery

    package = json.loads(Path(".cookiecutter.json").read_text())["package_name"]
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    results = {}
    for variant in VARIANTS:
        queue = run_queue("bench-stop")
        env = base_env(broker, queue, package, variant, {})
        producer = Celery("producer", broker=BROKER_URLS[broker])
        producer.conf.task_default_queue = queue
        if variant == "service":
            config = import_module(f"{package}.core.config").from_env(env)
            settings = import_module(f"{package}.core.celery_settings").celery_settings(config)
            producer.conf.update(settings)
        row = busy_stop(producer, client, env)
        row.update(idle_stop(producer, env))
        results[variant] = row
        cleanup(producer, queue, broker)
        print(f"{broker} {variant}: {row}", file=sys.stderr)
    print(json.dumps(results))


def stop(process: subprocess.Popen) -> tuple[float, bool]:
    """SIGTERM, SIGKILL the group after STOP_TIMEOUT; the seconds to exit and whether killed."""
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
        killed = False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        killed = True
    seconds = time.monotonic() - began
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return seconds, killed


def busy_stop(producer, client, env: dict) -> dict:
    process, hostname = start_worker(env)
    wait_until_ready(producer, hostname)
    item = uuid.uuid4().hex
    producer.send_task("bench.work", args=[item, TASK_SECONDS])
    deadline = time.monotonic() + 30
    while not runs_of(client, item):
        if time.monotonic() > deadline:
            raise RuntimeError("the task did not start")
        time.sleep(0.02)
    started = float(runs_of(client, item)[0]["start"])
    while time.time() < started + INTO_TASK:  # the moment of the stop, not a wait for a condition
        time.sleep(0.01)
    remaining = TASK_SECONDS - (time.time() - started)
    seconds, killed = stop(process)
    # A task the stop handed back runs on the next worker; give it the time to.
    replacement, other = start_worker(env)
    wait_until_ready(producer, other)
    deadline = time.monotonic() + 30
    while not any("end" in run for run in runs_of(client, item)):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    stop(replacement)
    runs = runs_of(client, item)
    return {
        "busy": seconds,
        "remaining": remaining,
        "busy_sigkilled": killed,
        "runs": len(runs),
        "completed": any("end" in run for run in runs),
    }


def idle_stop(producer, env: dict) -> dict:
    process, hostname = start_worker(env)
    wait_until_ready(producer, hostname)
    seconds, killed = stop(process)
    return {"idle": seconds, "idle_sigkilled": killed}


if __name__ == "__main__":
    command_line(__doc__, inner, outer)
