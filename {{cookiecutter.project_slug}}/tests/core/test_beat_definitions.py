"""The beat's task definition and service: valid for ECS, and never two beats from a deployment.

Shapes by botocore's model, as for the worker's files (``test_ecs_definitions.py``); the size and
stop timeout from ``rules.py``.
"""

import pytest

from {{ cookiecutter.package_name }}.core import rules

from ..support import artifacts as deploy
from .test_ecs_definitions import check_api_shapes, check_secrets, check_size_and_stop

DEPLOYMENT = "service.deploymentConfiguration"
LOGS = "container.logConfiguration"
NO_LOCALHOST = "or the beat falls back to its localhost default"
COMMAND = ["celery", "--app={{ cookiecutter.package_name }}.celery_app", "beat", "--loglevel=INFO"]
SETTINGS: deploy.Settings = (
    ("task.requiresCompatibilities", ["FARGATE"], "the service runs on Fargate"),
    ("task.networkMode", "awsvpc", "Fargate needs it"),
    ("task.cpu", str(rules.BEAT_CPU), "rules.BEAT_CPU: the beat only publishes"),
    ("task.memory", str(rules.BEAT_MEMORY), "rules.BEAT_MEMORY"),
    ("container.stopTimeout", rules.BEAT_STOP_TIMEOUT, "rules.BEAT_STOP_TIMEOUT"),
    ("container.command", COMMAND, "celery beat, with the scheduler of beat_scheduler"),
    (f"{LOGS}.logDriver", "awslogs", "the logs go to CloudWatch"),
    (f"{LOGS}.options.mode", "non-blocking", "a slow log stream would stall the beat"),
    (f"{LOGS}.options.awslogs-group", deploy.REQUIRED, "awslogs needs it"),
    (f"{LOGS}.options.awslogs-region", deploy.REQUIRED, "awslogs needs it"),
    (f"{LOGS}.options.awslogs-stream-prefix", "beat", "names the beat's streams"),
    ("secrets.CELERY_BROKER_URL", deploy.REQUIRED, NO_LOCALHOST),
    ("secrets.REDIS_URL", deploy.REQUIRED, "the ticks are claimed there"),
    ("secrets.DATABASE_URL", deploy.REQUIRED, "the configuration requires it"),
    ("service.launchType", "FARGATE", "the task definition is for Fargate"),
    ("service.taskDefinition", deploy.Same("task.family"), "the service runs this task"),
    ("service.desiredCount", 1, "one beat; a second one would only wait for claims"),
    (f"{DEPLOYMENT}.maximumPercent", 100, "a deployment never runs the old and new beat at once"),
    (f"{DEPLOYMENT}.minimumHealthyPercent", 0, "so it stops the old beat first"),
    ("service.enableExecuteCommand", False, "no shell in the beat"),
)


def check_settings(artifacts: deploy.Artifacts) -> list[str]:
    return deploy.settings_problems(artifacts, SETTINGS)


BROKEN: deploy.Broken = {
    check_api_shapes: {
        "cpu-not-a-string": ({"task.cpu": 256}, "Invalid type for parameter cpu"),
        "unknown-key": ({"container.stopTimeOut": 10}, "Unknown parameter"),
        "service-type": ({"service.desiredCount": "1"}, "Invalid type for parameter"),
    },
    check_settings: {
        **deploy.without_each(SETTINGS),
        "two-beats": ({"service.desiredCount": 2}, "desiredCount=2: must be 1"),
        "rolling": ({f"{DEPLOYMENT}.maximumPercent": 200}, "maximumPercent=200: must be 100"),
        "worker": ({"container.command": ["celery", "worker"]}, "container.command=['celery'"),
    },
    check_size_and_stop: {
        "pair": ({"task.cpu": "256", "task.memory": "4096"}, "with cpu 256 Fargate allows"),
        "stop-timeout": ({"container.stopTimeout": 1}, "stopTimeout=1: must be"),
    },
    check_secrets: {
        "not-an-arn": ({"secrets.REDIS_URL": "redis://cache:6379/0"}, "must be a Secrets"),
    },
}


@pytest.mark.parametrize(("check", "edits", "expected"), deploy.cases(BROKEN))
def test_check(check: deploy.Check, edits: deploy.Edits | None, expected: str) -> None:
    deploy.verify(check, edits, expected, deploy.load_beat)
