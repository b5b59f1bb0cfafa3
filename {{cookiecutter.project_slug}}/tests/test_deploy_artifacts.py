"""The image and ECS artifacts agree with each other and with what ECS accepts, checked offline.

botocore's model of the ECS API checks the shape of both JSON files (unknown keys, wrong types,
missing required keys), as ``aws ecs register-task-definition`` and ``aws ecs create-service``
with ``--cli-input-json`` would. It checks no enum, range or Fargate rule: the checks here do,
along with what must agree between the Dockerfile, the task definition, the service and the code.
Each check is a function that returns its problems, and each is shown to find a broken copy.
"""

import copy
import importlib.util
import json
import os
import posixpath
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ParamValidationError
from botocore.model import ServiceModel
from botocore.validate import validate_parameters

from {{ cookiecutter.package_name }} import config, defaults, rules

from .support.workers import PROJECT, kill_group, wait_for

DEPLOY = PROJECT / "deploy" / "ecs"
HEALTHCHECK = DEPLOY / "healthcheck.py"
HADOLINT = Path(sys.executable).parent / "hadolint"
#: The package whose Celery app the container runs.
PACKAGE = defaults.__name__.rpartition(".")[0]

#: ECS's limits for a container health check, in seconds (retries: attempts).
HEALTH_CHECK_RANGES = {
    "interval": (5, 300),
    "timeout": (2, 60),
    "retries": (1, 10),
    "startPeriod": (0, 300),
}
AWSLOGS_OPTIONS = ("awslogs-group", "awslogs-region", "awslogs-stream-prefix")
#: A variable whose name holds one of these is a secret: it belongs in ``secrets``.
SECRET_WORDS = ("URL", "PASSWORD", "SECRET", "TOKEN", "KEY")
#: Without these the service falls back to its localhost defaults, so ECS must supply them.
REQUIRED_SECRETS = ("CELERY_BROKER_URL", "REDIS_URL", "DATABASE_URL")
#: Set by both the image and the task definition (the tests start workers from the latter).
SHARED_ENVIRONMENT = ("REMAP_SIGTERM", "ECS_STOP_TIMEOUT", "PYTHONUNBUFFERED")
ARN_PARTITION = r"arn:aws(?:-[a-z]+)*"
SECRET_ARN = re.compile(
    ARN_PARTITION + r":secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+(?::[^:]*:[^:]*:[^:]*)?"
)
PARAMETER_ARN = re.compile(ARN_PARTITION + r":ssm:[a-z0-9-]+:\d{12}:parameter/[\w/.-]+")
USER = re.compile(r"(?P<uid>\d+)(?::\d+)?")


@dataclass
class Artifacts:
    task_definition: dict[str, Any]
    service: dict[str, Any]
    dockerfile: str

    @property
    def container(self) -> dict[str, Any]:
        """The worker's container definition."""
        containers = self.task_definition["containerDefinitions"]
        return next(container for container in containers if container["name"] == "worker")

    @property
    def environment(self) -> dict[str, str]:
        return {item["name"]: item["value"] for item in self.container.get("environment", [])}


def load() -> Artifacts:
    return Artifacts(
        task_definition=json.loads((DEPLOY / "task-definition.json").read_text()),
        service=json.loads((DEPLOY / "service.json").read_text()),
        dockerfile=(PROJECT / "Dockerfile").read_text(),
    )


# The Dockerfile, read as the builder reads it.


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    arguments: str


def instructions(dockerfile: str) -> list[Instruction]:
    """Every instruction, continuation lines joined, comments and blank lines dropped."""
    found = []
    parts: list[str] = []
    start = 0
    for number, line in enumerate(dockerfile.splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not parts:
            start = number
        parts.append(text.removesuffix("\\").strip())
        if not text.endswith("\\"):
            keyword, _, arguments = " ".join(parts).partition(" ")
            found.append(Instruction(start, keyword.upper(), arguments.strip()))
            parts = []
    return found


def final_stage(dockerfile: str) -> list[Instruction]:
    """The instructions of the image that runs: those after the last FROM."""
    found = instructions(dockerfile)
    starts = [index for index, item in enumerate(found) if item.keyword == "FROM"]
    return found[starts[-1] + 1 :] if starts else found


def last(dockerfile: str, keyword: str) -> Instruction | None:
    matches = [item for item in final_stage(dockerfile) if item.keyword == keyword]
    return matches[-1] if matches else None


def image_environment(dockerfile: str) -> dict[str, str]:
    """The ENV of the final stage (``ENV A=1 B=2`` and the old ``ENV A 1``)."""
    env = {}
    for item in final_stage(dockerfile):
        if item.keyword != "ENV":
            continue
        words = shlex.split(item.arguments)
        if "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            name, _, value = word.partition("=")
            env[name] = value
    return env


def image_files(dockerfile: str) -> set[str]:
    """Absolute paths the final stage copies files to."""
    workdir = "/"
    paths = set()
    for item in final_stage(dockerfile):
        if item.keyword == "WORKDIR":
            workdir = posixpath.join(workdir, item.arguments)
        elif item.keyword == "COPY":
            *sources, target = [
                word for word in item.arguments.split() if not word.startswith("--")
            ]
            target = posixpath.join(workdir, target)
            if target.endswith("/"):
                paths.update(posixpath.join(target, posixpath.basename(s)) for s in sources)
            else:
                paths.add(posixpath.normpath(target))
    return paths


# The checks: each returns one line per problem, naming the setting, its value and the rule.


@cache
def ecs_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("ecs")


def api_problems(params: dict[str, Any], operation: str) -> list[str]:
    try:
        validate_parameters(params, ecs_model().operation_model(operation).input_shape)
    except ParamValidationError as error:
        return [f"{operation}: {error}"]
    return []


def check_task_definition_api(artifacts: Artifacts) -> list[str]:
    """The task definition is valid input for RegisterTaskDefinition."""
    return api_problems(artifacts.task_definition, "RegisterTaskDefinition")


def check_service_api(artifacts: Artifacts) -> list[str]:
    """The service is valid input for CreateService."""
    return api_problems(artifacts.service, "CreateService")


def check_fargate_task(artifacts: Artifacts) -> list[str]:
    """Fargate needs awsvpc, the FARGATE compatibility and a task size from its table."""
    definition = artifacts.task_definition
    problems = []
    if "FARGATE" not in definition.get("requiresCompatibilities", []):
        problems.append("requiresCompatibilities: must include FARGATE")
    if definition.get("networkMode") != "awsvpc":
        problems.append(f"networkMode={definition.get('networkMode')!r}: Fargate needs awsvpc")
    cpu, memory = definition.get("cpu"), definition.get("memory")
    if not all(isinstance(value, str) and value.isdigit() for value in (cpu, memory)):
        problems.append(f"cpu={cpu!r}, memory={memory!r}: Fargate needs both as strings of digits")
    elif int(cpu) not in rules.FARGATE_MEMORY:
        problems.append(f"cpu={cpu!r}: {rules.fargate_memory_rule(int(cpu), 0, 'cpu')}")
    elif rule := rules.fargate_memory_rule(int(cpu), int(memory), "cpu"):
        problems.append(f"memory={memory!r}: {rule}")
    return problems


def check_stop_timeout(artifacts: Artifacts) -> list[str]:
    """stopTimeout is in Fargate's range and is the window the service plans its shutdown for."""
    stop_timeout = artifacts.container.get("stopTimeout")
    env = artifacts.environment.get("ECS_STOP_TIMEOUT")
    problems = []
    if not isinstance(stop_timeout, int):
        problems.append(f"stopTimeout={stop_timeout!r}: must be a whole number of seconds")
    elif rule := rules.stop_timeout_rule(stop_timeout):
        problems.append(f"stopTimeout={stop_timeout!r}: {rule}")
    if env != str(stop_timeout):
        problems.append(
            f"environment ECS_STOP_TIMEOUT={env!r}: must equal stopTimeout={stop_timeout!r}, "
            "or the soft shutdown is planned for another stop window"
        )
    if stop_timeout != defaults.ECS_STOP_TIMEOUT:
        problems.append(
            f"stopTimeout={stop_timeout!r}: must equal defaults.ECS_STOP_TIMEOUT="
            f"{defaults.ECS_STOP_TIMEOUT} (the answer the project was rendered with)"
        )
    return problems


def check_health_check(artifacts: Artifacts) -> list[str]:
    """A health check in ECS's ranges that runs a script the image has and never asks the broker."""
    health = artifacts.container.get("healthCheck")
    if health is None:
        return ["healthCheck: missing; ECS would count a worker that never started as healthy"]
    problems = []
    command = health.get("command", [])
    if not command or command[0] not in ("CMD", "CMD-SHELL"):
        problems.append(f"healthCheck.command={command!r}: must start with CMD or CMD-SHELL")
    if any(Path(word).name == "celery" for part in command[1:] for word in part.split()):
        problems.append(
            f"healthCheck.command={command!r}: must not run celery, whose remote control goes "
            "through the broker: a broker outage would make ECS replace every healthy worker"
        )
    for word in command[1:]:
        if word.endswith(".py") and word not in image_files(artifacts.dockerfile):
            problems.append(f"healthCheck.command runs {word}: the Dockerfile does not copy it")
    for name, (low, high) in HEALTH_CHECK_RANGES.items():
        value = health.get(name)
        if value is not None and not (isinstance(value, int) and low <= value <= high):
            problems.append(f"healthCheck.{name}={value!r}: must be {low}-{high}")
    wait = float(
        artifacts.environment.get("STARTUP_DEPENDENCY_TIMEOUT", defaults.STARTUP_DEPENDENCY_TIMEOUT)
    )
    start_period, margin = health.get("startPeriod", 0), config.STARTUP_MARGIN
    if isinstance(start_period, int) and start_period < wait + margin:
        problems.append(
            f"healthCheck.startPeriod={start_period}: must be at least {wait + margin:g} "
            f"(STARTUP_DEPENDENCY_TIMEOUT={wait:g} + {margin} s to reach the broker), or ECS "
            "replaces a worker that is still waiting out a Redis or database failover"
        )
    return problems


def check_awslogs(artifacts: Artifacts) -> list[str]:
    """Logs go to CloudWatch without blocking the worker when the log stream is slow."""
    logging = artifacts.container.get("logConfiguration", {})
    options = logging.get("options", {})
    problems = []
    if logging.get("logDriver") != "awslogs":
        problems.append(f"logConfiguration.logDriver={logging.get('logDriver')!r}: must be awslogs")
    problems += [
        f"logConfiguration.options: {name} is missing"
        for name in AWSLOGS_OPTIONS
        if name not in options
    ]
    if options.get("mode") != "non-blocking":
        problems.append(
            f"logConfiguration.options.mode={options.get('mode')!r}: must be non-blocking, or a "
            "slow log stream stalls the worker"
        )
    return problems


def check_environment(artifacts: Artifacts) -> list[str]:
    """No secret in plain text: it would show in the console and in describe-task-definition."""
    return [
        f"environment {name}: looks like a secret ({word} in the name); move it to secrets"
        for name in artifacts.environment
        for word in SECRET_WORDS
        if word in name.upper()
    ]


def check_secrets(artifacts: Artifacts) -> list[str]:
    """The connection settings come from Secrets Manager or SSM parameters, by ARN."""
    secrets = {item["name"]: item["valueFrom"] for item in artifacts.container.get("secrets", [])}
    problems = [
        f"secrets {name}: missing; the worker would fall back to its localhost default"
        for name in REQUIRED_SECRETS
        if name not in secrets
    ]
    problems += [
        f"secrets {name} valueFrom={value!r}: must be a Secrets Manager secret or SSM parameter ARN"
        for name, value in secrets.items()
        if not (SECRET_ARN.fullmatch(value) or PARAMETER_ARN.fullmatch(value))
    ]
    return problems


def check_command(artifacts: Artifacts) -> list[str]:
    """The image's CMD is exec form and is exactly the command the task definition runs."""
    cmd = last(artifacts.dockerfile, "CMD")
    if cmd is None:
        return ["Dockerfile: no CMD"]
    try:
        image_command = json.loads(cmd.arguments)
    except json.JSONDecodeError:
        image_command = None
    if not (isinstance(image_command, list) and all(isinstance(w, str) for w in image_command)):
        return [
            f"Dockerfile line {cmd.line}: CMD {cmd.arguments}: must be exec form (a JSON array); "
            "in shell form /bin/sh gets the SIGTERM and Celery never does"
        ]
    problems = []
    command = artifacts.container.get("command")
    if command != image_command:
        problems.append(f"command={command!r}: differs from the Dockerfile's CMD {image_command!r}")
    if f"--app={PACKAGE}.celery_app" not in (command or []):
        problems.append(f"command={command!r}: must run --app={PACKAGE}.celery_app")
    return problems


def check_user(artifacts: Artifacts) -> list[str]:
    """Both run the worker as the same numeric, non-root user."""
    user = last(artifacts.dockerfile, "USER")
    image_user = user.arguments if user else None
    container_user = artifacts.container.get("user")
    problems = []
    for where, value in (("Dockerfile USER", image_user), ("user", container_user)):
        match = USER.fullmatch(value or "")
        if match is None:
            problems.append(f"{where}={value!r}: must be a numeric uid[:gid]")
        elif int(match["uid"]) == 0:
            problems.append(f"{where}={value!r}: must not be root (uid 0)")
    if image_user != container_user:
        problems.append(
            f"user={container_user!r}: differs from the Dockerfile's USER {image_user!r}"
        )
    return problems


def check_shared_environment(artifacts: Artifacts) -> list[str]:
    """The image and the task definition set the shutdown variables alike."""
    image = image_environment(artifacts.dockerfile)
    task = artifacts.environment
    problems = [
        f"{name}: Dockerfile ENV {image.get(name)!r}, task definition {task.get(name)!r}: "
        "both must set it, to the same value"
        for name in SHARED_ENVIRONMENT
        if name not in image or image.get(name) != task.get(name)
    ]
    if task.get("REMAP_SIGTERM") != "SIGQUIT":
        problems.append(
            f"REMAP_SIGTERM={task.get('REMAP_SIGTERM')!r}: must be SIGQUIT, or SIGTERM starts an "
            "unbounded warm shutdown that ECS ends with SIGKILL"
        )
    return problems


def check_image_build(artifacts: Artifacts) -> list[str]:
    """The image installs from the committed lock and compiles bytecode while it is writable."""
    problems = [
        f"Dockerfile line {item.line}: {item.arguments}: uv sync needs --locked"
        for item in instructions(artifacts.dockerfile)
        if item.keyword == "RUN"
        and "uv sync" in item.arguments
        and "--locked" not in item.arguments
    ]
    env_words = " ".join(
        i.arguments for i in instructions(artifacts.dockerfile) if i.keyword == "ENV"
    )
    if "UV_COMPILE_BYTECODE=1" not in env_words.split():
        problems.append(
            "Dockerfile: UV_COMPILE_BYTECODE=1 is not set, but the root filesystem is read-only "
            "at run time"
        )
    return problems


def check_hadolint(artifacts: Artifacts) -> list[str]:
    """hadolint reports nothing."""
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "--format", "json", "-"],
        input=artifacts.dockerfile,
        capture_output=True,
        text=True,
        cwd=PROJECT,
        check=False,
    )
    if result.returncode not in (0, 1) or not result.stdout.strip():
        return [f"hadolint exited {result.returncode}: {result.stderr.strip()}"]
    return [
        f"hadolint {finding['code']} line {finding['line']}: {finding['message']}"
        for finding in json.loads(result.stdout)
    ]


def check_service(artifacts: Artifacts) -> list[str]:
    """A Fargate service that replaces tasks before stopping old ones and rolls back on failure."""
    service = artifacts.service
    deployment = service.get("deploymentConfiguration", {})
    breaker = deployment.get("deploymentCircuitBreaker", {})
    network = service.get("networkConfiguration", {}).get("awsvpcConfiguration", {})
    family = artifacts.task_definition.get("family")
    expected = {
        "launchType": (service.get("launchType"), "FARGATE"),
        "taskDefinition": (service.get("taskDefinition"), family),
        "deploymentConfiguration.minimumHealthyPercent": (
            deployment.get("minimumHealthyPercent"),
            100,
        ),
        "deploymentConfiguration.maximumPercent": (deployment.get("maximumPercent"), 200),
        "deploymentCircuitBreaker.enable": (breaker.get("enable"), True),
        "deploymentCircuitBreaker.rollback": (breaker.get("rollback"), True),
        "enableExecuteCommand": (service.get("enableExecuteCommand"), False),
        "deploymentController.type": (
            service.get("deploymentController", {}).get("type", "ECS"),
            "ECS",
        ),
    }
    problems = [
        f"{name}={value!r}: must be {want!r}"
        for name, (value, want) in expected.items()
        if value != want
    ]
    for name in ("subnets", "securityGroups"):
        if not network.get(name):
            problems.append(f"awsvpcConfiguration.{name}: must list at least one")
    propagate = service.get("propagateTags")
    if propagate not in ("SERVICE", "TASK_DEFINITION"):
        problems.append(f"propagateTags={propagate!r}: must be SERVICE or TASK_DEFINITION")
    elif propagate == "SERVICE" and not service.get("tags"):
        problems.append("propagateTags=SERVICE: the service has no tags to propagate")
    return problems


Check = Callable[[Artifacts], list[str]]

CHECKS: list[Check] = [
    check_task_definition_api,
    check_service_api,
    check_fargate_task,
    check_stop_timeout,
    check_health_check,
    check_awslogs,
    check_environment,
    check_secrets,
    check_command,
    check_user,
    check_shared_environment,
    check_image_build,
    check_hadolint,
    check_service,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_artifacts_pass(check: Check) -> None:
    assert check(load()) == []


# Broken copies: each check must find the problem planted in one.

Mutation = Callable[[Artifacts], None]


def task(**changes: Any) -> Mutation:
    return lambda artifacts: artifacts.task_definition.update(changes)


def container(**changes: Any) -> Mutation:
    return lambda artifacts: artifacts.container.update(changes)


def health(**changes: Any) -> Mutation:
    return lambda artifacts: artifacts.container["healthCheck"].update(changes)


def logs(**options: Any) -> Mutation:
    return lambda artifacts: artifacts.container["logConfiguration"]["options"].update(options)


def service(**changes: Any) -> Mutation:
    return lambda artifacts: artifacts.service.update(changes)


def deployment(**changes: Any) -> Mutation:
    return lambda artifacts: artifacts.service["deploymentConfiguration"].update(changes)


def drop(path: str) -> Mutation:
    """Remove ``task.KEY...``, ``container.KEY...`` or ``service.KEY...``."""
    root, *keys = path.split(".")

    def mutate(artifacts: Artifacts) -> None:
        roots = {
            "task": artifacts.task_definition,
            "container": artifacts.container,
            "service": artifacts.service,
        }
        node = roots[root]
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return mutate


def environment(name: str, value: Callable[[Artifacts], str] | str) -> Mutation:
    """Set ``name`` in the task definition's environment."""

    def mutate(artifacts: Artifacts) -> None:
        entries = artifacts.container.setdefault("environment", [])
        entries[:] = [entry for entry in entries if entry["name"] != name]
        entries.append({"name": name, "value": value(artifacts) if callable(value) else value})

    return mutate


def secret(name: str, value_from: str | None) -> Mutation:
    """Set (or with None remove) the secret ``name``."""

    def mutate(artifacts: Artifacts) -> None:
        entries = artifacts.container["secrets"]
        entries[:] = [entry for entry in entries if entry["name"] != name]
        if value_from is not None:
            entries.append({"name": name, "valueFrom": value_from})

    return mutate


def dockerfile(pattern: str, replacement: str) -> Mutation:
    """Replace what ``pattern`` matches in the Dockerfile (it must match)."""

    def mutate(artifacts: Artifacts) -> None:
        changed, count = re.subn(pattern, replacement, artifacts.dockerfile, flags=re.MULTILINE)
        assert count, f"{pattern!r} matches nothing in the Dockerfile"
        artifacts.dockerfile = changed

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(artifacts: Artifacts) -> None:
        for mutation in mutations:
            mutation(artifacts)

    return mutate


def one_second_shorter(artifacts: Artifacts) -> str:
    return str(artifacts.container["stopTimeout"] - 1)


SHORTER = defaults.ECS_STOP_TIMEOUT - 1
APP = f"--app={PACKAGE}.celery_app"
SHELL_CMD = f"CMD celery {APP} worker"
OTHER_APP = ["celery", "--app=other.celery_app", "worker"]

#: check -> {case: (how to break a copy, what the check must then report)}
BROKEN: dict[Check, dict[str, tuple[Mutation, str]]] = {
    check_task_definition_api: {
        "cpu-not-a-string": (task(cpu=1024), "Invalid type for parameter cpu"),
        "unknown-key": (container(stopTimeOut=120), "Unknown parameter"),
        "no-family": (drop("task.family"), "Missing required parameter"),
    },
    check_service_api: {
        "wrong-type": (service(desiredCount="2"), "Invalid type for parameter desiredCount"),
        "no-name": (drop("service.serviceName"), "Missing required parameter"),
    },
    check_fargate_task: {
        "pair": (task(cpu="256", memory="4096"), "memory='4096': with cpu 256 Fargate allows"),
        "cpu": (task(cpu="300"), "cpu='300': must be"),
        "network": (task(networkMode="bridge"), "Fargate needs awsvpc"),
    },
    check_stop_timeout: {
        "range": (container(stopTimeout=300), "stopTimeout=300: must be 2-120"),
        "env": (environment("ECS_STOP_TIMEOUT", one_second_shorter), "must equal stopTimeout"),
        "defaults": (
            both(container(stopTimeout=SHORTER), environment("ECS_STOP_TIMEOUT", str(SHORTER))),
            "must equal defaults.ECS_STOP_TIMEOUT",
        ),
    },
    check_health_check: {
        "missing": (drop("container.healthCheck"), "healthCheck: missing"),
        "interval": (health(interval=3), "healthCheck.interval=3: must be 5-300"),
        "timeout": (health(timeout=90), "healthCheck.timeout=90: must be 2-60"),
        "retries": (health(retries=0), "healthCheck.retries=0: must be 1-10"),
        "start-period": (health(startPeriod=600), "healthCheck.startPeriod=600: must be 0-300"),
        "start-period-shorter-than-the-wait": (
            health(startPeriod=30),
            "healthCheck.startPeriod=30: must be at least 150 (STARTUP_DEPENDENCY_TIMEOUT=120",
        ),
        "wait-longer-than-start-period": (
            environment("STARTUP_DEPENDENCY_TIMEOUT", "200"),
            "healthCheck.startPeriod=150: must be at least 230",
        ),
        "no-cmd": (health(command=["python", "/app/healthcheck.py"]), "must start with CMD"),
        "asks-the-broker": (
            health(command=["CMD-SHELL", f"celery {APP} inspect ping"]),
            "must not run celery",
        ),
        "script-not-in-image": (
            health(command=["CMD", "python", "/app/other.py"]),
            "the Dockerfile does not copy it",
        ),
    },
    check_awslogs: {
        "blocking": (logs(mode="blocking"), "mode='blocking': must be non-blocking"),
        "region": (
            drop("container.logConfiguration.options.awslogs-region"),
            "awslogs-region is missing",
        ),
        "prefix": (
            drop("container.logConfiguration.options.awslogs-stream-prefix"),
            "awslogs-stream-prefix is missing",
        ),
        "driver": (container(logConfiguration={"logDriver": "json-file"}), "must be awslogs"),
    },
    check_environment: {
        "url": (
            environment("DATABASE_URL", "postgresql://app:hunter2@db/app"),
            "environment DATABASE_URL: looks like a secret",
        ),
        "token": (environment("SENTRY_TOKEN", "abc"), "environment SENTRY_TOKEN"),
        "lowercase": (environment("db_password", "hunter2"), "environment db_password"),
    },
    check_secrets: {
        "missing": (secret("DATABASE_URL", None), "secrets DATABASE_URL: missing"),
        "not-an-arn": (
            secret("REDIS_URL", "redis://cache:6379/0"),
            "must be a Secrets Manager secret or SSM parameter ARN",
        ),
        "other-service": (
            secret("REDIS_URL", "arn:aws:s3:::bucket/redis-url"),
            "secrets REDIS_URL valueFrom",
        ),
    },
    check_command: {
        "shell-form": (dockerfile(r"^CMD .*$", SHELL_CMD), "must be exec form"),
        "missing": (dockerfile(r"^CMD .*$", ""), "no CMD"),
        "differs": (
            container(command=["celery", APP, "worker"]),
            "differs from the Dockerfile's CMD",
        ),
        "other-app": (
            both(
                container(command=OTHER_APP),
                dockerfile(r"^CMD .*$", f"CMD {json.dumps(OTHER_APP)}"),
            ),
            f"must run {APP}",
        ),
    },
    check_user: {
        "by-name": (dockerfile(r"^USER .*$", "USER root"), "USER='root': must be a numeric uid"),
        "uid-0": (
            both(dockerfile(r"^USER .*$", "USER 0"), container(user="0")),
            "must not be root (uid 0)",
        ),
        "differs": (container(user="10002"), "differs from the Dockerfile's USER"),
        "missing": (dockerfile(r"^USER .*$", ""), "Dockerfile USER=None"),
    },
    check_shared_environment: {
        "remap-differs": (
            dockerfile(r"REMAP_SIGTERM=SIGQUIT", "REMAP_SIGTERM=SIGTERM"),
            "REMAP_SIGTERM: Dockerfile ENV 'SIGTERM'",
        ),
        "remap-off": (environment("REMAP_SIGTERM", ""), "REMAP_SIGTERM='': must be SIGQUIT"),
        "stop-timeout-differs": (
            dockerfile(r"ECS_STOP_TIMEOUT=\d+", "ECS_STOP_TIMEOUT=7"),
            "ECS_STOP_TIMEOUT: Dockerfile ENV '7'",
        ),
        "unbuffered-missing": (
            dockerfile(r"PYTHONUNBUFFERED=1", "PYTHONIOENCODING=utf-8"),
            "PYTHONUNBUFFERED: Dockerfile ENV None",
        ),
    },
    check_image_build: {
        "unlocked": (dockerfile(r"uv sync --locked", "uv sync"), "uv sync needs --locked"),
        "no-bytecode": (
            dockerfile(r"UV_COMPILE_BYTECODE=1", "UV_COMPILE_BYTECODE=0"),
            "UV_COMPILE_BYTECODE=1 is not set",
        ),
    },
    check_hadolint: {
        "shell-cmd": (dockerfile(r"^CMD .*$", SHELL_CMD), "hadolint DL3025"),
        "root": (dockerfile(r"^USER .*$", "USER root"), "hadolint DL3002"),
    },
    check_service: {
        "ec2": (service(launchType="EC2"), "launchType='EC2': must be 'FARGATE'"),
        "other-family": (service(taskDefinition="other"), "taskDefinition='other'"),
        "stops-first": (
            deployment(minimumHealthyPercent=50),
            "minimumHealthyPercent=50: must be 100",
        ),
        "no-surge": (deployment(maximumPercent=100), "maximumPercent=100: must be 200"),
        "no-rollback": (
            deployment(deploymentCircuitBreaker={"enable": True, "rollback": False}),
            "rollback=False",
        ),
        "exec": (service(enableExecuteCommand=True), "enableExecuteCommand=True"),
        "no-tag-propagation": (service(propagateTags="NONE"), "propagateTags='NONE'"),
        "no-subnets": (
            drop("service.networkConfiguration.awsvpcConfiguration.subnets"),
            "subnets: must list",
        ),
    },
}


@pytest.mark.parametrize(
    ("check", "mutation", "expected"),
    [
        pytest.param(check, mutation, expected, id=f"{check.__name__}-{case}")
        for check, cases in BROKEN.items()
        for case, (mutation, expected) in cases.items()
    ],
)
def test_check_finds_the_broken_copy(check: Check, mutation: Mutation, expected: str) -> None:
    artifacts = load()
    broken = copy.deepcopy(artifacts)
    mutation(broken)
    assert broken != artifacts
    problems = check(broken)
    assert any(expected in problem for problem in problems), problems


def test_every_check_can_fail() -> None:
    assert [check.__name__ for check in CHECKS if not BROKEN.get(check)] == []


@pytest.mark.parametrize(
    "value_from",
    [
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db:password::",
        "arn:aws-us-gov:ssm:us-gov-west-1:123456789012:parameter/app/db-url",
    ],
)
def test_secret_references_that_ecs_accepts_pass(value_from: str) -> None:
    artifacts = load()
    secret("DATABASE_URL", value_from)(artifacts)
    assert check_secrets(artifacts) == []


# The health check script itself.


@cache
def healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", HEALTHCHECK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WORKER_ARGV = (
    "/app/.venv/bin/python",
    "/app/.venv/bin/celery",
    f"--app={PACKAGE}.celery_app",
    "worker",
)


def process(parent: int, argv: tuple[str, ...] = WORKER_ARGV, state: str = "S") -> Any:
    return healthcheck().Process(parent, state, argv)


INIT = ("/sbin/docker-init", "--", *WORKER_ARGV)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        pytest.param(
            {1: process(0, INIT), 7: process(1), 8: process(7), 9: process(7)},
            None,
            id="under-init",
        ),
        pytest.param(
            {1: process(0, INIT), 70: process(1), 8: process(70)},
            "celery worker 70 has not reached its broker yet",
            id="never-reached-the-broker",
        ),
        pytest.param({1: process(0), 8: process(1)}, None, id="worker-is-pid-1"),
        pytest.param(
            {
                1: process(0, ("python", "-m", "celery", "-A", PACKAGE, "worker")),
                8: process(1, ("python", "-m", "celery", "-A", PACKAGE, "worker")),
            },
            None,
            id="python-m-celery",
        ),
        pytest.param(
            {1: process(0, INIT), 7: process(1)}, "worker 7 has no live pool process", id="no-pool"
        ),
        pytest.param(
            {1: process(0, INIT), 7: process(1), 8: process(7, state="Z")},
            "worker 7 has no live pool process",
            id="pool-zombie",
        ),
        pytest.param(
            {1: process(0, ("sleep", "60"))}, "no celery worker process under pid 1", id="no-worker"
        ),
        pytest.param(
            {1: process(0, ("sleep", "60")), 7: process(0), 8: process(7)},
            "no celery worker process under pid 1",
            id="worker-elsewhere",
        ),
        pytest.param(
            {
                1: process(0, INIT),
                7: process(1, ("celery", "--app=x", "beat")),
                8: process(7, ("celery", "--app=x", "beat")),
            },
            "no celery worker",
            id="not-a-worker",
        ),
    ],
)
def test_health_check_rule(table: dict[int, Any], expected: str | None) -> None:
    # Worker pids below 10 have written their ready marker; 70 has not.
    problem = healthcheck().check(1, table, lambda pid: pid < 10)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None
        assert expected in problem


#: Stands in for the venv's ``celery`` script: writes the ready marker unless ``READY`` is 0 (as
#: worker_checks.mark_ready does), forks ``POOL`` children, then waits to be killed.
FAKE_CELERY = """import os, pathlib, tempfile, time
if os.environ["READY"] == "1":
    pathlib.Path(tempfile.gettempdir(), f"celery-worker-{os.getpid()}.ready").touch()
for _ in range(int(os.environ["POOL"])):
    if os.fork() == 0:
        break
time.sleep(60)
"""


Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start processes that /proc shows as a worker with ``pool`` children; killed at the end.

    Their temporary directory (TMPDIR, where the ready marker goes) is the test's own.
    """
    script = tmp_path / "celery"
    script.write_text(FAKE_CELERY)
    started: list[subprocess.Popen[bytes]] = []

    def start(pool: int, ready: bool = True) -> subprocess.Popen[bytes]:
        argv = [sys.executable, str(script), f"--app={PACKAGE}.celery_app", "worker"]
        env = {**os.environ, "POOL": str(pool), "READY": str(int(ready)), "TMPDIR": str(tmp_path)}
        started.append(subprocess.Popen(argv, env=env, start_new_session=True))
        return started[-1]

    yield start
    for proc in started:
        kill_group(proc.pid)
        proc.wait()


def run_healthcheck(root: int, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), str(root)],
        env={**os.environ, "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_health_check_script_on_real_processes(spawn: Spawn, tmp_path: Path) -> None:
    """Real /proc entries and no broker anywhere: a ready worker with a live pool is healthy.

    tests/test_startup.py runs it against real workers, with and without a broker.
    """
    worker = spawn(2)
    wait_for(lambda: run_healthcheck(worker.pid, tmp_path).returncode == 0, 10, "the pool")
    assert "celery worker and its pool are running" in run_healthcheck(worker.pid, tmp_path).stdout

    lonely = spawn(0)
    result = run_healthcheck(lonely.pid, tmp_path)
    assert result.returncode == 1
    assert f"celery worker {lonely.pid} has no live pool process" in result.stdout

    unready = spawn(2, ready=False)
    wait_for(lambda: "not reached" in run_healthcheck(unready.pid, tmp_path).stdout, 10, "pool")
    assert run_healthcheck(unready.pid, tmp_path).returncode == 1

    worker.send_signal(signal.SIGKILL)
    worker.wait()
    result = run_healthcheck(worker.pid, tmp_path)
    assert result.returncode == 1
    assert f"no celery worker process under pid {worker.pid}" in result.stdout
