"""Finish the rendered project and print the next steps.

Files that only one broker uses have conditional names and are never rendered for the other, so
nothing is deleted here. Each queue's deploy files are written by the project's own generator
(``core/deploy_files.py``, plain Python), as a team regenerates them after adding a queue. The
hook is offline and deterministic: it adds no random value, date or download, so the same answers
always give the same bytes (``cruft update`` relies on that).
"""

import bisect
import contextlib
import importlib
import io
import json
import re
import sys
from pathlib import Path

ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")
PACKAGE = "\n[[package]]\n"


def sort_lock(lock, name):
    """Move the package ``name`` to its sorted place in ``lock``, where uv itself keeps it.

    The template's lock holds the project where its placeholder name sorted; left there, uv
    moves it on the team's first ``uv lock``, and a template update that re-locks conflicts.
    """
    head, *blocks = lock.split(PACKAGE)
    names = [re.match(r'name = "([^"]+)"', block).group(1) for block in blocks]
    block = blocks.pop(names.index(name))
    names.remove(name)
    blocks.insert(bisect.bisect(names, name), block)
    return PACKAGE.join([head, *blocks])


def write_deploy_files():
    """Run ``python -m <package>.core.deploy_files`` in this process, silently."""
    sys.path.insert(0, "src")
    generator = importlib.import_module(f"{ANSWERS['package_name']}.core.deploy_files")
    with contextlib.redirect_stdout(io.StringIO()):
        status = generator.main([])
    if status:
        sys.exit(status)


def main():
    slug = ANSWERS["project_slug"]
    lock = Path("uv.lock")
    lock.write_text(sort_lock(lock.read_text(), slug))
    write_deploy_files()
    print(f"Next:\n  cd {slug}\n  uv sync --locked\n  uv run pytest")


if __name__ == "__main__":
    main()
