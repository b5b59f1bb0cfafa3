"""What the broker fault tests share: an app on a private broker, a producer process, the tally.

Every task a fault test sends is accounted for: completed (a probe run recorded its end), or
listed with its reason by the dead-letter CLI; anything else is missing.
"""

import base64
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from {{ cookiecutter.package_name }}.core import config
from {{ cookiecutter.package_name }}.core.celery_settings import celery_settings

from .runs import runs_of
from .workers import PROJECT


def private_app(env: Mapping[str, str]) -> Celery:
    """A client app configured like the service from ``os.environ`` plus ``env`` (its broker)."""
    app = Celery("faults", set_as_current=False)
    app.conf.update(celery_settings(config.from_env({**os.environ, **env})))
    return app


def _environment(env: Mapping[str, str]) -> dict[str, str]:
    return {**os.environ, **env, "PYTHONPATH": str(PROJECT)}


def start_producer(
    env: Mapping[str, str], prefix: str, count: int, pause: float, log: Path
) -> subprocess.Popen[bytes]:
    """Start ``tests.support.producer`` publishing ``count`` probe tasks; it writes to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.producer", prefix, str(count), str(pause)],
            cwd=PROJECT,
            env=_environment(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def outcomes(log: Path) -> list[dict[str, Any]]:
    """The producer's publishes so far, one per line it printed."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def dead_letters(env: Mapping[str, str]) -> list[dict[str, Any]]:
    """The dead letters of the test queue, read by the service's own CLI."""
    done = subprocess.run(
        [sys.executable, "-m", "{{ cookiecutter.package_name }}.core.dead_letters", "list"],
        cwd=PROJECT,
        env=_environment(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@dataclass
class Tally:
    completed: set[str]
    #: Item -> the reason it was dead-lettered.
    dead_lettered: dict[str, str]
    missing: set[str]
    #: Items whose run completed more than once.
    duplicated: set[str]

    def figures(self) -> str:
        return (
            f"completed={len(self.completed)} dead_lettered={len(self.dead_lettered)} "
            f"missing={len(self.missing)} duplicated={len(self.duplicated)}"
        )


def completed_items(client: redis.Redis, items: list[str]) -> set[str]:
    return {item for item in items if any(run.completed for run in runs_of(client, item))}


def tally(client: redis.Redis, items: list[str], env: Mapping[str, str]) -> Tally:
    """Account for every item: completed, dead-lettered with a reason, or missing."""
    completed = completed_items(client, items)
    dead = {
        letter["args"][0]: letter["reason"]
        for letter in dead_letters(env)
        if letter["args"] and letter["args"][0] in items
    }
    runs = {item: runs_of(client, item) for item in items}
    duplicated = {item for item, found in runs.items() if sum(r.completed for r in found) > 1}
    missing = set(items) - completed - set(dead)
    return Tally(completed, dead, missing, duplicated)


def unacked_items(client: redis.Redis) -> set[str]:
    """Items of the probe tasks in kombu's ``unacked`` hash: delivered, not yet acknowledged."""
    items = set()
    for raw in client.hvals("unacked"):
        message = json.loads(raw)[0]
        args = json.loads(base64.b64decode(message["body"]))[0]
        if args:
            items.add(str(args[0]))
    return items
