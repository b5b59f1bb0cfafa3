"""The container health check (deploy/ecs/healthcheck.py): its rule, and the script itself.

tests/core/test_startup.py runs it against real workers, with and without a broker.
"""

import os
import runpy
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.core import defaults

from ..support.workers import PROJECT, kill_group, wait_for

HEALTHCHECK = PROJECT / "deploy" / "ecs" / "healthcheck.py"
SCRIPT = runpy.run_path(str(HEALTHCHECK))
PACKAGE = defaults.__name__.partition(".")[0]
WORKER = ("/app/.venv/bin/python", "/app/.venv/bin/celery", f"--app={PACKAGE}.celery_app", "worker")
INIT = ("/sbin/docker-init", "--", *WORKER)
PYTHON_M = ("python", "-m", "celery", "-A", PACKAGE, "worker")
BEAT = ("celery", "--app=x", "beat")


def process(parent: int, argv: tuple[str, ...] = WORKER, state: str = "S") -> Any:
    return SCRIPT["Process"](parent, state, argv)


#: case -> (processes by pid, the problem found or None); pids below 10 wrote the ready marker.
RULE = {
    "under-init": ({1: process(0, INIT), 7: process(1), 8: process(7), 9: process(7)}, None),
    "never-reached-the-broker": (
        {1: process(0, INIT), 70: process(1), 8: process(70)},
        "celery worker 70 has not reached its broker yet",
    ),
    "worker-is-pid-1": ({1: process(0), 8: process(1)}, None),
    "python-m-celery": ({1: process(0, PYTHON_M), 8: process(1, PYTHON_M)}, None),
    "no-pool": ({1: process(0, INIT), 7: process(1)}, "celery worker 7 has no live pool process"),
    "pool-zombie": (
        {1: process(0, INIT), 7: process(1), 8: process(7, state="Z")},
        "celery worker 7 has no live pool process",
    ),
    "no-worker": ({1: process(0, ("sleep", "60"))}, "no celery worker process under pid 1"),
    "worker-elsewhere": (
        {1: process(0, ("sleep", "60")), 7: process(0), 8: process(7)},
        "no celery worker process under pid 1",
    ),
    "not-a-worker": (
        {1: process(0, INIT), 7: process(1, BEAT), 8: process(7, BEAT)},
        "no celery worker process under pid 1",
    ),
}


@pytest.mark.parametrize(("table", "expected"), RULE.values(), ids=RULE)
def test_health_check_rule(table: dict[int, Any], expected: str | None) -> None:
    assert SCRIPT["check"](1, table, lambda pid: pid < 10) == expected


#: Stands in for the venv's ``celery`` script: writes the ready marker unless ``READY`` is 0 (as
#: worker_checks.mark_ready does), forks ``POOL`` children, then waits to be killed.
FAKE_CELERY = """import os, pathlib, tempfile, time
if os.environ["READY"] == "1":
    pathlib.Path(tempfile.gettempdir(), f"celery-worker-{os.getpid()}.ready").touch()
for _ in range(int(os.environ["POOL"])):
    if os.fork() == 0:
        break
time.sleep(60)
"""

Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start processes that /proc shows as a worker with ``pool`` children, whose temporary
    directory (where the ready marker goes) is the test's own; killed at the end."""
    script = tmp_path / "celery"
    script.write_text(FAKE_CELERY)
    started: list[subprocess.Popen[bytes]] = []

    def start(pool: int, ready: bool = True) -> subprocess.Popen[bytes]:
        argv = [sys.executable, str(script), f"--app={PACKAGE}.celery_app", "worker"]
        env = {**os.environ, "POOL": str(pool), "READY": str(int(ready)), "TMPDIR": str(tmp_path)}
        started.append(subprocess.Popen(argv, env=env, start_new_session=True))
        return started[-1]

    yield start
    for proc in started:
        kill_group(proc.pid)
        proc.wait()


def run_healthcheck(root: int, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), str(root)],
        env={**os.environ, "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_health_check_script_on_real_processes(spawn: Spawn, tmp_path: Path) -> None:
    """Real /proc entries and no broker anywhere: a ready worker with a live pool is healthy."""
    worker = spawn(2)
    wait_for(lambda: run_healthcheck(worker.pid, tmp_path).returncode == 0, 10, "the pool")
    assert "celery worker and its pool are running" in run_healthcheck(worker.pid, tmp_path).stdout

    lonely = spawn(0)
    result = run_healthcheck(lonely.pid, tmp_path)
    assert result.returncode == 1
    assert f"celery worker {lonely.pid} has no live pool process" in result.stdout

    unready = spawn(2, ready=False)
    wait_for(lambda: "not reached" in run_healthcheck(unready.pid, tmp_path).stdout, 10, "pool")
    assert run_healthcheck(unready.pid, tmp_path).returncode == 1

    worker.send_signal(signal.SIGKILL)
    worker.wait()
    result = run_healthcheck(worker.pid, tmp_path)
    assert result.returncode == 1
    assert f"no celery worker process under pid {worker.pid}" in result.stdout
