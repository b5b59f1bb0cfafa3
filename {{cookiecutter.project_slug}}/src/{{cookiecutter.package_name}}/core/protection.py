"""Task scale-in protection: ECS neither scales in nor deploys over a worker that holds tasks.

A thread of the worker's main process watches the requests Celery holds and asks the ECS agent
(``$ECS_AGENT_URI/task-protection/v1/state``) to protect the ECS task while any is held, refreshes
the protection every SCALE_IN_PROTECTION_REFRESH seconds and releases it once idle. The agent's
errors are logged and retried, never raised: a task runs whatever the agent answers. Outside ECS
(no ECS_AGENT_URI) nothing runs. Reasons: docs/design_decisions.md, "Scale-in protection".
"""

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from celery.worker import state

from . import config, logs

log = logs.get(__name__)

#: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection-endpoint.html
PATH = "/task-protection/v1/state"
#: How often the thread looks at the worker's requests when no new message wakes it.
CHECK_EVERY = 0.5
#: Longest wait for the agent's answer (it calls the ECS API on the worker's behalf).
REQUEST_TIMEOUT = 5.0
#: First pause after a failed call; each further failure doubles it, up to the refresh interval.
FIRST_RETRY = 1.0
#: What a call to the agent can raise besides AgentError: refused, reset, timed out, not JSON.
CALL_ERRORS = (OSError, http.client.HTTPException, ValueError)
#: The agent is on a link-local address: a proxy set for the service's own traffic must not see it.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class AgentError(Exception):
    """The agent answered without confirming the change; the message says what it answered."""


def answer_of(status: int, body: bytes) -> str:
    """The agent's answer as one line: its ``error`` code and message, or its ``failure`` reason."""
    try:
        answer = json.loads(body)
    except ValueError:
        return f"HTTP {status}: {body[:200]!r}"
    if not isinstance(answer, dict):
        return f"HTTP {status}: {answer!r}"
    error, failure = answer.get("error"), answer.get("failure")
    if isinstance(error, dict):
        return f"HTTP {status}: {error.get('Code')}: {error.get('Message')}"
    if isinstance(failure, dict):
        return f"HTTP {status}: failure {failure.get('Reason')}: {failure.get('Detail')}"
    return f"HTTP {status}: {answer}"


def put_state(url: str, enabled: bool, minutes: int) -> None:
    """Ask the agent to protect (for ``minutes``) or release the task; AgentError unless it did."""
    body: dict[str, Any] = {"ProtectionEnabled": enabled}
    if enabled:
        body["ExpiresInMinutes"] = minutes
    request = urllib.request.Request(  # noqa: S310 (the URL is ECS's agent, http by design)
        url,
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    try:
        with OPENER.open(request, timeout=REQUEST_TIMEOUT) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        raise AgentError(answer_of(error.code, error.read())) from error
    try:
        protection = json.loads(raw).get("protection")
    except (ValueError, AttributeError):
        protection = None
    if not isinstance(protection, dict) or protection.get("ProtectionEnabled") is not enabled:
        raise AgentError(answer_of(status, raw))


class Protector:
    """Keeps the agent's protection equal to "this worker holds a request"."""

    def __init__(self, url: str, minutes: int, refresh: float) -> None:
        self.url = url
        self.minutes = minutes
        self.refresh = refresh
        self.woken = threading.Event()
        #: What the agent last confirmed; None after a failed call (it may have done it or not).
        self.protected: bool | None = False
        self.refresh_at = 0.0
        self.retry_at = 0.0
        self.pause = FIRST_RETRY

    def run(self) -> None:
        while True:
            self.woken.wait(CHECK_EVERY)
            self.woken.clear()
            try:
                self.step()
            except Exception as error:  # the thread must outlive any surprise
                log.exception("protection.error", error=type(error).__name__)

    def step(self) -> None:
        # Reserved requests are the ones received and due (running or waiting for a process);
        # a countdown message is only reserved once due, so it never holds protection.
        busy = bool(state.reserved_requests)
        now = time.monotonic()
        due = busy != self.protected or (busy and now >= self.refresh_at)
        if not due or now < self.retry_at:
            return
        try:
            put_state(self.url, busy, self.minutes)
        except (AgentError, *CALL_ERRORS) as error:
            self.protected = None
            self.retry_at = now + self.pause
            log.warning(
                "protection.failed",
                wanted="protected" if busy else "released",
                error=str(error) or type(error).__name__,
                retry_in=self.pause,
            )
            self.pause = min(2 * self.pause, self.refresh)
            return
        if busy != self.protected:
            log.info("protection.protected" if busy else "protection.released")
        self.protected = busy
        self.refresh_at = now + self.refresh
        self.retry_at = 0.0
        self.pause = FIRST_RETRY


#: The worker's protector, once started (ECS only).
PROTECTOR: list[Protector] = []


def start(**_: Any) -> None:
    """``worker_ready`` receiver: protect the ECS task while the worker holds requests."""
    settings = config.current()
    if not settings.ecs_agent_uri:
        if settings.long_tasks:
            log.warning(
                "protection.unavailable",
                reason="the queue's tasks are long but ECS_AGENT_URI is not set: a stop cuts "
                "them off",
            )
        return
    if PROTECTOR:
        return
    protector = Protector(
        settings.ecs_agent_uri.rstrip("/") + PATH,
        settings.protection_minutes,
        settings.protection_refresh,
    )
    PROTECTOR.append(protector)
    threading.Thread(target=protector.run, name="scale-in-protection", daemon=True).start()
    log.info(
        "protection.on",
        expires_in_minutes=protector.minutes,
        refresh_every=protector.refresh,
    )


def wake(**_: Any) -> None:
    """``task_received`` receiver: a new request is protected at once, not at the next check."""
    for protector in PROTECTOR:
        protector.woken.set()
