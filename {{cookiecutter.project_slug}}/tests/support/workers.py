"""Start real worker processes as ECS does, and stop them as ECS does.

The command and environment come from the queue's task definition
(``deploy/ecs/queues/<queue>/task-definition.json``), so the tests run the worker exactly as it
is deployed. Each worker gets a session (process group) of its own, like a container:
``stop_like_ecs`` sends SIGTERM to the main process only (ECS's init forwards the signal to its
one child) and SIGKILLs the whole group once the stop timeout has passed.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from {{ cookiecutter.package_name }}.core import config, deploy_files
from {{ cookiecutter.package_name }}.core.queues import Queue

PROJECT = Path(__file__).resolve().parents[2]
QUEUES = PROJECT / "deploy" / "ecs" / "queues"
BEAT_TASK_DEFINITION = PROJECT / "deploy" / "ecs" / "beat-task-definition.json"
PROBE_TASKS = "tests.support.probe_tasks"
#: The app the beat tests run: the service's, with a test's schedule (``beat_app.py``).
BEAT_APP = "tests.support.beat_app"

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns a truthy value; at the deadline, fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def task_definition(queue: str | None = None) -> Path:
    """The task definition of ``queue``'s workers (the default queue's by default)."""
    return QUEUES / (queue or config.current().queues[0].name) / "task-definition.json"


def worker_container(path: Path | None = None, name: str = "worker") -> dict[str, Any]:
    definition = json.loads((path or task_definition()).read_text())
    containers: list[dict[str, Any]] = definition["containerDefinitions"]
    return next(container for container in containers if container["name"] == name)


def with_app(command: list[str], app: str) -> list[str]:
    """``command`` running ``app`` instead of the service's app."""
    return [f"--app={app}" if part.startswith("--app=") else part for part in command]


def deployed_beat_command() -> list[str]:
    """The beat's command as its task definition runs it, with the test's app."""
    return with_app(worker_container(BEAT_TASK_DEFINITION, "beat")["command"], BEAT_APP)


def deployed_command(queue: str | None = None) -> list[str]:
    """The worker's command as the queue's task definition runs it."""
    return list(worker_container(task_definition(queue))["command"])


def queue_command(queue: Queue, app: str) -> list[str]:
    """A worker of ``queue`` as its generated task definition would run it, with the test's app."""
    base = json.loads((PROJECT / deploy_files.BASE / "worker-task-definition.json").read_text())
    return with_app(deploy_files.worker_command(base, queue), app)


def deployed_environment(container: dict[str, Any] | None = None) -> dict[str, str]:
    """The worker's plain environment from the task definition (the test supplies the secrets)."""
    container = container or worker_container()
    return {item["name"]: item["value"] for item in container.get("environment", [])}


@dataclass
class Stop:
    """How a worker ended."""

    exit_code: int | None
    seconds: float
    sigkilled: bool


@dataclass
class Worker:
    hostname: str
    process: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop_like_ecs(self, stop_timeout: float) -> Stop:
        """SIGTERM the main process; SIGKILL the group if it outlives ``stop_timeout``."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=stop_timeout)
            sigkilled = False
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            sigkilled = True
        kill_group(self.process.pid)
        return Stop(self.process.returncode, time.monotonic() - began, sigkilled)

    def scale_in_like_ecs(
        self, stop_timeout: float, protected: Callable[[], bool], longest_wait: float
    ) -> Stop:
        """Stop the worker as ECS scale-in and deployments do: not while its task is protected.

        ECS leaves a protected task running until its protection is released or expires, then
        stops it like any other (``stop_like_ecs``).
        """
        wait_for(lambda: not protected(), longest_wait, f"{self.hostname} to be unprotected")
        return self.stop_like_ecs(stop_timeout)

    def kill(self) -> None:
        kill_group(self.process.pid)
        self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def events(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        """The worker's JSON log lines of ``event`` whose fields match ``fields``."""
        found = []
        for line in self.output().splitlines():
            if not line.startswith("{"):  # Celery's start-up banner is plain text
                continue
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
                if record.get("event") == event and fields.items() <= record.items():
                    found.append(record)
        return found


def kill_group(pgid: int) -> None:
    """SIGKILL what is left of a worker's process group (orphaned pool children)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


class Fleet:
    """The workers a test started; anything still running is killed at the end of the test."""

    def __init__(self, base_env: Mapping[str, str], log_dir: Path, app: Any) -> None:
        self.base_env = dict(base_env)
        self.log_dir = log_dir
        self.app = app
        self.workers: list[Worker] = []

    def start(
        self,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
        queue: str | None = None,
    ) -> Worker:
        """Start a worker of ``queue`` (the default queue) with its deployed command and
        environment, plus ``env`` overrides."""
        hostname = f"w{len(self.workers)}-{uuid.uuid4().hex[:8]}@test"
        container = worker_container(task_definition(queue))
        command = [*container["command"], "--hostname", hostname, "--include", PROBE_TASKS, *args]
        return self.launch(hostname, command, env, deployed_environment(container))

    def start_queue(self, queue: Queue, app: str, env: Mapping[str, str] | None = None) -> Worker:
        """Start a worker of a queue the tests define, with ``app`` (which knows that queue)."""
        hostname = f"w{len(self.workers)}-{queue.name}-{uuid.uuid4().hex[:8]}@test"
        command = [*queue_command(queue, app), "--hostname", hostname, "--include", PROBE_TASKS]
        return self.launch(hostname, command, env, deployed_environment())

    def start_beat(self, env: Mapping[str, str]) -> Worker:
        """Start a beat with its deployed command, the test's schedule set by ``env``."""
        name = f"b{len(self.workers)}-{uuid.uuid4().hex[:8]}"
        deployed = deployed_environment(worker_container(BEAT_TASK_DEFINITION, "beat"))
        return self.launch(name, deployed_beat_command(), env, deployed)

    def launch(
        self,
        hostname: str,
        command: list[str],
        env: Mapping[str, str] | None,
        deployed: Mapping[str, str],
    ) -> Worker:
        log = self.log_dir / f"{hostname}.log"
        # The worker's ready marker for the health check goes to the test's own directory.
        environment = {
            **self.base_env,
            "TMPDIR": str(self.log_dir),
            **deployed,
            **(env or {}),
        }
        bin_dir = str(Path(sys.executable).parent)
        environment["PATH"] = bin_dir + os.pathsep + environment.get("PATH", "")
        environment["PYTHONPATH"] = str(PROJECT)
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                cwd=PROJECT,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(hostname, process, log)
        self.workers.append(worker)
        return worker

    def wait_ready(self, worker: Worker, timeout: float = 30) -> None:
        """Wait until the worker answers a ping over the broker."""

        def ready() -> bool:
            if not worker.alive():
                raise AssertionError(f"worker {worker.hostname} exited:\n{worker.output()}")
            return bool(self.app.control.ping(destination=[worker.hostname], timeout=0.3))

        wait_for(ready, timeout, f"worker {worker.hostname} to answer a ping")

    def start_ready(self, env: Mapping[str, str] | None = None, queue: str | None = None) -> Worker:
        worker = self.start(env, queue=queue)
        self.wait_ready(worker)
        return worker

    def kill_all(self) -> None:
        for worker in self.workers:
            worker.kill()
