"""Containers of the built image, run as ECS runs the task definition.

The image is the one named by IMAGE_UNDER_TEST; CI's image job builds it and runs the tests
marked ``image``, which are skipped without it. Each container gets what the task definition
declares for the worker: its user and environment, a read-only root file system with the /tmp
volume, an init as PID 1 and the stop timeout. The secrets point at this machine's broker, Redis
and a fresh PostgreSQL database, reached over the host's network as a task reaches its services.
"""

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.core import config

from .workers import deployed_environment, wait_for, worker_container

IMAGE = os.environ.get("IMAGE_UNDER_TEST", "")


def run_options(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """``docker run`` options for what the task definition declares of ``container``."""
    options = ["--user", container["user"], "--network", "host"]
    options += ["--stop-timeout", str(container["stopTimeout"])]
    if container.get("readonlyRootFilesystem"):
        options.append("--read-only")
    if container.get("linuxParameters", {}).get("initProcessEnabled"):
        options.append("--init")
    for mount in container.get("mountPoints", []):
        # A task volume with no host path: empty and writable, gone with the task.
        options += ["--tmpfs", mount["containerPath"]]
    for name, value in env.items():
        options += ["--env", f"{name}={value}"]
    return options


def docker(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    program = shutil.which("docker")
    assert program, "IMAGE_UNDER_TEST is set, but there is no docker command"
    return subprocess.run(
        [program, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


class Task:
    """The worker's container definition, with the secrets this test session gives it."""

    def __init__(self, database_url: str) -> None:
        if not IMAGE:
            pytest.skip("IMAGE_UNDER_TEST is not set: build the image and name it there")
        self.container = worker_container()
        self.database_url = database_url
        current = config.current()
        secrets = {
            "CELERY_BROKER_URL": current.broker_url,
            "REDIS_URL": current.redis_url,
            "DATABASE_URL": database_url,
        }
        declared = {secret["name"] for secret in self.container.get("secrets", [])}
        assert declared == set(secrets), f"the tests need a value for each secret of {declared}"
        # The test session's broker namespace (conftest.py): no other worker takes its tasks.
        queue = {"BROKER_NAMESPACE": current.namespace}
        env = {**deployed_environment(self.container), **secrets, **queue}
        self.options = run_options(self.container, env)
        health = self.container["healthCheck"]
        assert health["command"][0] == "CMD", f"healthCheck={health!r}: the tests run CMD only"
        self.health_command = health["command"][1:]
        self.start_period = float(health["startPeriod"])
        self.stop_timeout = float(self.container["stopTimeout"])

    def run_once(self, *command: str) -> subprocess.CompletedProcess[str]:
        """A one-off task of this task definition with ``command`` (deploy/README.md)."""
        return docker("run", "--rm", *self.options, IMAGE, *command)

    def migrate(self) -> None:
        result = self.run_once("alembic", "upgrade", "head")
        assert result.returncode == 0, result.stdout + result.stderr

    @contextlib.contextmanager
    def worker(self) -> Iterator["Worker"]:
        """A worker container with the task definition's command, healthy; removed afterwards."""
        name = f"worker-{uuid.uuid4().hex[:12]}"
        command = self.container["command"]
        started = docker("run", "--detach", "--name", name, *self.options, IMAGE, *command)
        assert started.returncode == 0, started.stderr
        worker = Worker(name, self)
        try:
            wait_for(worker.healthy, self.start_period, "the health check to pass", interval=0.5)
            yield worker
        finally:
            docker("rm", "--force", name)


class Worker:
    def __init__(self, name: str, task: Task) -> None:
        self.name = name
        self.task = task

    def healthy(self) -> bool:
        return docker("exec", self.name, *self.task.health_command).returncode == 0

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.name, *command)

    def stop(self) -> tuple[str, float]:
        """``docker stop``: SIGTERM to the init, which hands it to the worker; SIGKILL after the
        stop timeout. Returns the exit code and the seconds it took."""
        timeout = self.task.stop_timeout
        began = time.monotonic()
        stopped = docker("stop", "--time", str(int(timeout)), self.name, timeout=timeout + 60)
        seconds = time.monotonic() - began
        assert stopped.returncode == 0, stopped.stderr
        return docker("wait", self.name).stdout.strip(), seconds

    def logs(self) -> str:
        result = docker("logs", self.name)
        return result.stdout + result.stderr
