"""The rules that the template's answers, the service's configuration and its ECS files share.

Plain Python without dependencies: the template's pre-generation hook loads this very file, the
configuration check and the deploy tests import it, so each rule is written once.
"""

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
