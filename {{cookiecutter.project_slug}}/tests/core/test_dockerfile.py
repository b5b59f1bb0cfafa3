"""The image agrees with the task definition; hadolint judges the Dockerfile on its own.

hadolint refuses a shell-form CMD (DL3025), a root USER (DL3002) and a USER by name (DL3066);
the checks here cover what it cannot know: what the task definition runs and sets, how uv
installs, which files the image must hold.
"""

import json
import os
import posixpath
import re
import subprocess
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.core import config, defaults

from ..support import artifacts as deploy
from ..support.workers import PROJECT

HADOLINT = Path(sys.executable).parent / "hadolint"
APP = f"--app={defaults.__name__.partition('.')[0]}.celery_app"
IMAGE_ENV = "the tests start workers from the task definition"
SETTINGS: deploy.Settings = (
    ("container.user", deploy.Same("image.user"), "the owner of what the image holds"),
    ("environment.PYTHONUNBUFFERED", "1", "log lines reach CloudWatch as they are written"),
    ("environment.PYTHONUNBUFFERED", deploy.Same("image.env.PYTHONUNBUFFERED"), IMAGE_ENV),
)
#: Unset in both: a SIGTERM remapped to SIGQUIT would wait out the whole shutdown window. Unset
#: in the image: the worker takes its queue's stop timeout and limits from queues.py, which its
#: task definition follows, and one image runs every queue.
UNSET: deploy.Settings = (
    ("environment.REMAP_SIGTERM", None, "the worker refuses SIGQUIT"),
    ("image.env.REMAP_SIGTERM", None, "the worker refuses SIGQUIT"),
    *(
        (f"image.env.{name}", None, "queues.py sets it for each queue")
        for name in config.QUEUE_ENVIRONMENT
    ),
)
#: Besides the code: the migrations run from the image as a one-off task (deploy/README.md).
IMAGE_FILES = ("/app/alembic.ini", "/app/migrations")
NON_ROOT_UID = re.compile(r"0*[1-9]\d*(?::\d+)?")


def check_settings(artifacts: deploy.Artifacts) -> list[str]:
    return deploy.settings_problems(artifacts, SETTINGS + UNSET)


def check_worker(artifacts: deploy.Artifacts) -> list[str]:
    """The container runs this package's Celery app as the image would, consuming its queue, as
    a numeric user other than root."""
    command, user = artifacts.get("container.command") or [], artifacts.get("container.user")
    problems = [] if APP in command else [f"command={command!r}: must run {APP}"]
    own_queue = f"--queues={artifacts.queue}"
    if [part for part in command if part != own_queue] != artifacts.get("image.cmd"):
        problems.append(
            f"command={command!r}: must be the image's CMD={artifacts.get('image.cmd')!r} "
            f"plus {own_queue}, the command the image was built for"
        )
    if not NON_ROOT_UID.fullmatch(str(user)):
        problems.append(f"user={user!r}: must be a numeric uid[:gid] other than root (uid 0)")
    return problems


def check_image_build(artifacts: deploy.Artifacts) -> list[str]:
    """Every ``uv sync`` installs the lock and compiles bytecode (the root filesystem is
    read-only at run time)."""
    image = artifacts.image
    syncs = [
        (item, context.envs)
        for item, context in zip(image.structure, image.context_structure, strict=True)
        if item["instruction"] == "RUN" and "uv sync" in item["value"]
    ]
    problems = [] if syncs else ["Dockerfile: no RUN uv sync; the image must install uv.lock"]
    for item, env in syncs:
        where = f"Dockerfile line {item['startline'] + 1}: uv sync"
        if "--locked" not in item["value"].split():
            problems.append(f"{where} needs --locked, to install exactly uv.lock")
        if env.get("UV_COMPILE_BYTECODE") != "1":
            problems.append(f"{where} runs without UV_COMPILE_BYTECODE=1")
    return problems


def check_image_files(artifacts: deploy.Artifacts) -> list[str]:
    """The image holds the script the health check runs, and the migrations."""
    workdir, files = "/", set[str]()
    for instruction, value in artifacts.final_stage("WORKDIR", "COPY"):
        if instruction == "WORKDIR":
            workdir = posixpath.join(workdir, value)
            continue
        *sources, target = [word for word in value.split() if not word.startswith("--")]
        target = posixpath.join(workdir, target)
        if target.endswith("/"):
            files |= {posixpath.normpath(f"{target}/{posixpath.basename(s)}") for s in sources}
        else:
            files.add(posixpath.normpath(target))
    health = artifacts.get("container.healthCheck.command") or []
    needed = [word for word in health[1:] if word.endswith(".py")] + list(IMAGE_FILES)
    return [f"{path}: the Dockerfile does not copy it" for path in needed if path not in files]


def check_hadolint(artifacts: deploy.Artifacts) -> list[str]:
    """hadolint reports nothing (exit 1 and a line per finding otherwise)."""
    result = subprocess.run(
        [HADOLINT, "--no-color", "-"],
        input=artifacts.dockerfile,
        capture_output=True,
        text=True,
        cwd=PROJECT,  # where a team's .hadolint.yaml would be
        check=False,
    )
    findings = (result.stdout + result.stderr).splitlines()
    if result.returncode and not findings:
        findings = [f"exited {result.returncode}"]
    return [f"hadolint {line}" for line in findings]


CMD, USER = "Dockerfile:^CMD .*$", "Dockerfile:^USER .*$"
OTHER_APP = ["celery", "--app=other.celery_app", "worker"]
BROKEN: deploy.Broken = {
    check_settings: {
        **deploy.without_each(SETTINGS),
        "image-without-user": ({USER: ""}, "must equal image.user=None"),
        "remapped": ({"environment.REMAP_SIGTERM": "SIGQUIT"}, "REMAP_SIGTERM='SIGQUIT'"),
        "image-remapped": (
            {"Dockerfile:PYTHONUNBUFFERED=1": "PYTHONUNBUFFERED=1 REMAP_SIGTERM=SIGQUIT"},
            "image.env.REMAP_SIGTERM='SIGQUIT'",
        ),
        "image-stop-timeout": (
            {"Dockerfile:PYTHONUNBUFFERED=1": "PYTHONUNBUFFERED=1 ECS_STOP_TIMEOUT=7"},
            "image.env.ECS_STOP_TIMEOUT='7'",
        ),
        "image-buffered": ({"Dockerfile:PYTHONUNBUFFERED=1": "A=1"}, "UNBUFFERED=None"),
    },
    check_worker: {
        "other-app": ({"container.command": OTHER_APP, CMD: f"CMD {json.dumps(OTHER_APP)}"}, APP),
        "image-without-cmd": ({CMD: ""}, "must be the image's CMD=None"),
        "other-cmd": ({CMD: f"CMD {json.dumps([*OTHER_APP, APP])}"}, "must be the image's CMD="),
        "root": ({"container.user": "0", USER: "USER 0"}, "user='0': must be a numeric"),
        "by-name": ({"container.user": "app", USER: "USER app"}, "user='app': must be"),
    },
    check_image_build: {
        "unlocked": ({"Dockerfile:uv sync --locked": "uv sync"}, "uv sync needs --locked"),
        "no-bytecode": ({"Dockerfile:COMPILE_BYTECODE=1": "COMPILE_BYTECODE=0"}, "without UV_"),
        "no-sync": ({"Dockerfile:uv sync": "pip install"}, "no RUN uv sync"),
    },
    check_image_files: {
        "health-check": ({"container.healthCheck.command": ["CMD", "x.py"]}, "x.py: the"),
        "migrations": ({"Dockerfile:^COPY migrations .*$": ""}, "/app/migrations: the Dockerfile"),
    },
    check_hadolint: {
        "shell-cmd": ({CMD: f"CMD celery {APP} worker"}, " DL3025"),
        "root": ({USER: "USER root"}, " DL3002"),
        "uid-0": ({USER: "USER 0"}, " DL3002"),
        "by-name": ({USER: "USER app"}, " DL3066"),
    },
}


@pytest.mark.parametrize(("check", "edits", "expected"), deploy.cases(BROKEN))
def test_check(check: deploy.Check, edits: deploy.Edits | None, expected: str) -> None:
    deploy.verify(check, edits, expected)


#: Answers `docker buildx imagetools inspect TAG` as Docker does, with a made-up digest.
FAKE_DOCKER = """#!/bin/sh
[ "$1 $2 $3" = "buildx imagetools inspect" ] || exit 2
printf 'Name:      %s\\nMediaType: application/vnd.oci.image.index.v1+json\\n' "$4"
printf 'Digest:    sha256:%064d\\n' 7
"""


def test_pin_base_images_pins_each_default_by_its_tags_digest(tmp_path: Path) -> None:
    (tmp_path / "docker").write_text(FAKE_DOCKER)
    (tmp_path / "docker").chmod(0o755)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text((PROJECT / "Dockerfile").read_text())
    env = {**os.environ, "DOCKERFILE": str(dockerfile), "PATH": f"{tmp_path}:{os.environ['PATH']}"}

    def pin(*args: str) -> subprocess.CompletedProcess[str]:
        script = [str(PROJECT / "scripts" / "pin-base-images"), *args]
        return subprocess.run(script, env=env, capture_output=True, text=True, check=False)

    def defaults() -> list[str]:
        return re.findall(r"^ARG (?:PYTHON|UV)_IMAGE=(.*)$", dockerfile.read_text(), re.MULTILINE)

    tags = defaults()
    assert all("@" not in tag for tag in tags)
    unpinned = pin("--check")
    assert unpinned.returncode == 1
    assert unpinned.stderr.count("is not pinned by digest") == 2

    digest = "@sha256:" + "0" * 63 + "7"
    for _ in range(2):  # pinning again replaces the digest, keeping the tag
        assert pin().returncode == 0
        assert defaults() == [tag + digest for tag in tags]
    assert pin("--check").returncode == 0
