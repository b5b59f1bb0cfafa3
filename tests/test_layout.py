"""The rendered package is a core the template owns and the service's own code.

The core imports nothing of the service's code, so a team deletes the examples and keeps the
patterns; a task module dropped into the tasks package is registered with no other file touched.
"""

import ast
import json
import re
import shlex
from pathlib import Path

from .conftest import bake
from .test_rendered import run

#: The examples, as the rendered README lists them: the tasks, their tests, their benchmark.
EXAMPLES = (
    "src/{package}/tasks/example.py",
    "src/{package}/tasks/newsletter.py",
    "tests/test_example_task.py",
    "tests/test_newsletter.py",
    "tests/test_newsletter_faults.py",
    "tests/users.py",
    "benchmarks/fan_out.py",
)
#: The only modules outside the core that the core may import: the entry point, the service's
#: settings module, which the core merges and checks, and its schedules, which the beat runs.
CORE_MAY_IMPORT = {"celery_app", "service_settings", "schedules", "queues"}
DROPPED_IN = '''"""A task module of the service's own."""

from ..celery_app import app


@app.task(name="reports.build")
def build(name: str) -> str:
    """Build the report ``name``."""
    return f"report {name}"
'''
REGISTERED = (
    "import json; from {package}.celery_app import app; "
    "app.loader.import_default_modules(); print(json.dumps(sorted(app.tasks)))"
)


def imported_modules(path: Path, source: Path) -> set[str]:
    """Every module the file ``path`` under ``source`` imports, by absolute name."""
    parts = path.relative_to(source).with_suffix("").parts
    package = parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_core_imports_nothing_of_the_service(choice_project: Path) -> None:
    package = json.loads((choice_project / ".cookiecutter.json").read_text())["package_name"]
    source = choice_project / "src"
    core = source / package / "core"
    modules = sorted(core.rglob("*.py"))
    assert len(modules) > 10
    outside = set()
    for path in modules:
        for imported in imported_modules(path, source):
            parts = imported.split(".")
            if parts[0] == package and parts[1:2] != ["core"] and len(parts) > 1:
                outside.add(parts[1])
    assert outside <= CORE_MAY_IMPORT


def test_readme_lists_every_module_on_one_screen(choice_project: Path) -> None:
    package = json.loads((choice_project / ".cookiecutter.json").read_text())["package_name"]
    readme = (choice_project / "README.md").read_text()
    block = re.search(r"## Layout\n\n```text\n(.*?)```", readme, re.DOTALL).group(1)
    lines = block.splitlines()
    assert lines[0] == f"src/{package}/"
    assert len(lines) <= 34  # one screen with the heading and the fences
    listed = {re.sub(r"^[\s│├└─]+", "", line).split()[0] for line in lines[1:]}
    source = choice_project / "src" / package
    present = {
        path.name + ("/" if path.is_dir() else "")
        for path in [*source.iterdir(), *(source / "core").iterdir()]
        if path.name not in {"__init__.py", "__pycache__"}
    }
    assert listed == present


#: The rendered tests of what a team changes first: its tasks (registered) and its settings.
FIRST_TOUCHED = ["tests/core/test_layout.py", "tests/core/test_config.py"]


def test_examples_deleted_and_a_task_module_dropped_in(tmp_path: Path) -> None:
    """What a team does first: delete the examples and add its own task module, nothing else."""
    project = bake(tmp_path, {})
    package = json.loads((project / ".cookiecutter.json").read_text())["package_name"]
    for example in EXAMPLES:
        (project / example.format(package=package)).unlink()
    assert sorted(path.name for path in (project / "tests").glob("test_*.py")) == []
    (project / "src" / package / "tasks" / "reports.py").write_text(DROPPED_IN)
    commands = [
        ["uv", "sync", "--locked"],
        ["uv", "run", "ruff", "check", "."],
        ["uv", "run", "ruff", "format", "--check", "."],
        ["uv", "run", "mypy"],
        # Every remaining test module still imports; the tests of what a team touches first
        # (the task registry, the configuration) still pass. The whole suite runs elsewhere.
        ["uv", "run", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        ["uv", "run", "pytest", "-q", "-p", "no:cacheprovider", *FIRST_TOUCHED],
    ]
    for command in commands:
        result = run(command, project, timeout=900)
        assert result.returncode == 0, (
            f"{shlex.join(command)}:\n{result.stdout[-6000:]}{result.stderr[-3000:]}"
        )
    listed = run(
        ["uv", "run", "python", "-c", REGISTERED.format(package=package)], project, timeout=300
    )
    assert listed.returncode == 0, listed.stderr
    tasks = json.loads(listed.stdout)
    assert "reports.build" in tasks
    assert not [name for name in tasks if name.startswith(("send_newsletter", "example."))]
