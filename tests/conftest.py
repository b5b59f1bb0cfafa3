"""Baking helpers: each combination is baked once per session and shared by the tests."""

import os
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.main import cookiecutter

from .combinations import ALL_CHOICES, SUITES, TEMPLATE


def bake(output_dir: Path, answers: dict[str, str]) -> Path:
    """Render the template with ``answers`` (defaults for the rest) and return the project."""
    return Path(
        cookiecutter(
            str(TEMPLATE), no_input=True, output_dir=str(output_dir), extra_context=answers
        )
    )


class Bakery:
    """Bakes each named combination at most once per session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.projects: dict[str, Path] = {}

    def get(self, name: str, answers: dict[str, Any]) -> Path:
        if name not in self.projects:
            self.projects[name] = bake(self.root / name, answers)
        return self.projects[name]


@pytest.fixture(scope="session")
def bakery(tmp_path_factory: pytest.TempPathFactory) -> Bakery:
    return Bakery(tmp_path_factory.mktemp("bakes"))


@pytest.fixture(scope="session", params=sorted(ALL_CHOICES), ids=str)
def choice_project(request: pytest.FixtureRequest, bakery: Bakery) -> Path:
    return bakery.get(f"choices-{request.param}", ALL_CHOICES[request.param])


#: Each rendered suite's tests run in one pytest-xdist worker (``--dist loadgroup``), where the
#: project is baked and installed once; the two README suites, 10-14 minutes each, run side by
#: side in two workers.
@pytest.fixture(
    scope="session",
    params=[pytest.param(name, marks=pytest.mark.xdist_group(name)) for name in SUITES],
    ids=str,
)
def suite(request: pytest.FixtureRequest, bakery: Bakery) -> tuple[str, Path]:
    spec = SUITES[request.param]
    return request.param, bakery.get(f"suite-{request.param}", spec["answers"])


def clean_environment() -> dict[str, str]:
    """The environment a rendered project's commands run in: no virtualenv or uv leaking in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIRTUAL_ENV", "UV_", "PYTHONPATH", "CELERY_", "PYTEST_"))
    }
    return env
