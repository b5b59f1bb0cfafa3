"""A queue of the service as ``queues.py`` defines it: plain data, read without dependencies.

Each queue gets its own workers (one ECS service, ``core/deploy_files.py``), limits and dead
letters; on the broker it is ``<BROKER_NAMESPACE>.<name>``.
"""

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import rules


@dataclass(frozen=True)
class Queue:
    """One queue and the workers that consume it (rules: ``rules.queue_problems``)."""

    name: str
    #: Pool processes per worker container.
    concurrency: int
    #: Seconds before a task gets SoftTimeLimitExceeded, and before its process is killed.
    soft_time_limit: float
    time_limit: float
    #: Seconds ECS waits between SIGTERM and SIGKILL: the worker's ``stopTimeout``.
    stop_timeout: int
    #: The worker's Fargate task size: CPU units and MiB.
    cpu: int
    memory: int
    #: Messages each pool process reserves; above 1 only for tasks short enough (rules.py).
    prefetch_multiplier: int = 1
    #: Deliveries that may end without the task finishing before it is dead-lettered.
    delivery_limit: int = 5
    #: True: tasks may outlast the stop window; in ECS scale-in protection holds deployments and
    #: scale-ins back while one runs (``core/protection.py``; rules.py: prefetch 1).
    long_tasks: bool = False
    #: Workers (ECS tasks) that autoscaling keeps, at least and at most; 0 only where the broker
    #: publishes the queue's depth while no worker runs (Amazon MQ).
    min_workers: int = 1
    max_workers: int = 10
    #: Waiting messages per worker that autoscaling aims at; None: what a worker clears while
    #: another is added (``rules.target_backlog``).
    backlog_per_worker: float | None = None
    #: Seconds after a scale-out before the next one, and after a scale-in before the next one.
    scale_out_cooldown: int = 60
    scale_in_cooldown: int = 300


def shown(value: object) -> str:
    """A setting's value as a message shows it: 90, not 90.0."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}"
    return str(value)


def defined_as(queue: Queue) -> Callable[[str], str]:
    """How a message names a field of ``queue`` and its value: where queues.py sets it."""
    return lambda field: f"queues.py {queue.name}.{field}={shown(getattr(queue, field))}"


def problems(definitions: Sequence[Queue]) -> list[str]:
    """Every rule ``queues.py`` breaks, one line each (for tools that read it alone)."""
    found = definition_problems(definitions)
    for queue in definitions if not found else ():
        found += rules.queue_problems(queue, defined_as(queue))
    return found


def broker_name(namespace: str, queue: str) -> str:
    """The queue's name on the broker: the service's namespace keeps it apart from other apps."""
    return f"{namespace}.{queue}"


#: The types of a queue's fields, checked before any rule reads them.
NUMBERS = {
    field.name: (int,) if field.type in (int, "int") else (int, float)
    for field in dataclasses.fields(Queue)
    if field.name not in ("name", "long_tasks")
}
#: The fields that may be None: the rules then derive the value.
OPTIONAL = {field.name for field in dataclasses.fields(Queue) if field.default is None}


def definition_problems(definitions: Sequence[Queue]) -> list[str]:
    """``queues.py``: at least one queue, each named once by the rules, its values numbers.

    The rules of the values themselves: ``rules.queue_problems``.
    """
    if not definitions:
        return ["queues.py QUEUES=(): must define at least one queue"]
    problems = []
    names = [getattr(queue, "name", None) for queue in definitions]
    for position, queue in enumerate(definitions):
        if not isinstance(queue, Queue):
            problems.append(f"queues.py QUEUES[{position}]={queue!r}: must be a core.queues.Queue")
            continue
        rule = rules.queue_name_rule(queue.name) if isinstance(queue.name, str) else "must be text"
        if rule is None and names.count(queue.name) > 1:
            rule = "must be unique (each queue has its own workers and ECS service)"
        if rule:
            problems.append(f"queues.py name={queue.name!r}: {rule}")
        for field, types in NUMBERS.items():
            value = getattr(queue, field)
            if value is None and field in OPTIONAL:
                continue
            if isinstance(value, bool) or not isinstance(value, types):
                kind = "a whole number" if types == (int,) else "a number"
                problems.append(f"queues.py {queue.name}.{field}={value!r}: must be {kind}")
        if not isinstance(queue.long_tasks, bool):
            problems.append(
                f"queues.py {queue.name}.long_tasks={queue.long_tasks!r}: must be True or False"
            )
    return problems
