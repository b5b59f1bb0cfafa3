"""Fan-out publish rate: a plain ``apply_async`` loop vs the service's fan-out, both confirmed.

    uv run python benchmarks/fan_out.py [--users 100000] [--plain-users N] [--database-url URL]

Seeds the users into a fresh SQLite database (or empties and seeds ``--database-url``), then, on
the broker of ``CELERY_BROKER_URL`` and a queue of its own, measures in one run:

- plain: ``send_newsletter_to_user.apply_async`` once per user (the users streamed from the
  database), Celery's own publishing path: the broker confirms each message before the next;
- fan-out: the ``send_newsletter_fan_out`` task itself (``Task.apply``: its code, lock, progress
  and completion marker, without a worker), for a tenth of the users and for all of them, with the
  peak memory of the process beyond what it held before the task started.

Each measurement runs in a process of its own; the messages it published are counted in the
queue, which is then emptied. Prints a table and, last, one line of JSON.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import delete, insert, select

from {{ cookiecutter.package_name }}.celery_app import app
from {{ cookiecutter.package_name }}.core import broker, config, db
from {{ cookiecutter.package_name }}.core.runs import derived_id
from {{ cookiecutter.package_name }}.models import Base, User
from {{ cookiecutter.package_name }}.tasks.newsletter import (
    send_newsletter_fan_out,
    send_newsletter_to_user,
)

PROJECT = Path(__file__).resolve().parents[1]


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure(method: str, users: int) -> dict[str, float]:
    """Run one method in this process (a child of ``main``); return its figures."""
    newsletter = f"bench-{uuid.uuid4().hex[:8]}"
    before = rss_kib()
    started = time.perf_counter()
    if method == "plain":
        run_id = uuid.uuid4().hex
        query = select(User.id).order_by(User.id).limit(users).execution_options(yield_per=1000)
        with db.session() as session:
            for user_id in session.scalars(query):
                task_id = derived_id(run_id, f"{send_newsletter_to_user.name}/{user_id}")
                send_newsletter_to_user.apply_async((newsletter, user_id), task_id=task_id)
    else:
        send_newsletter_fan_out.apply((newsletter,), task_id=uuid.uuid4().hex, throw=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_growth_kib": max(0, peak - before), "peak_kib": peak}


def queue_size_and_empty() -> int:
    queue = config.current().broker_queue()
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        size = int(channel.queue_declare(queue, passive=True).message_count)
        channel.queue_purge(queue)
        channel.queue_delete(queue)
    return size


def seed(users: int) -> None:
    Base.metadata.create_all(db.sessions().kw["bind"])
    with db.session() as session:
        session.execute(delete(User))
        for start in range(1, users + 1, 10_000):
            rows = [
                {"id": i, "email": f"user{i}@example.com"}
                for i in range(start, min(start + 10_000, users + 1))
            ]
            session.execute(insert(User), rows)


def seed_child(users: int, env: dict[str, str]) -> None:
    command = [sys.executable, __file__, "--seed", "--users", str(users)]
    subprocess.run(command, env=env, cwd=PROJECT, check=True)


def run_child(method: str, users: int, env: dict[str, str]) -> dict[str, float]:
    namespace = f"bench-fan-out-{uuid.uuid4().hex[:8]}"
    out = subprocess.run(
        [sys.executable, __file__, "--measure", method, "--users", str(users)],
        env={**env, "BROKER_NAMESPACE": namespace},
        cwd=PROJECT,
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    figures["users"] = users
    figures["rate"] = users / figures["seconds"]
    if figures["queued"] != users:
        raise RuntimeError(f"{method}: {figures['queued']} messages queued for {users} users")
    return figures


def main(users: int, plain_users: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="fan-out-") as work:
        env = {
            **os.environ,
            "DATABASE_URL": database_url or f"sqlite:///{work}/bench.sqlite3",
            # Room for the whole fan-out in one task (it hands over at half the soft limit).
            "TASK_SOFT_TIME_LIMIT": "100",
            "TASK_TIME_LIMIT": "105",
        }
        seed_child(users // 10, env)
        small = run_child("fan-out", users // 10, env)
        seed_child(users, env)
        plain = run_child("plain", plain_users, env)
        full = run_child("fan-out", users, env)
    result = {"broker": broker.NAME, "plain": plain, "fan_out": full, "fan_out_small": small}
    result["ratio"] = full["rate"] / plain["rate"]
    print(
        f"{broker.NAME}: plain apply_async {plain['rate']:,.0f} children/s "
        f"({plain_users:,} users, {plain['seconds']:.1f} s); "
        f"fan-out {full['rate']:,.0f} children/s ({users:,} users, {full['seconds']:.1f} s), "
        f"{result['ratio']:.1f}x"
    )
    if small["users"]:
        print(
            f"fan-out peak memory growth: {small['peak_growth_kib'] / 1024:.1f} MiB for "
            f"{small['users']:,} users, {full['peak_growth_kib'] / 1024:.1f} MiB for {users:,}"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--plain-users", type=int, help="users of the plain loop (default all)")
    parser.add_argument("--database-url", help="a database to empty and seed (default SQLite)")
    parser.add_argument("--measure", choices=["plain", "fan-out"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.seed:
        seed(arguments.users)
    elif arguments.measure:
        figures = measure(arguments.measure, arguments.users)
        figures["queued"] = queue_size_and_empty()
        print(json.dumps(figures))
    else:
        main(arguments.users, arguments.plain_users or arguments.users, arguments.database_url)
