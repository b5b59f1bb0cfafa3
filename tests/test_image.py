"""The default project's image of each broker, built from its Dockerfile and run as ECS runs it.

No Docker engine and no public registry are reachable here, so the base images are made on this
machine and kept between runs: Debian bookworm's own python3 (debootstrap from the apt mirror)
for PYTHON_IMAGE, and the template's uv binary (the uv wheel from PyPI, in .venv) for UV_IMAGE.
buildah builds the real Dockerfile with them; the rendered project's own tests/test_image.py,
which CI runs with Docker, then runs the containers through tests/docker_stand_in.py (crun).
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import docker_stand_in as stand_in
from .combinations import SUITES
from .conftest import Bakery, clean_environment

pytestmark = [pytest.mark.slow, pytest.mark.image]

BIN = Path(sys.executable).parent
TOOLS = ("buildah", "crun", "debootstrap", "tini-static", "unshare")
MISSING = [tool for tool in TOOLS if not shutil.which(tool)]
if MISSING or os.geteuid() != 0:
    pytest.skip(
        "image tests skipped: they need root and buildah, crun, debootstrap and tini "
        f"(missing: {', '.join(MISSING) or 'root'}; .ci/run installs them with apt)",
        allow_module_level=True,
    )

#: The stand-in for python:<version>-slim-bookworm: Debian's python3 (3.11 in bookworm).
DEBIAN_PACKAGES = ("python3", "ca-certificates")
#: The package downloads in the build go through this machine's TLS proxy, whose CA only the
#: host's bundle holds: the base image trusts that bundle, as the host does.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEFAULT_SUITES = [name for name, spec in SUITES.items() if spec["readme"]]


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses."""
    for sources in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if sources.exists():
            found = re.search(r"^(?:URIs:|deb)\s+(\S+/debian)\s", sources.read_text(), re.M)
            if found:
                return found.group(1)
    return "http://deb.debian.org/debian"


def image_exists(name: str) -> bool:
    result = subprocess.run(
        [*stand_in.BUILDAH, "inspect", "--type", "image", name], capture_output=True, check=False
    )
    return result.returncode == 0


def python_base_image() -> str:
    """Debian bookworm with python3, made once per recipe and CA bundle on this machine."""
    recipe = f"{DEBIAN_PACKAGES}{apt_mirror()}".encode() + CA_BUNDLE.read_bytes()
    name = f"localhost/debian-python:bookworm-{hashlib.sha256(recipe).hexdigest()[:12]}"
    with stand_in.locked("base-images"):
        if image_exists(name):
            return name
        with tempfile.TemporaryDirectory(dir=stand_in.STORE) as work:
            root = Path(work) / "rootfs"
            include = ",".join(DEBIAN_PACKAGES)
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={include}",
                    "bookworm",
                    root,
                    apt_mirror(),
                ],
                check=True,
                capture_output=True,
            )
            # As in python's slim images: no apt lists or package cache.
            for leftover in ("var/lib/apt/lists", "var/cache/apt"):
                shutil.rmtree(root / leftover)
            shutil.copyfile(CA_BUNDLE, root / CA_BUNDLE.relative_to("/"))
            commit(root, name, "--env", f"SSL_CERT_FILE={CA_BUNDLE}", "--env", "LANG=C.UTF-8")
    return name


def uv_image(project: Path) -> str:
    """A FROM-scratch image holding ``/uv``, as ghcr.io/astral-sh/uv does."""
    wanted = re.search(r"^ARG UV_IMAGE=\S+:(\S+)$", (project / "Dockerfile").read_text(), re.M)
    ours = subprocess.run([BIN / "uv", "--version"], capture_output=True, text=True, check=True)
    version = ours.stdout.split()[1]
    assert wanted and wanted.group(1) == version, (
        f"the Dockerfile's UV_IMAGE ({wanted and wanted.group(1)}) must be the template's uv "
        f"({version}, pyproject.toml): the stand-in uv image is made from it"
    )
    name = f"localhost/uv:{version}"
    with stand_in.locked("base-images"):
        if not image_exists(name):
            with tempfile.TemporaryDirectory(dir=stand_in.STORE) as work:
                shutil.copy(BIN / "uv", Path(work) / "uv")
                commit(Path(work), name)
    return name


def commit(tree: Path, name: str, *config: str) -> None:
    """Commit the files under ``tree`` as the image ``name``, with ``buildah config`` options."""
    container = stand_in.buildah("from", "--quiet", "scratch")
    try:
        stand_in.buildah("copy", "--quiet", container, f"{tree}/", "/")
        if config:
            stand_in.buildah("config", *config, container)
        stand_in.buildah("commit", "--quiet", container, name)
    finally:
        stand_in.buildah("rm", container)


def working_containers() -> set[str]:
    """The containers a build makes (``<image>-working-container[-N]``), by name."""
    names = stand_in.buildah("containers", "--format", "{{.ContainerName}}").split()
    return {name for name in names if re.search(r"-working-container(-\d+)?$", name)}


@pytest.fixture(scope="session")
def docker_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose ``docker`` is the stand-in."""
    directory = tmp_path_factory.mktemp("stand-in-bin")
    docker = directory / "docker"
    docker.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{stand_in.__file__}" "$@"\n')
    docker.chmod(0o755)
    return directory


@pytest.fixture(params=DEFAULT_SUITES)
def built(request: pytest.FixtureRequest, bakery: Bakery) -> Iterator[tuple[Path, str]]:
    """The default project of a broker and its image, removed afterwards (base images stay)."""
    name = request.param
    project = bakery.get(f"suite-{name}", SUITES[name]["answers"])
    tag = f"localhost/{project.name}:image-test-{uuid.uuid4().hex[:8]}"
    build_args = {"PYTHON_IMAGE": python_base_image(), "UV_IMAGE": uv_image(project)}
    began = time.monotonic()
    with stand_in.locked("build"):
        before = working_containers()
        result = subprocess.run(
            [
                *stand_in.BUILDAH,
                "bud",
                "--isolation",
                "chroot",
                "--pull=never",
                "--tag",
                tag,
                *[f"--build-arg={key}={value}" for key, value in build_args.items()],
                str(project),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        # buildah 1.28 leaves the container of a stage that is only a FROM (uv's) behind.
        for container in working_containers() - before:
            stand_in.buildah("rm", container)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    print(f"{name}: image built in {time.monotonic() - began:.1f} s")
    image_id = stand_in.buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", tag)
    try:
        yield project, tag
    finally:
        stand_in.remove_roots(image_id)
        stand_in.buildah("rmi", tag)


def test_image_runs_as_the_task_definition_declares(
    built: tuple[Path, str], docker_bin: Path
) -> None:
    """The rendered tests marked ``image`` pass against the image, none of them skipped."""
    project, tag = built
    env = {
        **clean_environment(),
        "IMAGE_UNDER_TEST": tag,
        "PATH": f"{docker_bin}{os.pathsep}{os.environ['PATH']}",
    }
    commands = (
        [BIN / "uv", "sync", "--locked"],
        [BIN / "uv", "run", "pytest", "-p", "no:cacheprovider", "-m", "image"],
    )
    for command in commands:
        result = subprocess.run(
            command, cwd=project, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
    assert re.search(r"\b4 passed\b", result.stdout) and "skipped" not in result.stdout, (
        result.stdout[-3000:]
    )
