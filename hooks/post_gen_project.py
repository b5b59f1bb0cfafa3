"""Finish the rendered project and print the next steps.

Files that only one broker uses have conditional names and are never rendered for the other, so
nothing is deleted here. The hook is offline and deterministic: it adds no random value, date or
download, so the same answers always give the same bytes (``cruft update`` relies on that).
"""

import json

ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")


def main():
    slug = ANSWERS["project_slug"]
    print(f"Next:\n  cd {slug}\n  uv sync --locked\n  uv run pytest")


if __name__ == "__main__":
    main()
