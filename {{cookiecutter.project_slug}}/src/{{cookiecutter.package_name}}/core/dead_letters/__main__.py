"""The dead-letter command: list, requeue and purge dead letters.

``python -m {{ cookiecutter.package_name }}.core.dead_letters list|requeue|purge`` reads the
worker's environment (CELERY_BROKER_URL, REDIS_URL, BROKER_NAMESPACE); every queue of
queues.py unless ``--queue`` names one.
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
        description="Tasks set aside after their queue's delivery_limit deliveries, or rejected.",
    )
    commands.add_argument(
        "--queue",
        choices=[queue.name for queue in config.current().queues],
        help="the queue of queues.py whose dead letters to use (default: every queue)",
    )
    verbs = commands.add_subparsers(dest="command", required=True)
    verbs.add_parser("list", help="print each dead letter as one JSON object per line")
    requeue = verbs.add_parser("requeue", help="publish dead letters to their queue again")
    requeue.add_argument("ids", nargs="*", metavar="ID", help="task ids to requeue")
    requeue.add_argument("--all", action="store_true", help="requeue every dead letter")
    verbs.add_parser("purge", help="delete every dead letter of the queue")
    return commands


def requeue_ids(queues: list[str], ids: list[str]) -> None:
    """Requeue ``ids`` from whichever queue holds each; none if any id is in none of them."""
    held = {letter.id: queue for queue in queues for letter in store.records(app, queue)}
    unknown = [task_id for task_id in ids if task_id not in held]
    if unknown:
        raise UnknownDeadLetters(f"queue {', '.join(map(repr, queues))}", unknown)
    for queue in queues:
        mine = [task_id for task_id in ids if held[task_id] == queue]
        for task_id in store.requeue(app, queue, mine) if mine else []:
            print(f"requeued {task_id}")


def run(arguments: argparse.Namespace, queues: list[str]) -> None:
    if arguments.command == "list":
        for queue in queues:
            for dead_letter in store.records(app, queue):
                print(json.dumps(dead_letter.as_json(), sort_keys=True, default=str))
    elif arguments.command == "requeue" and arguments.all:
        for queue in queues:
            for task_id in store.requeue(app, queue, None):
                print(f"requeued {task_id}")
    elif arguments.command == "requeue":
        requeue_ids(queues, list(dict.fromkeys(arguments.ids)))
    else:
        for queue in queues:
            print(f"purged {store.purge(app, queue)} from {queue}")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    if arguments.command == "requeue" and arguments.all == bool(arguments.ids):
        parser().error("requeue takes task ids or --all, not both and not neither")
    settings = config.current()
    names = [arguments.queue] if arguments.queue else [queue.name for queue in settings.queues]
    try:
        run(arguments, [settings.broker_queue(name) for name in names])
    except StoreUnreachable as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except DeadLetterError as error:  # an unknown id among them
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNKNOWN
    return 0


if __name__ == "__main__":
    sys.exit(main())
