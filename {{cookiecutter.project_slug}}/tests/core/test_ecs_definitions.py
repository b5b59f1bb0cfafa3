"""Each queue's task definition and service: what ECS accepts and what the worker needs, offline.

botocore's model of the ECS API checks the files' shape (unknown keys, types, required keys) as
``aws ecs register-task-definition`` and ``create-service`` would; it knows no enum, range or
Fargate rule: the checks here do. The broken copies are the default queue's files; every queue's
pass every check, and none is stale (``core/deploy_files.py``).
"""

import re
import shutil
from pathlib import Path

import botocore.session
import pytest
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters

from {{ cookiecutter.package_name }}.core import config, defaults, deploy_files, rules

from ..support import artifacts as deploy
from ..support.workers import PROJECT

BREAKER = "service.deploymentConfiguration.deploymentCircuitBreaker"
LOGS = "container.logConfiguration"
NETWORK = "service.networkConfiguration.awsvpcConfiguration"
HEALTH = "container.healthCheck"
NO_LOCALHOST = "or the worker falls back to its localhost default"
REQUIRED = deploy.REQUIRED
SETTINGS: deploy.Settings = (
    ("task.requiresCompatibilities", ["FARGATE"], "the service runs on Fargate"),
    ("task.networkMode", "awsvpc", "Fargate needs it"),
    (HEALTH, REQUIRED, "or ECS counts a worker that never started as healthy"),
    (f"{LOGS}.logDriver", "awslogs", "the logs go to CloudWatch"),
    (f"{LOGS}.options.mode", "non-blocking", "a slow log stream would stall the worker"),
    (f"{LOGS}.options.awslogs-group", REQUIRED, "awslogs needs it"),
    (f"{LOGS}.options.awslogs-region", REQUIRED, "awslogs needs it"),
    (f"{LOGS}.options.awslogs-stream-prefix", REQUIRED, "names the streams by task"),
    ("secrets.CELERY_BROKER_URL", REQUIRED, NO_LOCALHOST),
    ("secrets.REDIS_URL", REQUIRED, NO_LOCALHOST),
    ("secrets.DATABASE_URL", REQUIRED, NO_LOCALHOST),
    ("service.launchType", "FARGATE", "the task definition is for Fargate"),
    ("service.taskDefinition", deploy.Same("task.family"), "the service runs this task"),
    ("service.deploymentController.type", "ECS", "rolling deployments"),
    ("service.deploymentConfiguration.minimumHealthyPercent", 100, "new tasks start first"),
    ("service.deploymentConfiguration.maximumPercent", 200, "room for the new tasks"),
    (f"{BREAKER}.enable", True, "a release that never gets healthy stops"),
    (f"{BREAKER}.rollback", True, "and rolls back"),
    ("service.enableExecuteCommand", False, "no shell in the workers"),
    (f"{NETWORK}.subnets", REQUIRED, "Fargate tasks need one"),
    (f"{NETWORK}.securityGroups", REQUIRED, "the way to the broker"),
    ("service.propagateTags", "SERVICE", "the tasks carry the service's tags"),
    ("service.tags", REQUIRED, "to propagate"),
)
#: ECS's limits for a container health check, in seconds (retries: attempts).
HEALTH_CHECK_RANGES = {
    "interval": (5, 300),
    "timeout": (2, 60),
    "retries": (1, 10),
    "startPeriod": (0, config.MAX_HEALTH_CHECK_START_PERIOD),
}
#: A variable whose name holds one of these is a secret: it belongs in ``secrets``.
SECRET_WORDS = ("URL", "PASSWORD", "SECRET", "TOKEN", "KEY")
PARTITION, REGION_ACCOUNT = r"arn:aws(?:-[a-z]+)*", r"[a-z0-9-]+:\d{12}"
SECRET_ARN = re.compile(
    rf"{PARTITION}:secretsmanager:{REGION_ACCOUNT}:secret:[\w/+=.@-]+(?::[^:]*:[^:]*:[^:]*)?"
    rf"|{PARTITION}:ssm:{REGION_ACCOUNT}:parameter/[\w/.-]+"
)
ECS = botocore.session.get_session().get_service_model("ecs")


def check_api_shapes(artifacts: deploy.Artifacts) -> list[str]:
    """Valid input for RegisterTaskDefinition and CreateService."""
    problems = []
    for params, operation in (
        (artifacts.task_definition, "RegisterTaskDefinition"),
        (artifacts.service, "CreateService"),
    ):
        try:
            validate_parameters(params, ECS.operation_model(operation).input_shape)
        except ParamValidationError as error:
            problems.append(f"{operation}: {error}")
    return problems


def check_settings(artifacts: deploy.Artifacts) -> list[str]:
    return deploy.settings_problems(artifacts, SETTINGS)


def check_size_and_stop(artifacts: deploy.Artifacts) -> list[str]:
    """A Fargate task size and ECS's stopTimeout range (the worker's and the beat's files)."""
    cpu, memory = artifacts.get("task.cpu"), artifacts.get("task.memory")
    stop_timeout = artifacts.get("container.stopTimeout")
    problems = []
    if not all(isinstance(value, str) and value.isdigit() for value in (cpu, memory)):
        problems.append(f"cpu={cpu!r}, memory={memory!r}: Fargate needs strings of digits")
    elif rule := rules.fargate_memory_rule(int(cpu), int(memory), "cpu"):
        problems.append(f"cpu={cpu!r}, memory={memory!r}: {rule}")
    if rule := rules.stop_timeout_rule(stop_timeout if isinstance(stop_timeout, int) else -1):
        problems.append(f"stopTimeout={stop_timeout!r}: {rule}")
    return problems


def check_limits(artifacts: deploy.Artifacts) -> list[str]:
    """A Fargate task size, ECS's stopTimeout and health-check ranges, a long enough start."""
    health = artifacts.get(HEALTH) or {}
    problems = check_size_and_stop(artifacts)
    for name, (low, high) in HEALTH_CHECK_RANGES.items():
        value = health.get(name, low)
        if not (isinstance(value, int) and low <= value <= high):
            problems.append(f"healthCheck.{name}={value!r}: must be {low}-{high}")
    wait = float(
        artifacts.get("environment.STARTUP_DEPENDENCY_TIMEOUT")
        or defaults.STARTUP_DEPENDENCY_TIMEOUT
    )
    start, margin = health.get("startPeriod", 0), config.STARTUP_MARGIN
    if isinstance(start, int) and start < wait + margin:
        problems.append(
            f"healthCheck.startPeriod={start}: must be at least {wait + margin:g} "
            f"(STARTUP_DEPENDENCY_TIMEOUT={wait:g} + {margin} s to reach the broker), or ECS "
            "replaces a worker that is still waiting out a Redis or database failover"
        )
    return problems


def check_health_command(artifacts: deploy.Artifacts) -> list[str]:
    """The health check is a command that never asks the broker."""
    command = artifacts.get(f"{HEALTH}.command") or []
    problems = []
    if command[:1] not in (["CMD"], ["CMD-SHELL"]):
        problems.append(f"healthCheck.command={command!r}: must start with CMD or CMD-SHELL")
    if any(word.rpartition("/")[2] == "celery" for part in command for word in part.split()):
        problems.append(
            f"healthCheck.command={command!r}: must not run celery, whose remote control goes "
            "through the broker: a broker outage would make ECS replace every healthy worker"
        )
    return problems


def check_queue(artifacts: deploy.Artifacts) -> list[str]:
    """The files run their queue's workers as queues.py defines them; nothing overrides it."""
    queue = next(item for item in config.current().queues if item.name == artifacts.queue)
    wanted = {
        "container.stopTimeout": queue.stop_timeout,
        "task.cpu": str(queue.cpu),
        "task.memory": str(queue.memory),
    }
    problems = [
        f"{path}={artifacts.get(path)!r}: must be {value!r}, as queues.py sets for {queue.name}"
        for path, value in wanted.items()
        if artifacts.get(path) != value
    ]
    command = artifacts.get("container.command") or []
    if [part for part in command if part.startswith(("--queues", "-Q"))] != [
        f"--queues={queue.name}"
    ]:
        problems.append(f"command={command!r}: must consume only --queues={queue.name}")
    return problems + [
        f"environment {name}: overrides queues.py's {field} of {queue.name}, which the task "
        "definition follows (stopTimeout, size): set it in queues.py"
        for name, field in config.QUEUE_ENVIRONMENT.items()
        if artifacts.get(f"environment.{name}") is not None
    ]


def check_secrets(artifacts: deploy.Artifacts) -> list[str]:
    """Secrets come by ARN from Secrets Manager or SSM, and none sits in the environment."""
    problems = [
        f"secrets {item['name']} valueFrom={item['valueFrom']!r}: must be a Secrets Manager "
        "secret or SSM parameter ARN"
        for item in artifacts.container.get("secrets", [])
        if not SECRET_ARN.fullmatch(item["valueFrom"])
    ]
    return problems + [
        f"environment {item['name']}: looks like a secret ({word} in the name), which the "
        "console and describe-task-definition show; move it to secrets"
        for item in artifacts.container.get("environment", [])
        for word in SECRET_WORDS
        if word in item["name"].upper()
    ]


BROKEN: deploy.Broken = {
    check_api_shapes: {
        "cpu-not-a-string": ({"task.cpu": 1024}, "Invalid type for parameter cpu"),
        "unknown-key": ({"container.stopTimeOut": 120}, "Unknown parameter"),
        "no-family": ({"task.family": None}, "Missing required parameter"),
        "service-type": ({"service.desiredCount": "2"}, "Invalid type for parameter"),
        "no-service-name": ({"service.serviceName": None}, "Missing required parameter"),
    },
    check_settings: deploy.without_each(SETTINGS),
    check_limits: {
        "pair": ({"task.cpu": "256", "task.memory": "4096"}, "with cpu 256 Fargate allows"),
        "cpu": ({"task.cpu": "300"}, "must be a Fargate CPU size"),
        "number": ({"task.memory": 2048}, "strings of digits"),
        "stop-timeout": ({"container.stopTimeout": 300}, "stopTimeout=300: must be"),
        "interval": ({f"{HEALTH}.interval": 3}, "interval=3: must be"),
        "timeout": ({f"{HEALTH}.timeout": 90}, "timeout=90: must be"),
        "retries": ({f"{HEALTH}.retries": 0}, "retries=0: must be"),
        "start-period": ({f"{HEALTH}.startPeriod": 600}, "startPeriod=600: must be 0-"),
        "start-before-the-wait": ({f"{HEALTH}.startPeriod": 30}, "=30: must be at least"),
        "wait-past-start": ({"environment.STARTUP_DEPENDENCY_TIMEOUT": "200"}, "TIMEOUT=200 +"),
    },
    check_queue: {
        "stop": ({"container.stopTimeout": 7}, "stopTimeout=7: must be"),
        "size": ({"task.memory": "4097"}, "memory='4097': must be"),
        "no-queue": ({"container.command": ["celery", "worker"]}, "must consume only --queues="),
        "two-queues": (
            {"container.command": ["celery", "worker", "--queues=a", "-Q", "b"]},
            "must consume only",
        ),
        "override": ({"environment.TASK_TIME_LIMIT": "30"}, "environment TASK_TIME_LIMIT"),
    },
    check_health_command: {
        "no-cmd": ({f"{HEALTH}.command": ["python", "/app/healthcheck.py"]}, "start with CMD"),
        "asks-the-broker": ({f"{HEALTH}.command": ["CMD-SHELL", "celery inspect ping"]}, "celery"),
    },
    check_secrets: {
        "not-an-arn": ({"secrets.REDIS_URL": "redis://cache:6379/0"}, "must be a Secrets"),
        "other-service": ({"secrets.REDIS_URL": "arn:aws:s3:::bucket/url"}, "REDIS_URL valueFrom"),
        "url": ({"environment.DATABASE_URL": "postgresql://db/app"}, "DATABASE_URL: looks like"),
        "token": ({"environment.SENTRY_TOKEN": "abc"}, "environment SENTRY_TOKEN"),
        "lowercase": ({"environment.db_password": "x"}, "environment db_password"),
    },
}


@pytest.mark.parametrize(("check", "edits", "expected"), deploy.cases(BROKEN))
def test_check(check: deploy.Check, edits: deploy.Edits | None, expected: str) -> None:
    deploy.verify(check, edits, expected)


@pytest.mark.parametrize(
    "value_from",
    [
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db:password::",
        "arn:aws-us-gov:ssm:us-gov-west-1:123456789012:parameter/app/db-url",
    ],
)
def test_secret_references_that_ecs_accepts_pass(value_from: str) -> None:
    artifacts = deploy.load()
    artifacts.edit("secrets.DATABASE_URL", value_from)
    assert check_secrets(artifacts) == []


@pytest.mark.parametrize("queue", [queue.name for queue in config.current().queues])
def test_every_queue_passes_every_check(queue: str) -> None:
    artifacts = deploy.load(queue)
    assert [problem for check in BROKEN for problem in check(artifacts)] == []
    assert artifacts.get("task.family") == f"{defaults.SERVICE}-{queue}"
    assert artifacts.get("service.serviceName") == f"{defaults.SERVICE}-{queue}"


def test_the_generated_files_are_current(tmp_path: Path) -> None:
    """What CI runs (``deploy_files --check``): the files follow queues.py and the base files."""
    assert deploy_files.stale(PROJECT, config.current().queues) == []
    copy = tmp_path / "project"
    shutil.copytree(PROJECT / "deploy", copy / "deploy")
    shutil.copy(PROJECT / "compose.yaml", copy)
    base = copy / deploy_files.BASE / "worker-task-definition.json"
    base.write_text(base.read_text().replace('"essential": true', '"essential": false'))
    (copy / deploy_files.QUEUES / "gone").mkdir()
    (copy / deploy_files.QUEUES / "gone" / "service.json").write_text("{}")
    queues = config.current().queues
    expected = [deploy_files.QUEUES / queue.name / "task-definition.json" for queue in queues]
    assert deploy_files.stale(copy, queues) == [
        *expected,
        deploy_files.QUEUES / "gone" / "service.json",
    ]
    deploy_files.write(copy, queues)
    assert deploy_files.stale(copy, queues) == []
    assert not (copy / deploy_files.QUEUES / "gone").exists()
