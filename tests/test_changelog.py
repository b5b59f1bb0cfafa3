"""CHANGELOG.md tells a service about every setting it can be given, and the README points to it."""

import re
from pathlib import Path

import pytest

from .combinations import TEMPLATE
from .conftest import bake

#: An environment variable as the service reads it (a configuration field's alias, os.environ)
#: or documents it (a row of the README's settings table).
READ = re.compile(r'alias="([A-Z][A-Z0-9_]+)"|environ(?:\.get\(|\[)"([A-Z][A-Z0-9_]+)"')
DOCUMENTED = re.compile(r"^\| `([A-Z][A-Z0-9_]+)` \|", re.MULTILINE)


def environment_variables(project: Path) -> set[str]:
    read = {
        name
        for path in (project / "src").rglob("*.py")
        for match in READ.finditer(path.read_text())
        for name in match.groups()
        if name
    }
    return read | set(DOCUMENTED.findall((project / "README.md").read_text()))


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_changelog_names_every_environment_variable(tmp_path: Path, broker: str) -> None:
    variables = environment_variables(bake(tmp_path, {"broker": broker}))
    changelog = (TEMPLATE / "CHANGELOG.md").read_text()
    assert {"CELERY_BROKER_URL", "REDIS_URL", "REMAP_SIGTERM"} <= variables
    assert sorted(name for name in variables if f"`{name}`" not in changelog) == []


def test_readme_links_the_changelog() -> None:
    assert "(CHANGELOG.md)" in (TEMPLATE / "README.md").read_text()
