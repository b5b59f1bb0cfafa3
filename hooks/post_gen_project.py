"""Finish the rendered project and print the next steps.

Files that only one broker uses have conditional names and are never rendered for the other, so
nothing is deleted here. The hook is offline and deterministic: it adds no random value, date or
download, so the same answers always give the same bytes (``cruft update`` relies on that).
"""

import bisect
import json
import re
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


def main():
    slug = ANSWERS["project_slug"]
    lock = Path("uv.lock")
    lock.write_text(sort_lock(lock.read_text(), slug))
    print(f"Next:\n  cd {slug}\n  uv sync --locked\n  uv run pytest")


if __name__ == "__main__":
    main()
