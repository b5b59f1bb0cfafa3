"""The rules that the template's answers, the service's configuration and its ECS files share.

Plain Python without dependencies: the template's pre-generation hook loads this very file, the
configuration check, the deploy-file generator and the deploy tests import it, so each rule is
written once.
"""

import re
from collections.abc import Callable
from typing import Any

#: Fargate task sizes: CPU units -> allowed memory (MiB).
#: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size
FARGATE_MEMORY: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}
#: ECS (Fargate) accepts a container stopTimeout of 2..120 seconds.
STOP_TIMEOUT_RANGE = (2, 120)
#: The beat's Fargate size and stopTimeout: it publishes a few messages and stops at SIGTERM.
BEAT_CPU, BEAT_MEMORY, BEAT_STOP_TIMEOUT = 256, 512, 10
#: At most this many seconds of the stop window are kept for cancel, requeue and disconnect.
LONGEST_RESERVE = 15.0
#: A queue's name: part of its ECS family and service names and of its broker queue's name.
QUEUE_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
QUEUE_NAME_LENGTH = 32
#: ``<project>-beat`` is the beat's ECS family and service.
RESERVED_QUEUE_NAMES = ("beat",)
#: A message may be delivered once more after its worker was lost before it is dead-lettered.
MIN_DELIVERY_LIMIT = 2
#: Seconds autoscaling needs to add a worker: target tracking scales out after 3 one-minute
#: datapoints above its target, and a Fargate task then takes about a minute to start.
SCALE_OUT_SECONDS = 180
#: Metric namespaces whose queue depth the broker publishes itself, with or without workers.
DEPTH_WITHOUT_WORKERS = ("AWS/AmazonMQ",)


def fargate_memory_rule(cpu: int, memory: int, cpu_name: str) -> str | None:
    """Why ``cpu``/``memory`` is not a Fargate task size, or None; ``cpu_name`` names the CPU."""
    if cpu not in FARGATE_MEMORY:
        return f"must be a Fargate CPU size ({', '.join(map(str, FARGATE_MEMORY))})"
    allowed = FARGATE_MEMORY[cpu]
    if memory in allowed:
        return None
    step = allowed[1] - allowed[0]
    return f"with {cpu_name} {cpu} Fargate allows {allowed[0]}-{allowed[-1]} MiB in steps of {step}"


def stop_timeout_rule(stop_timeout: float) -> str | None:
    low, high = STOP_TIMEOUT_RANGE
    if low <= stop_timeout <= high:
        return None
    return f"must be {low}-{high} seconds (the stopTimeout range ECS accepts)"


def shutdown_reserve(stop_timeout: float) -> float:
    """Seconds kept free at the end of the stop window for cancel, requeue and disconnect."""
    return min(LONGEST_RESERVE, stop_timeout / 2)


def shutdown_window(stop_timeout: float) -> float:
    """Longest wait for running tasks, and longest task, that leave the reserve before SIGKILL."""
    return stop_timeout - shutdown_reserve(stop_timeout)


def time_limit_rule(time_limit: float, stop_timeout: float, stop_shown: str) -> str | None:
    """A running task must always end before SIGKILL; ``stop_shown`` names the stop timeout."""
    if time_limit <= shutdown_window(stop_timeout):
        return None
    return (
        f"must fit the shutdown window of {shutdown_window(stop_timeout):g} s ({stop_shown} minus "
        f"{shutdown_reserve(stop_timeout):g} s for requeue and disconnect), so a running task "
        "always finishes before SIGKILL"
    )


def soft_time_limit_rule(soft_time_limit: float, time_limit: float, hard_shown: str) -> str | None:
    """The task gets its SoftTimeLimitExceeded before the hard limit kills it."""
    if soft_time_limit <= 0:
        return "must be above 0"
    if soft_time_limit >= time_limit:
        return f"must be below {hard_shown}, or the task never gets the chance to clean up"
    return None


def queue_name_rule(name: str) -> str | None:
    """A queue's name names its ECS service and task family (``<project>-<queue>``)."""
    if not QUEUE_NAME.fullmatch(name) or len(name) > QUEUE_NAME_LENGTH:
        return (
            f"must be 1-{QUEUE_NAME_LENGTH} lowercase letters, digits and single hyphens, "
            "starting with a letter (it names the queue's ECS service and task family)"
        )
    if name in RESERVED_QUEUE_NAMES:
        return "is taken by the beat's ECS service and task family"
    return None


def prefetch_rule(
    prefetch: int, time_limit: float, stop_timeout: float, hard_shown: str
) -> str | None:
    """A worker holds no more work than it could finish inside the shutdown window.

    Each pool process runs its reserved messages one after another: at most ``prefetch`` hard
    limits, which bounds both the wait of a reserved message and what a stop hands back.
    """
    if prefetch < 1:
        return "must be at least 1"
    if prefetch == 1 or prefetch * time_limit <= shutdown_window(stop_timeout):
        return None
    return (
        f"times {hard_shown} must fit the shutdown window of {shutdown_window(stop_timeout):g} s: "
        "a worker may reserve only as much work as it could finish before SIGKILL (prefetch "
        "above 1 suits short tasks)"
    )


def long_tasks_prefetch_rule(prefetch: int) -> str | None:
    """A queue of long tasks reserves nothing: a reserved message would wait out a long task."""
    if prefetch == 1:
        return None
    return "must be 1 on a queue of long tasks, whose reserved messages would wait for hours"


def target_backlog(queue: Any) -> float:
    """Waiting messages per worker that autoscaling aims at: the queue's own, or the backlog a
    worker clears, at worst, in the time it takes to add one (``SCALE_OUT_SECONDS``)."""
    if queue.backlog_per_worker is not None:
        return float(queue.backlog_per_worker)
    return round(queue.concurrency * SCALE_OUT_SECONDS / queue.time_limit, 2) or 0.01


def scaling_rules(queue: Any, shown: Callable[[str], str]) -> dict[str, str | None]:
    """The autoscaling settings of a queue: a range of workers, a target, cooldowns."""
    lowest = max(queue.min_workers, 1)
    return {
        "min_workers": "must be 0 or more" if queue.min_workers < 0 else None,
        "max_workers": None
        if queue.max_workers >= lowest
        else f"must be at least 1 and at least {shown('min_workers')}",
        "backlog_per_worker": "must be above 0 (or None: derived from the concurrency and "
        "hard limit)"
        if queue.backlog_per_worker is not None and queue.backlog_per_worker <= 0
        else None,
        "scale_out_cooldown": "must be 0 or more" if queue.scale_out_cooldown < 0 else None,
        "scale_in_cooldown": None
        if queue.scale_in_cooldown >= queue.stop_timeout
        else f"must be at least {shown('stop_timeout')} s, so the workers a scale-in stops "
        "have left before the next scale-in is decided",
    }


def zero_workers_rule(min_workers: int, depth_namespace: str) -> str | None:
    """A queue may scale to 0 workers only if its depth is published while none runs."""
    if min_workers != 0 or depth_namespace in DEPTH_WITHOUT_WORKERS:
        return None
    return (
        f"must be at least 1: the queue's depth (namespace {depth_namespace}) is published by "
        "its workers, so at 0 workers nothing would ever start one again"
    )


def queue_problems(queue: Any, shown: Callable[[str], str]) -> list[str]:
    """Every rule a queue's settings break (``queues.Queue`` fields), one line each; a queue
    of ``long_tasks`` may outlast its stop window.

    ``shown(field)`` names the setting and its value as the reader set it (``queues.py`` or the
    worker's environment).
    """
    size = "cpu" if queue.cpu not in FARGATE_MEMORY else "memory"
    rules = {
        "stop_timeout": stop_timeout_rule(queue.stop_timeout),
        "soft_time_limit": soft_time_limit_rule(
            queue.soft_time_limit, queue.time_limit, shown("time_limit")
        ),
        "time_limit": None
        if queue.long_tasks
        else time_limit_rule(queue.time_limit, queue.stop_timeout, shown("stop_timeout")),
        "prefetch_multiplier": long_tasks_prefetch_rule(queue.prefetch_multiplier)
        if queue.long_tasks
        else prefetch_rule(
            queue.prefetch_multiplier, queue.time_limit, queue.stop_timeout, shown("time_limit")
        ),
        "concurrency": "must be at least 1" if queue.concurrency < 1 else None,
        "delivery_limit": (
            f"must be at least {MIN_DELIVERY_LIMIT}, so a task whose worker was lost once is "
            "delivered again instead of dead-lettered"
            if queue.delivery_limit < MIN_DELIVERY_LIMIT
            else None
        ),
        size: fargate_memory_rule(queue.cpu, queue.memory, "cpu"),
        **scaling_rules(queue, shown),
    }
    return [f"{shown(field)}: {rule}" for field, rule in rules.items() if rule]
