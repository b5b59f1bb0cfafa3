"""Bake the template and install the project from its lock: what every benchmark starts with."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
#: The default project's only queue (the answer ``queues`` by default).
QUEUE_NAME = "default"


def run_queue(prefix: str) -> str:
    """The queue of one benchmark run: the service's queue in a broker namespace of the run's
    own, ``<namespace>.default`` (the other configurations use the same name)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}.{QUEUE_NAME}"


def namespace_of(queue: str) -> str:
    return queue.rsplit(".", 1)[0]


def clean_environment() -> dict[str, str]:
    """This environment without the template's virtualenv, uv or Celery settings leaking in."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIRTUAL_ENV", "UV_", "CELERY_"))
    }


def bake_and_install(broker: str, output_dir: Path) -> Path:
    """Render the default project for ``broker`` into ``output_dir`` and ``uv sync --locked`` it."""
    from cookiecutter.main import cookiecutter

    project = Path(
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            output_dir=str(output_dir),
            extra_context={"broker": broker},
        )
    )
    uv = Path(sys.executable).parent / "uv"
    subprocess.run(
        [str(uv), "sync", "--locked", "--quiet"], cwd=project, env=clean_environment(), check=True
    )
    return project


def run_inner(project: Path, script: str, broker: str, *arguments: str) -> dict:
    """Run ``script --inner broker ARGUMENTS`` in ``project``'s environment, beside the shared
    ``bench_app.py``; return the JSON its last line of output prints (its stderr goes by live)."""
    shutil.copy(TEMPLATE / "benchmarks" / "bench_app.py", project / "bench_app.py")
    out = subprocess.run(
        [str(project / ".venv/bin/python"), script, "--inner", broker, *arguments],
        cwd=project,
        env=clean_environment(),
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def each_broker(script: str, brokers: list[str], *arguments: str) -> dict[str, dict]:
    """Bake and install the default project of each broker in a scratch directory, run
    ``script``'s inner part there with ``arguments``; its results by broker."""
    work = Path(tempfile.mkdtemp(prefix="benchmark-"))
    try:
        results = {}
        for broker in brokers:
            project = bake_and_install(broker, work / broker)
            results[broker] = run_inner(project, script, broker, *arguments)
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def command_line(
    doc: str, inner: Callable[[str], None], outer: Callable[[list[str]], None]
) -> None:
    """The command line of a benchmark that takes only ``--brokers``: its outer part, which bakes
    and runs ``--inner BROKER`` in each baked project."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--inner", choices=["rabbitmq", "redis"])
    parser.add_argument("--brokers", nargs="+", default=["rabbitmq", "redis"])
    arguments = parser.parse_args()
    if arguments.inner:
        inner(arguments.inner)
    else:
        outer(arguments.brokers)
