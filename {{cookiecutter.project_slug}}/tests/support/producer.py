"""A producer process, as a web app or a cron job publishes: one task at a time, each outcome told.

``python -m tests.support.producer PREFIX COUNT PAUSE`` publishes ``probe.work`` for the items
``PREFIX-0`` .. ``PREFIX-<COUNT-1>`` with the environment's CELERY_BROKER_URL, and prints one JSON
line per publish: the item, whether it returned or raised (and what), and how long it took.
"""

import json
import sys
import time

from {{ cookiecutter.package_name }}.celery_app import app

#: Seconds each probe task works.
WORK_SECONDS = 0.05


def main(prefix: str, count: int, pause: float) -> None:
    for index in range(count):
        item = f"{prefix}-{index}"
        began = time.monotonic()
        outcome: dict[str, object] = {"item": item, "ok": True}
        try:
            app.send_task("probe.work", args=[item, WORK_SECONDS])
        except Exception as error:  # every failure is reported, none hidden
            outcome = {"item": item, "ok": False, "error": f"{type(error).__name__}: {error}"}
        outcome["seconds"] = round(time.monotonic() - began, 3)
        print(json.dumps(outcome), flush=True)
        time.sleep(pause)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
