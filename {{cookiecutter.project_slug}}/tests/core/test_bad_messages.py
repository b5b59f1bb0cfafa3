"""Messages a worker cannot run are dead-lettered with their reason, never dropped."""

import pickle
import uuid
from typing import Any

from {{ cookiecutter.package_name }}.core.dead_letters import message_id, store

from ..conftest import QUEUE
from ..support.workers import Fleet, wait_for

JSON = {"content_type": "application/json", "content_encoding": "utf-8"}


def publish_raw(fleet: Fleet, body: bytes, headers: dict[str, Any], **properties: Any) -> None:
    """Publish bytes to the session's queue as they are, the way a foreign producer might."""
    queue = fleet.app.amqp.queues[QUEUE]
    with fleet.app.connection_for_write() as connection:
        connection.Producer().publish(
            body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            headers=headers,
            declare=[queue],
            **properties,
        )


def test_every_kind_of_bad_message_is_dead_lettered_with_its_reason(fleet: Fleet) -> None:
    fleet.start_ready()
    ids = {kind: uuid.uuid4().hex for kind in ("json", "pickle", "unknown")}
    task_headers = {"lang": "py", "argsrepr": "()", "kwargsrepr": "{}", "retries": 0}
    publish_raw(
        fleet, b'[["unterminated', {**task_headers, "task": "probe.work", "id": ids["json"]}, **JSON
    )
    publish_raw(
        fleet,
        pickle.dumps([[], {}, {}]),
        {**task_headers, "task": "probe.work", "id": ids["pickle"]},
        content_type="application/x-python-serialize",
        content_encoding="binary",
    )
    publish_raw(
        fleet,
        b'[[1], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]',
        {**task_headers, "task": "probe.no_such_task", "id": ids["unknown"]},
        **JSON,
    )
    headerless = b'{"hello": "not a task"}'
    publish_raw(fleet, headerless, {}, **JSON)
    ids["headerless"] = message_id({}, {}, headerless)

    def recorded() -> dict[str, tuple[str, str, str]]:
        letters = store.records(fleet.app, QUEUE)
        return {letter.id: (letter.reason, letter.task, letter.error) for letter in letters}

    wait_for(lambda: set(ids.values()) <= set(recorded()), 30, "the four bad messages")
    letters = {key: recorded()[task_id] for key, task_id in ids.items()}
    assert letters["json"][:2] == ("undecodable", "probe.work")
    assert letters["json"][2].startswith("DecodeError: ")
    assert letters["pickle"][:2] == ("undecodable", "probe.work")
    assert letters["pickle"][2].startswith("ContentDisallowed: ")
    assert letters["unknown"][:2] == ("unknown_task", "probe.no_such_task")
    assert letters["unknown"][2].startswith("KeyError: ")
    assert letters["headerless"] == ("not_a_task", "", "")
