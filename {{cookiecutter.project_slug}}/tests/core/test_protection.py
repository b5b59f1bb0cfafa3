"""Task scale-in protection, against a local server that answers as the ECS agent's endpoint does.

Real workers run with ``ECS_AGENT_URI`` pointing at ``support/ecs_agent.py``, which records every
call: a worker is protected while it runs a task and released once idle, refreshes before the
expiry, and runs its tasks on time whatever the endpoint does. The emulated ECS scale-in and
deployment stop a worker only once it is unprotected, so a task longer than the stop window
completes; without protection the same stop cuts it off and hands it back.
"""

import socket
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from {{ cookiecutter.package_name }}.core import protection
from {{ cookiecutter.package_name }}.core.dead_letters import store

from ..conftest import QUEUE
from ..support.ecs_agent import FAULTS, Agent, running_agent
from ..support.runs import runs_of
from ..support.workers import Fleet, Worker, wait_for

pytestmark = pytest.mark.slow

ENV = {
    "ECS_STOP_TIMEOUT": "30",
    "TASK_SOFT_TIME_LIMIT": "9",
    "TASK_TIME_LIMIT": "10",
    "WORKER_CONCURRENCY": "1",
}
#: The default expiry for a 10 s hard limit refreshed every 60 s: ceil(70 / 60) + 2 minutes.
EXPECTED_MINUTES = 4


@pytest.fixture
def agent() -> Iterator[Agent]:
    with running_agent() as running:
        yield running


def started(client: redis.Redis, item: str) -> bool:
    return bool(runs_of(client, item))


def completed_once(client: redis.Redis, item: str) -> bool:
    return [run.completed for run in runs_of(client, item)] == [True]


def test_protected_while_a_task_runs_and_released_when_idle(
    fleet: Fleet, agent: Agent, redis_client: redis.Redis, item: str
) -> None:
    task, uri = agent.new_task()
    worker = fleet.start_ready({**ENV, "ECS_AGENT_URI": uri})
    assert worker.events("protection.on", expires_in_minutes=EXPECTED_MINUTES)
    assert agent.calls_of(task) == [], "an idle worker asked for protection"

    fleet.app.send_task("probe.work", args=[item, 3])
    wait_for(lambda: agent.protected(task), 10, "the worker to be protected")
    assert not completed_once(redis_client, item), "protected only after the task had ended"
    wait_for(lambda: completed_once(redis_client, item), 30, "the task to complete")
    wait_for(lambda: not agent.protected(task), 10, "the idle worker to be released")

    [run] = runs_of(redis_client, item)
    [(protected_at, released_at)] = agent.tasks[task].spans
    assert run.end is not None
    assert protected_at < run.end < released_at, (run, protected_at)
    bodies = [call.body for call in agent.calls_of(task)]
    assert bodies[0] == {"ProtectionEnabled": True, "ExpiresInMinutes": EXPECTED_MINUTES}
    assert bodies[-1] == {"ProtectionEnabled": False}
    assert {call.status for call in agent.calls_of(task)} == {200}


def test_protection_is_refreshed_before_it_expires(
    fleet: Fleet, agent: Agent, redis_client: redis.Redis, item: str
) -> None:
    task, uri = agent.new_task()
    env = {
        **ENV,
        "ECS_AGENT_URI": uri,
        "SCALE_IN_PROTECTION_MINUTES": "1",
        "SCALE_IN_PROTECTION_REFRESH": "1",
    }
    fleet.start_ready(env)
    fleet.app.send_task("probe.work", args=[item, 4])
    wait_for(lambda: completed_once(redis_client, item), 30, "the task to complete")
    wait_for(lambda: not agent.protected(task), 10, "the idle worker to be released")

    [run] = runs_of(redis_client, item)
    assert run.end is not None
    enables = [call for call in agent.calls_of(task) if call.body["ProtectionEnabled"]]
    during = [call for call in enables if run.start <= call.at <= run.end]
    assert len(during) >= 3, f"{len(during)} refreshes in a 4 s run refreshed every second"
    assert {call.body["ExpiresInMinutes"] for call in enables} == {1}
    assert len(agent.tasks[task].spans) == 1, "the protection lapsed between two refreshes"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("fault", [*FAULTS, "refused"])
def test_a_failing_endpoint_neither_fails_nor_delays_tasks(
    fleet: Fleet, agent: Agent, redis_client: redis.Redis, fault: str
) -> None:
    task, uri = agent.new_task()
    if fault == "refused":
        uri = f"http://127.0.0.1:{free_port()}/api/{task}"
    else:
        agent.fault = fault
    worker = fleet.start_ready({**ENV, "ECS_AGENT_URI": uri})
    items = [uuid.uuid4().hex for _ in range(3)]
    for item in items:
        fleet.app.send_task("probe.work", args=[item, 0.3])
    wait_for(
        lambda: all(completed_once(redis_client, item) for item in items),
        30,
        "every task to complete once",
    )

    runs = [run for item in items for run in runs_of(redis_client, item)]
    first_start = min(run.start for run in runs)
    last_end = max(run.end or 0 for run in runs)
    # One call that hangs until its timeout would hold the next message back that long.
    assert last_end - first_start < protection.REQUEST_TIMEOUT, (
        f"three 0.3 s tasks took {last_end - first_start:.1f} s"
    )
    wait_for(
        lambda: worker.events("protection.failed", wanted="protected"),
        protection.REQUEST_TIMEOUT + 10,
        "the worker to log the failed call",
    )
    if fault != "refused":
        assert agent.calls_of(task), "the endpoint was never called"
    assert not agent.protected(task)


def test_no_protection_outside_ecs(fleet: Fleet, redis_client: redis.Redis, item: str) -> None:
    worker = fleet.start_ready({**ENV, "ECS_AGENT_URI": ""})
    fleet.app.send_task("probe.work", args=[item, 0.3])
    wait_for(lambda: completed_once(redis_client, item), 30, "the task to complete")
    protection_lines = [
        line for line in worker.output().splitlines() if '"event": "protection.' in line
    ]
    assert protection_lines == []


#: A stop window shorter than the task: 8 s, of which 4 s for running tasks and 4 s to cut them
#: off and hand them back (on a loaded machine that takes over 2 s).
STOP_TIMEOUT = 8.0
LONG_ENV = {
    "ECS_STOP_TIMEOUT": f"{STOP_TIMEOUT:g}",
    "TASK_SOFT_TIME_LIMIT": "11",
    "TASK_TIME_LIMIT": "12",
    "LONG_TASKS": "true",
    "WORKER_CONCURRENCY": "1",
}
LONG_TASK_SECONDS = 6.0


@pytest.mark.parametrize("how", ["scale-in", "deployment", "unprotected"])
def test_a_task_longer_than_the_stop_window_completes_through_a_scale_in(
    fleet: Fleet, agent: Agent, redis_client: redis.Redis, item: str, how: str
) -> None:
    """ECS stops a worker only once its protection ends, so the long task completes first.

    ``unprotected`` is the same stop without ECS_AGENT_URI: the task is cut off at the end of
    the window and handed back, which is what protection prevents.
    """
    task, uri = agent.new_task()
    env = {**LONG_ENV, "ECS_AGENT_URI": "" if how == "unprotected" else uri}
    worker = fleet.start_ready(env)
    sent = fleet.app.send_task("probe.work", args=[item, LONG_TASK_SECONDS])
    wait_for(lambda: started(redis_client, item), 30, "the long task to start")
    replacement: Worker | None = None
    if how == "deployment":  # the new ECS task starts first, with an agent endpoint of its own
        replacement = fleet.start_ready({**env, "ECS_AGENT_URI": agent.new_task()[1]})

    asked = time.time()
    stop = worker.scale_in_like_ecs(STOP_TIMEOUT, lambda: agent.protected(task), longest_wait=60)
    stopped = time.time() - stop.seconds

    assert (stop.exit_code, stop.sigkilled) == (0, False), stop
    first = runs_of(redis_client, item)[0]
    if how == "unprotected":
        assert not first.completed, "without protection the stop should have cut the task off"
        if replacement is None:
            fleet.start_ready(env)
        wait_for(lambda: any(r.completed for r in runs_of(redis_client, item)), 30, "its rerun")
        return
    assert first.completed
    assert first.end is not None
    assert asked < first.end <= stopped, "ECS stopped the worker before its task had ended"
    assert [run.completed for run in runs_of(redis_client, item)] == [True]
    letters = [letter for letter in store.records(fleet.app, QUEUE) if letter.id == sent.id]
    assert letters == []
