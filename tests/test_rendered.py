"""The rendered projects' own test suites pass against their real broker.

The default project of each broker is set up exactly as its README tells a new user: the
README's commands, run in order, in a fresh checkout with the services already running (as
``compose.yaml`` would provide them).
"""

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .combinations import SUITES, TEMPLATE
from .conftest import clean_environment

UV = str(Path(sys.executable).parent / "uv")


def readme_commands(project: Path) -> list[list[str]]:
    """The ``uv`` commands of the README's quick start, in order (docker is not run here)."""
    readme = (project / "README.md").read_text()
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", readme, re.DOTALL).group(1)
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    return [shlex.split(line) for line in lines if line.startswith("uv ")]


def run(command: list[str], project: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    if command[0] == "uv":
        command = [UV, *command[1:]]
    return subprocess.run(
        command,
        cwd=project,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


#: The rendered tests whose subject is what the answers set.
ANSWER_TESTS = [
    "tests/core/test_config.py",
    "tests/core/test_layout.py",
    "tests/core/test_ecs_definitions.py",
    "tests/core/test_dockerfile.py",
    "tests/core/test_healthcheck.py",
]


def test_readme_lists_install_and_test_commands(suite: tuple[str, Path]) -> None:
    _, project = suite
    assert readme_commands(project) == [["uv", "sync", "--locked"], ["uv", "run", "pytest"]]


def test_rendered_suite_passes(suite: tuple[str, Path]) -> None:
    name, project = suite
    if SUITES[name]["readme"]:
        commands = readme_commands(project)
    else:
        # Answers that change no code path (names, sizes, architecture, Python, stop timeout):
        # the tests of what they change, the configuration and the files built from them. The
        # README runs of the default answers cover everything else.
        commands = [["uv", "sync", "--locked"], ["uv", "run", "pytest", *ANSWER_TESTS]]
    for command in commands:
        # A README suite takes 6-9 minutes on 2 cores; the bound leaves room for a slow machine.
        result = run(command, project, timeout=1500)
        assert result.returncode == 0, (
            f"{shlex.join(command)}:\n{result.stdout[-6000:]}{result.stderr[-3000:]}"
        )
    assert re.search(r"\d+ passed", result.stdout)


def ci_lint_commands(project: Path) -> list[list[str]]:
    """The rendered CI workflow's ``uv run`` steps other than the tests."""
    workflow = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    runs = [step["run"] for step in steps if str(step.get("run", "")).startswith("uv run ")]
    return [shlex.split(command) for command in runs if "pytest" not in command]


def test_rendered_ci_lint_passes(suite: tuple[str, Path]) -> None:
    """The rendered CI's ruff and mypy steps (mypy for the default answers of each broker)."""
    name, project = suite
    commands = ci_lint_commands(project)
    assert ["uv", "run", "mypy"] in commands
    if not SUITES[name]["readme"]:
        commands = [command for command in commands if command != ["uv", "run", "mypy"]]
    for command in commands:
        result = run(command, project, timeout=300)
        assert result.returncode == 0, f"{shlex.join(command)}:\n{result.stdout}{result.stderr}"


def hook_dependency_names() -> set[str]:
    tree = ast.parse((TEMPLATE / "hooks" / "pre_gen_project.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and node.targets[0].id == "DEPENDENCY_IMPORT_NAMES":
            return set(ast.literal_eval(node.value.args[0]))
    raise AssertionError("DEPENDENCY_IMPORT_NAMES not found in the pre-generation hook")


TOP_LEVEL_NAMES = """
import json, importlib.metadata as md
names = set()
for dist in md.distributions():
    top = dist.read_text("top_level.txt")
    if top:
        names.update(top.split())
    else:
        names.update(f.parts[0].removesuffix(".py") for f in dist.files or []
                     if f.parts[0].isidentifier() or f.parts[0].endswith(".py"))
print(json.dumps(sorted(n for n in names if n.isidentifier())))
"""


def test_hook_knows_every_locked_import_name(suite: tuple[str, Path]) -> None:
    name, project = suite
    if name != "redis-defaults":
        pytest.skip("the lock is the same for every project; one check is enough")
    result = run(["uv", "run", "--locked", "python", "-c", TOP_LEVEL_NAMES], project, timeout=300)
    assert result.returncode == 0, result.stderr
    package = json.loads((project / ".cookiecutter.json").read_text())["package_name"]
    installed = set(json.loads(result.stdout)) - {package, "_distutils_hack", "__editable__"}
    installed = {name for name in installed if not name.startswith("__editable__")}
    assert installed - hook_dependency_names() == set()


def test_pre_commit_runs_the_ci_lint_steps_offline(suite: tuple[str, Path]) -> None:
    """The rendered pre-commit hooks are local (nothing fetched) and are the CI's lint steps."""
    name, project = suite
    config = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]

    def tool(command: list[str]) -> list[str]:
        return [word for word in command[2:] if not word.startswith("-") and word != "."]

    assert sorted(tool(shlex.split(hook["entry"])) for hook in hooks) == sorted(
        tool(command) for command in ci_lint_commands(project)
    )
    if name != "redis-defaults":
        return
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for command in ([*git, "init", "-q"], [*git, "add", "-A"]):
        subprocess.run(command, cwd=project, check=True, capture_output=True)
    # The hooks call `uv`, as a developer's shell finds it.
    env = {**clean_environment(), "PATH": f"{Path(UV).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [UV, "run", "pre-commit", "run", "--all-files"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    subprocess.run(["rm", "-rf", str(project / ".git")], check=True)


def test_rendered_ci_builds_the_image_and_runs_the_image_tests(suite: tuple[str, Path]) -> None:
    """The image job builds the project's Dockerfile and runs the tests marked ``image`` on it
    (the template runs those same tests through tests/test_image.py)."""
    _, project = suite
    workflow = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())
    steps = workflow["jobs"]["image"]["steps"]
    (build,) = [step for step in steps if step.get("uses", "").startswith("docker/build-push")]
    (tests,) = [step for step in steps if step.get("run") == "uv run pytest -m image"]
    assert build["with"]["context"] == "." and build["with"]["load"] is True
    assert tests["env"]["IMAGE_UNDER_TEST"] == build["with"]["tags"]
    assert workflow["jobs"]["image"]["services"] == workflow["jobs"]["test"]["services"]
    assert any(step.get("run", "").startswith("scripts/pin-base-images --check") for step in steps)
