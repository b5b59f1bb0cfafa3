"""A local stand-in for the ECS agent's task scale-in protection endpoint, recording every call.

It answers as the agent does (amazon-ecs-agent, ``ecs-agent/tmds/handlers/taskprotection/v1``,
and https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection-endpoint.html):
``GET`` and ``PUT`` on ``/api/<container>/task-protection/v1/state``; a PUT body with an unknown
field, a wrong type or no ``ProtectionEnabled`` is a 400 ``InvalidParameterException``; an expiry
outside 1-2880 minutes is refused by the ECS API, which the agent passes on with its status and
request id. Success is a 200 with a ``protection`` object; ECS's own refusal of the task (a task
that is not part of a service) is a 200 with a ``failure`` object. ``fault`` makes every call
fail as the agent can: a 500, a missing IAM permission, a ``failure``, or no answer at all.
"""

import contextlib
import datetime
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH_SUFFIX = "/task-protection/v1/state"
MINUTES = (1, 2880)
DEFAULT_MINUTES = 120
#: The faults a test can set, each answering as the agent does in that case.
FAULTS = ("server_error", "access_denied", "task_not_valid", "hang")


@dataclass
class Call:
    at: float
    method: str
    task: str
    body: Any
    status: int | None = None


@dataclass
class Protection:
    enabled: bool = False
    until: float = 0.0
    #: (start, end) of each span the task was protected, as ``time.time()``.
    spans: list[list[float]] = field(default_factory=list)

    def active(self, now: float) -> bool:
        return self.enabled and now < self.until


class Agent:
    """Protection state per ECS task (the path's container id), and every call received."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.tasks: dict[str, Protection] = {}
        self.fault: str | None = None
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.server.daemon_threads = True

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/api"

    def uri_for(self, task: str) -> str:
        """The ``ECS_AGENT_URI`` of a worker: ECS injects one per container."""
        return f"{self.base}/{task}"

    def new_task(self) -> tuple[str, str]:
        task = uuid.uuid4().hex
        with self.lock:
            self.tasks[task] = Protection()
        return task, self.uri_for(task)

    def protected(self, task: str) -> bool:
        with self.lock:
            return self.tasks[task].active(time.time())

    def calls_of(self, task: str, method: str = "PUT") -> list[Call]:
        with self.lock:
            return [call for call in self.calls if call.task == task and call.method == method]

    def arn(self, task: str) -> str:
        return f"arn:aws:ecs:eu-west-1:123456789012:task/test-cluster/{task}"

    def answer(self, method: str, task: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        """Status and JSON body for one call, as the agent would answer it."""
        arn = self.arn(task)
        refused = self.refusal(method, task, raw, arn) or self.fault_answer(arn)
        if refused:
            return refused
        protection = self.tasks[task]
        now = time.time()
        if method == "PUT":
            request = json.loads(raw)
            minutes = request.get("ExpiresInMinutes", DEFAULT_MINUTES)
            if request["ProtectionEnabled"] and not MINUTES[0] <= minutes <= MINUTES[1]:
                message = "Expiration in minutes must be between 1 and 2880"
                error = {"Arn": arn, "Code": "InvalidParameterException", "Message": message}
                return 400, {"requestID": str(uuid.uuid4()), "error": error}
            self.update(protection, bool(request["ProtectionEnabled"]), minutes, now)
        active = protection.active(now)
        expires = (
            datetime.datetime.fromtimestamp(protection.until, datetime.UTC).isoformat()
            if active
            else None
        )
        body = {"ExpirationDate": expires, "ProtectionEnabled": active, "TaskArn": arn}
        return 200, {"protection": body}

    def refusal(
        self, method: str, task: str, raw: bytes, arn: str
    ) -> tuple[int, dict[str, Any]] | None:
        """The agent's own refusals: an unknown task, a body it cannot decode."""
        if task not in self.tasks:
            error = {"Code": "ResourceNotFoundException", "Message": "Failed to find a task"}
            return 404, {"error": error}
        if method != "PUT":
            return None
        try:
            request = json.loads(raw)
        except ValueError:
            request = None
        if not valid_request(request):
            message = "UpdateTaskProtection: failed to decode request"
            error = {"Code": "InvalidParameterException", "Message": message}
            return 400, {"error": error}
        if "ProtectionEnabled" not in request:
            message = "Invalid request: does not contain 'ProtectionEnabled' field"
            error = {"Arn": arn, "Code": "InvalidParameterException", "Message": message}
            return 400, {"error": error}
        return None

    def fault_answer(self, arn: str) -> tuple[int, dict[str, Any]] | None:
        """What the agent answers when ECS fails the call (``fault``)."""
        if self.fault == "server_error":
            error = {"Arn": arn, "Code": "ServerException", "Message": "Unexpected error occurred"}
            return 500, {"error": error}
        if self.fault == "access_denied":
            message = "User is not authorized to perform: ecs:UpdateTaskProtection"
            error = {"Arn": arn, "Code": "AccessDeniedException", "Message": message}
            return 400, {"requestID": str(uuid.uuid4()), "error": error}
        if self.fault == "task_not_valid":
            failure = {"Arn": arn, "Detail": None, "Reason": "TASK_NOT_VALID"}
            return 200, {"failure": failure}
        return None

    @staticmethod
    def update(protection: Protection, enabled: bool, minutes: int, now: float) -> None:
        """Protect until ``minutes`` from now (extending an active span), or release."""
        if enabled:
            until = now + minutes * 60
            if protection.active(now):
                protection.spans[-1][1] = until
            else:
                protection.spans.append([now, until])
            protection.enabled, protection.until = True, until
        else:
            if protection.active(now):
                protection.spans[-1][1] = now
            protection.enabled, protection.until = False, 0.0

    def handler(self) -> type[BaseHTTPRequestHandler]:
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads ``calls``."""

            def do_GET(self) -> None:
                self.serve("GET")

            def do_PUT(self) -> None:
                self.serve("PUT")

            def do_POST(self) -> None:
                self.send_error(405)

            def serve(self, method: str) -> None:
                if not (self.path.startswith("/api/") and self.path.endswith(PATH_SUFFIX)):
                    self.send_error(404)
                    return
                task = self.path[len("/api/") : -len(PATH_SUFFIX)]
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                call = Call(time.time(), method, task, body)
                with agent.lock:
                    agent.calls.append(call)
                    hang = agent.fault == "hang"
                if hang:
                    agent.closing.wait()
                    return
                with agent.lock:
                    status, answer = agent.answer(method, task, raw)
                    call.status = status
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def valid_request(request: Any) -> bool:
    """The agent decodes the body strictly: an object with only these fields, of these types."""
    if not isinstance(request, dict) or not request.keys() <= {
        "ProtectionEnabled",
        "ExpiresInMinutes",
    }:
        return False
    enabled = request.get("ProtectionEnabled", False)
    minutes = request.get("ExpiresInMinutes", 1)
    return isinstance(enabled, bool) and isinstance(minutes, int) and not isinstance(minutes, bool)


@contextlib.contextmanager
def running_agent() -> Iterator[Agent]:
    agent = Agent()
    thread = threading.Thread(target=agent.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        agent.closing.set()
        agent.server.shutdown()
        agent.server.server_close()
