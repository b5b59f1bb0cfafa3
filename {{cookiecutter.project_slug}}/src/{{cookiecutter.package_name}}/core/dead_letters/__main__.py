"""The dead-letter command: list, requeue and purge dead letters.

``python -m {{ cookiecutter.package_name }}.core.dead_letters list|requeue|purge`` reads the
worker's environment (CELERY_BROKER_URL, REDIS_URL, TASK_DEFAULT_QUEUE).
Exit status: 0 done, 1 an unknown task id (nothing is requeued), 2 bad usage, 69 the broker or
Redis does not answer.
"""

import argparse
import json
import sys
from collections.abc import Sequence

from ...celery_app import app
from .. import config
from . import DeadLetterError, StoreUnreachable, UnknownDeadLetters, store

#: EX_UNAVAILABLE: the broker or Redis does not answer.
EXIT_UNREACHABLE = 69
EXIT_UNKNOWN = 1


def parser() -> argparse.ArgumentParser:
    commands = argparse.ArgumentParser(
        prog="python -m {{ cookiecutter.package_name }}.core.dead_letters",
        description="Tasks set aside after TASK_DELIVERY_LIMIT deliveries, or rejected.",
    )
    commands.add_argument(
        "--queue",
        default=config.current().default_queue,
        help="the task queue whose dead letters to use (default: TASK_DEFAULT_QUEUE, %(default)s)",
    )
    verbs = commands.add_subparsers(dest="command", required=True)
    verbs.add_parser("list", help="print each dead letter as one JSON object per line")
    requeue = verbs.add_parser("requeue", help="publish dead letters to their queue again")
    requeue.add_argument("ids", nargs="*", metavar="ID", help="task ids to requeue")
    requeue.add_argument("--all", action="store_true", help="requeue every dead letter")
    verbs.add_parser("purge", help="delete every dead letter of the queue")
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    queue = arguments.queue
    try:
        if arguments.command == "list":
            for dead_letter in store.records(app, queue):
                print(json.dumps(dead_letter.as_json(), sort_keys=True, default=str))
        elif arguments.command == "requeue":
            if arguments.all == bool(arguments.ids):
                parser().error("requeue takes task ids or --all, not both and not neither")
            ids = None if arguments.all else list(dict.fromkeys(arguments.ids))
            for task_id in store.requeue(app, queue, ids):
                print(f"requeued {task_id}")
        else:
            print(f"purged {store.purge(app, queue)}")
    except UnknownDeadLetters as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNKNOWN
    except StoreUnreachable as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except DeadLetterError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNKNOWN
    return 0


if __name__ == "__main__":
    sys.exit(main())
