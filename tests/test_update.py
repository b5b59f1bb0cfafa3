"""A customised project takes the template's newer conventions (docs/updating.md in the project).

The template is copied into a repository of its own (its history, then the working tree as one
commit on top, so uncommitted changes are tested too). Projects are rendered from the copy with
cruft, committed untouched, then customised as a team would; a convention change is made on a
branch of the copy as a maintainer would, and the project takes it with its own
``scripts/update-from-template``.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .combinations import TEMPLATE
from .conftest import clean_environment

BIN = Path(sys.executable).parent
GIT = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com"]
PROJECT = "{{cookiecutter.project_slug}}"

#: The first commit of this repository with the core/service layout (issue 12) and
#: scripts/update-from-template: case A renders a project there and updates it to HEAD.
LAYOUT_COMMIT: str | None = "d3b3387b5e2d2daf15f56ef8df85828a3ddd5b02"

#: The synthetic convention change: a core default, in whichever template-owned module holds it.
CORE_DEFAULT = re.compile(r"^COMPLETION_MARKER_TTL = 24 \* 3600$", re.MULTILINE)
CHANGED_DEFAULT = "COMPLETION_MARKER_TTL = 48 * 3600"
#: A team that edits the same core line instead of overriding it.
TEAMS_DEFAULT = "COMPLETION_MARKER_TTL = 12 * 3600"

REPORT_TASK = '''"""The service's own task: the daily report."""

from celery import shared_task


@shared_task(name="reports.daily")
def daily(day: str) -> str:
    """Build the report of ``day``."""
    return f"report for {day}"
'''

REPORT_MODEL = """

class Report(Base):
    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[str] = mapped_column(String(10), unique=True)
"""

REPORT_MIGRATION = '''"""Create the reports table.

Revision ID: 5e1f0c2a7b3d
Revises: {down}
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e1f0c2a7b3d"
down_revision: str | None = "{down}"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("day", name=op.f("uq_reports_day")),
    )


def downgrade() -> None:
    op.drop_table("reports")
'''

README_SECTION = "\n## Reports\n\n`reports.daily` builds the day's report (docs/reports.md).\n"


def run(
    command: list[str], cwd: Path, *, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run as a developer would: the template's uv and cruft on the PATH, nothing leaking in."""
    env = {**clean_environment(), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check:
        assert result.returncode == 0, (
            f"{shlex.join(command)}:\n{result.stdout[-6000:]}{result.stderr[-4000:]}"
        )
    return result


def commit(repo: Path, message: str) -> None:
    run([*GIT, "add", "-A"], repo)
    run([*GIT, "commit", "-q", "--allow-empty", "-m", message], repo)


def head(repo: Path) -> str:
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This template in a repository of its own, checked out on ``main``."""
    copy = tmp_path_factory.mktemp("template") / "template"
    run([*GIT, "clone", "-q", "--no-checkout", str(TEMPLATE), str(copy)], TEMPLATE)
    run([*GIT, "checkout", "-q", "-B", "main", head(TEMPLATE)], copy)
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], TEMPLATE)
    for name in filter(None, listed.stdout.split("\0")):
        source, target = TEMPLATE / name, copy / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        elif target.exists():
            target.unlink()
    # scripts/relock runs the template's own tools from .venv.
    (copy / ".venv").symlink_to(TEMPLATE / ".venv")
    (copy / ".git" / "info").mkdir(exist_ok=True)
    with (copy / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write(".venv\n")
    commit(copy, "The working tree")
    return copy


def cruft_create(template: Path, parent: Path, answers: dict[str, str], checkout: str) -> Path:
    """Render with cruft at ``checkout``; commit the untouched render, as docs/updating.md says."""
    parent.mkdir()
    command = ["cruft", "create", "--no-input", "--checkout", checkout]
    run([*command, "--extra-context", json.dumps(answers), str(template)], parent)
    (project,) = parent.iterdir()
    run(["git", "init", "-q"], project)
    commit(project, "Render the template")
    return project


def answers_of(project: Path) -> dict[str, str]:
    return json.loads((project / ".cookiecutter.json").read_text())


def package(project: Path) -> Path:
    return project / "src" / answers_of(project)["package_name"]


def core_file(root: Path, line: re.Pattern[str] = CORE_DEFAULT) -> Path:
    """The one module under ``root/src`` with ``line``: where the core default lives."""
    (path,) = [path for path in (root / "src").rglob("*.py") if line.search(path.read_text())]
    return path


def customise(project: Path) -> None:
    """A team's first weeks: its own task, model and migration, an environment override, a doc,
    a README section and a dependency; core files untouched."""
    (package(project) / "tasks" / "reports.py").write_text(REPORT_TASK)
    (models,) = package(project).rglob("models.py")
    models.write_text(models.read_text() + REPORT_MODEL)
    versions = project / "migrations" / "versions"
    texts = [path.read_text() for path in versions.glob("*.py")]
    revisions = {re.search(r'^revision: str = "(\w+)"', text, re.M).group(1) for text in texts}
    revised = {
        name for text in texts for name in re.findall(r'^down_revision.* = "(\w+)"', text, re.M)
    }
    (down,) = revisions - revised
    (versions / "5e1f0c2a7b3d_create_reports.py").write_text(REPORT_MIGRATION.format(down=down))
    compose = project / "compose.yaml"
    # The worker's environment (the first service that has one; the beat's comes after).
    text, count = re.subn(
        r"^( +)(DATABASE_URL: .*\n)",
        r'\1\2\1BATCH_SIZE: "200"\n',
        compose.read_text(),
        count=1,
        flags=re.M,
    )
    assert count == 1
    compose.write_text(text)
    (project / "docs" / "reports.md").write_text("# Reports\n\nWhat the daily report reads.\n")
    with (project / "README.md").open("a") as readme:
        readme.write(README_SECTION)
    run(["uv", "add", "--no-sync", "tenacity"], project)
    commit(project, "Our reports")


def add_requirement(pyproject: Path, key: str, requirement: str) -> None:
    """Add ``requirement`` to the list ``key`` (``dependencies`` or a group), kept sorted."""
    text = pyproject.read_text()
    match = re.search(rf"^{key} = \[\n(.*?)^\]", text, re.M | re.S)
    items = sorted([*match.group(1).splitlines(), f'    "{requirement}",'], key=str.lower)
    pyproject.write_text(text[: match.start(1)] + "\n".join(items) + "\n" + text[match.end(1) :])


def convention_change(
    template: Path, branch: str, *, default: bool, requirement: tuple[str, str] | None
) -> None:
    """On a new branch of the template: a core default changed and a dependency added (relocked)."""
    run([*GIT, "checkout", "-q", "-b", branch, "main"], template)
    if default:
        path = core_file(template / PROJECT)
        path.write_text(CORE_DEFAULT.sub(CHANGED_DEFAULT, path.read_text()))
    if requirement:
        add_requirement(template / PROJECT / "pyproject.toml", *requirement)
        run(["scripts/relock"], template)
    commit(template, f"Convention change on {branch}")
    run([*GIT, "checkout", "-q", "main"], template)


def update(project: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return run([str(project / "scripts" / "update-from-template"), *options], project, check=False)


def workflow_steps(project: Path, name: str) -> tuple[dict[str | bool, object], list[str]]:
    """A rendered workflow's triggers and its steps' ``run`` commands, in order."""
    workflow = yaml.safe_load((project / ".github" / "workflows" / name).read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    # YAML 1.1 reads the key ``on`` as true.
    return workflow[True], [step["run"] for step in steps if "run" in step]


def drift_check(project: Path, checkout: str) -> subprocess.CompletedProcess[str]:
    """The scheduled drift workflow's command, against the template at ``checkout``."""
    triggers, commands = workflow_steps(project, "template-drift.yml")
    assert set(triggers) == {"schedule", "workflow_dispatch"}, "it must not block pull requests"
    (command,) = [command for command in commands if "cruft check" in command]
    return run([*shlex.split(command), "--checkout", checkout], project, check=False)


def leftovers_step(project: Path) -> list[str]:
    """CI's leftovers step, which runs before anything reads the lock."""
    _, commands = workflow_steps(project, "ci.yml")
    (command,) = [command for command in commands if "check-merge-leftovers" in command]
    assert commands.index(command) < commands.index("uv sync --locked")
    return shlex.split(command)


def assert_nothing_left(project: Path) -> None:
    """No conflict marker, rejected hunk or unmerged path, and uv's lock matches pyproject."""
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], project)
    files = [Path(name) for name in listed.stdout.splitlines()]
    marked = [
        str(name)
        for name in files
        if re.search(r"^(<<<<<<<|>>>>>>>)( |$)", (project / name).read_text(errors="replace"), re.M)
    ]
    assert marked == []
    assert [str(name) for name in files if name.suffix == ".rej"] == []
    assert run(["git", "ls-files", "--unmerged"], project).stdout == ""
    run(["uv", "lock", "--check"], project)
    run(leftovers_step(project), project)


def assert_customisations_kept(project: Path) -> None:
    assert "def daily(" in (package(project) / "tasks" / "reports.py").read_text()
    assert "class Report(Base)" in next(package(project).rglob("models.py")).read_text()
    assert (project / "migrations" / "versions" / "5e1f0c2a7b3d_create_reports.py").exists()
    assert 'BATCH_SIZE: "200"' in (project / "compose.yaml").read_text()
    assert (project / "README.md").read_text().endswith(README_SECTION)
    assert (project / "docs" / "reports.md").exists()
    assert 'name = "tenacity"' in (project / "uv.lock").read_text()


def assert_answers_agree(project: Path) -> None:
    """The rendered .cookiecutter.json holds the answers .cruft.json (authoritative) holds."""
    cruft = json.loads((project / ".cruft.json").read_text())["context"]["cookiecutter"]
    assert answers_of(project) == {key: value for key, value in cruft.items() if key[0] != "_"}


def assert_project_passes(project: Path) -> None:
    """CI's lint steps and the tests that need no worker or broker, on the updated project."""
    run(["uv", "sync", "--locked"], project)
    _, commands = workflow_steps(project, "ci.yml")
    for command in commands:
        if command.startswith("uv run ") and "pytest" not in command:
            run(shlex.split(command), project)
    # Wherever the layout puts them (tests/ or tests/core/).
    fast = [
        str(path.relative_to(project))
        for name in ("test_config.py", "test_migrations.py")
        for path in (project / "tests").rglob(name)
    ]
    assert len(fast) == 2, fast
    run(["uv", "run", "pytest", "-q", "-p", "no:cacheprovider", *fast], project)


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_customised_project_takes_a_convention_change(
    template: Path, tmp_path: Path, broker: str
) -> None:
    """Case B: a core default changed and a dependency added on top of HEAD arrive with no
    conflict in a project customised at HEAD."""
    project = cruft_create(template, tmp_path / "project", {"broker": broker}, "main")
    assert_answers_agree(project)
    customise(project)
    branch = f"convention-{broker}"
    convention_change(template, branch, default=True, requirement=("dependencies", "humanize>=4"))
    assert drift_check(project, branch).returncode == 1

    result = update(project, "--checkout", branch)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "took the template's" not in result.stdout
    assert_nothing_left(project)
    core_file(project, re.compile(f"^{re.escape(CHANGED_DEFAULT)}$", re.M))
    assert 'name = "humanize"' in (project / "uv.lock").read_text()
    assert_customisations_kept(project)
    assert_answers_agree(project)
    assert drift_check(project, branch).returncode == 0, "cruft check after the update"
    assert_project_passes(project)


@pytest.mark.slow
@pytest.mark.skipif(
    LAYOUT_COMMIT is None,
    reason="no commit with the core/service layout yet: pin LAYOUT_COMMIT once it has landed",
)
def test_project_rendered_at_an_earlier_commit_updates_to_head(
    template: Path, tmp_path: Path
) -> None:
    """Case A: a project rendered at LAYOUT_COMMIT and customised takes every later change."""
    assert LAYOUT_COMMIT is not None
    known = run(["git", "cat-file", "-e", f"{LAYOUT_COMMIT}^{{commit}}"], template, check=False)
    assert known.returncode == 0, f"{LAYOUT_COMMIT} is not in this clone: it needs the history"
    project = cruft_create(template, tmp_path / "project", {"broker": "redis"}, LAYOUT_COMMIT)
    customise(project)

    result = update(project, "--checkout", "main")

    assert result.returncode == 0, result.stdout + result.stderr
    assert_nothing_left(project)
    assert_customisations_kept(project)
    assert_answers_agree(project)
    assert json.loads((project / ".cruft.json").read_text())["commit"] == head(template)
    assert_project_passes(project)


def test_lock_changed_on_both_sides_is_relocked_from_the_templates(
    template: Path, tmp_path: Path
) -> None:
    """The team's ``uv add tenacity`` and the template's new ``termcolor`` (which sorts right
    after it) both insert at one place in uv.lock: the update takes the template's lock and
    locks again, keeping both."""
    project = cruft_create(template, tmp_path / "project", {"broker": "redis"}, "main")
    run(["uv", "add", "--no-sync", "tenacity"], project)
    commit(project, "Retry with tenacity")
    convention_change(template, "dev-termcolor", default=False, requirement=("dev", "termcolor>=2"))

    result = update(project, "--checkout", "dev-termcolor")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "took the template's and re-locked" in result.stdout
    lock = (project / "uv.lock").read_text()
    assert 'name = "tenacity"' in lock
    assert 'name = "termcolor"' in lock
    assert_nothing_left(project)


@pytest.mark.parametrize("history", ["kept", "squashed"])
def test_edited_core_file_fails_the_update_naming_it(
    template: Path, tmp_path: Path, history: str
) -> None:
    """A team that edited the core line the template changes gets a conflict, or a rejected
    hunk when the history holds no untouched render: the update exits 1 naming the file, and
    CI's leftovers step fails too."""
    project = cruft_create(template, tmp_path / "project", {"broker": "redis"}, "main")
    if history == "squashed":
        shutil.rmtree(project / ".git")
        run(["git", "init", "-q"], project)
    edited = core_file(project)
    edited.write_text(CORE_DEFAULT.sub(TEAMS_DEFAULT, edited.read_text()))
    commit(project, "Our own default, in the core")
    branch = f"core-default-{history}"
    convention_change(template, branch, default=True, requirement=None)

    result = update(project, "--checkout", branch)

    assert result.returncode == 1, result.stdout + result.stderr
    listed = str(edited.relative_to(project)) + (".rej" if history == "squashed" else "")
    assert f"\n  {listed}\n" in result.stdout
    assert run(leftovers_step(project), project, check=False).returncode == 1


def test_plain_cookiecutter_project_adopts_cruft_as_documented(
    template: Path, tmp_path: Path
) -> None:
    """docs/updating.md's ``cruft link`` command links a project rendered with plain
    cookiecutter, with its answers, to the commit it was rendered from: nothing differs."""
    (tmp_path / "plain").mkdir()
    run(["cookiecutter", "--no-input", "-o", "plain", str(template), "broker=redis"], tmp_path)
    (project,) = (tmp_path / "plain").iterdir()
    run(["git", "init", "-q"], project)
    commit(project, "Render the template")
    guide = (project / "docs" / "updating.md").read_text()
    (link,) = re.findall(r"^uv run cruft link .*$", guide, re.M)
    link = link.replace("TEMPLATE_URL", str(template)).replace("TEMPLATE_COMMIT", head(template))

    run(["bash", "-c", link], project)

    assert json.loads((project / ".cruft.json").read_text())["commit"] == head(template)
    assert_answers_agree(project)
    run(["uv", "run", "--locked", "cruft", "diff", "--exit-code"], project)
