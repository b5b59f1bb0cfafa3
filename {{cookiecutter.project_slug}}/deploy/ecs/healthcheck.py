"""ECS container health check of the worker: is it running, without asking the broker.

Healthy while the container holds a Celery worker main process with at least one live pool
process that has reached its broker once: the worker writes ``celery-worker-<pid>.ready`` in the
temporary directory (/tmp) when its consumer is ready (``worker_checks.mark_ready``), and keeps
it through later broker outages. A worker that never reaches its broker turns unhealthy after the
start period; one that loses the broker later stays healthy, since replacing workers does not
repair a broker. The check never talks to the broker (no ``celery inspect ping``); see
docs/design_decisions.md.

ECS runs it as ``python /app/healthcheck.py`` and reads the exit status (0 healthy, 1 not). The
optional argument is the process to search from: 1, the container's init, unless a test points it
at a worker it started.
"""

import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
#: Written by the worker's main process once its consumer is connected (worker_checks.py).
READY_MARKER = "celery-worker-{pid}.ready"


@dataclass(frozen=True)
class Process:
    parent: int
    #: One letter from /proc/PID/stat: Z is a zombie (exited, not yet reaped).
    state: str
    argv: tuple[str, ...]

    @property
    def is_celery_worker(self) -> bool:
        """A live ``celery ... worker`` (pool processes are forks with the same command line).

        The program must be celery itself (or Python running it): an init such as docker-init
        carries the worker's command line after its own and is not the worker.
        """
        if self.state == "Z" or "worker" not in self.argv:
            return False
        program, *rest = self.argv
        if Path(program).name.startswith("python"):
            program = "celery" if rest[:2] == ["-m", "celery"] else (rest or [""])[0]
        return Path(program).name == "celery"


def processes() -> dict[int, Process]:
    """Every process visible in /proc, by pid."""
    found = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # it ended while we looked
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after it.
        state, parent = stat.rpartition(")")[2].split()[:2]
        argv = tuple(arg.decode(errors="replace") for arg in cmdline.split(b"\0") if arg)
        found[int(entry.name)] = Process(int(parent), state, argv)
    return found


def marker_exists(pid: int) -> bool:
    return (Path(tempfile.gettempdir()) / READY_MARKER.format(pid=pid)).exists()


def check(
    root: int, table: dict[int, Process], ready: Callable[[int], bool] = marker_exists
) -> str | None:
    """None when a worker under ``root`` (or ``root`` itself) has a live pool and was ready."""
    children: defaultdict[int, list[int]] = defaultdict(list)
    for pid, process in table.items():
        children[process.parent].append(pid)
    pending = [root]
    while pending:
        pid = pending.pop()
        process = table.get(pid)
        if process is not None and process.is_celery_worker:
            if not any(table[child].is_celery_worker for child in children[pid]):
                return f"celery worker {pid} has no live pool process"
            if not ready(pid):
                return f"celery worker {pid} has not reached its broker yet"
            return None
        pending.extend(children[pid])
    return f"no celery worker process under pid {root}"


def main() -> int:
    root = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    problem = check(root, processes())
    print(problem or "celery worker and its pool are running, and it has reached its broker")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
