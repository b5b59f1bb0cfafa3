"""The rendered lock is uv's own for every project name: ``uv lock`` and ``uv add`` move nothing.

The lock is committed with the project's entry where its placeholder name sorted; the post-gen
hook moves it to where uv keeps it, so a team's first ``uv lock`` does not rewrite the file and
a later template update that re-locks applies without a conflict.
"""

import re
import subprocess
from pathlib import Path

import pytest

from .conftest import bake, clean_environment
from .test_rendered import UV

#: Project names that sort before, between and after every locked package.
SLUGS = ["aaa-first", "m-middle", "zzz-last"]
#: A small pure-Python package with no dependencies, not in the lock.
ADDED = "tenacity"


def uv(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [UV, *args],
        cwd=project,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def package_names(project: Path) -> list[str]:
    return re.findall(
        r'^\[\[package\]\]\nname = "([^"]+)"', (project / "uv.lock").read_text(), re.M
    )


@pytest.mark.parametrize("slug", SLUGS)
def test_lock_is_uvs_own_for_any_project_name(tmp_path: Path, slug: str) -> None:
    project = bake(tmp_path, {"project_slug": slug})
    rendered = (project / "uv.lock").read_text()
    names = package_names(project)
    assert names == sorted(names)
    assert slug in names

    locked = uv(project, "lock")
    assert locked.returncode == 0, locked.stderr
    assert (project / "uv.lock").read_text() == rendered, "uv lock rewrote the rendered lock"

    assert ADDED not in names, "the test must add a package the lock does not have yet"
    added = uv(project, "add", "--no-sync", ADDED)
    assert added.returncode == 0, added.stderr
    after = package_names(project)
    assert [name for name in after if name != ADDED] == names
    assert after == sorted(after)
