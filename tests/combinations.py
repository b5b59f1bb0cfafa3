"""The answer combinations the template supports, as data.

Every combination of the choice answers is baked and linted. The rendered test suites run for a
smaller set: one project per broker exactly as a new user gets it (defaults, following its README),
and non-default answers that must reach every artifact consistently.
"""

import itertools
import json
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
CHOICES = {
    name: values
    for name, values in json.loads((TEMPLATE / "cookiecutter.json").read_text()).items()
    if isinstance(values, list) and not name.startswith("_")
}


def choice_id(answers: dict[str, str]) -> str:
    return "-".join(answers[name].lower() for name in CHOICES)


#: Every combination of the choice answers, keyed by a readable id.
ALL_CHOICES = {
    choice_id(answers): answers
    for answers in (
        dict(zip(CHOICES, values, strict=True)) for values in itertools.product(*CHOICES.values())
    )
}

#: Projects whose own test suites run; ``readme`` ones are set up by following their README.
SUITES = {
    "rabbitmq-defaults": {"answers": {"broker": "rabbitmq"}, "readme": True},
    "redis-defaults": {"answers": {"broker": "redis"}, "readme": True},
    "rabbitmq-small-x86": {
        "answers": {
            "broker": "rabbitmq",
            "project_name": "Billing Sync",
            "queues": "fast, slow",
            "python_version": "3.13",
            "ecs_cpu_architecture": "X86_64",
            "ecs_cpu": "512",
            "ecs_memory": "3072",
            "ecs_stop_timeout": "30",
            "worker_concurrency": "1",
            "task_soft_time_limit": "10",
            "task_time_limit": "15",
        },
        "readme": False,
    },
    "redis-large-x86": {
        "answers": {
            "broker": "redis",
            "project_name": "Report Builder",
            "package_name": "reports",
            "queues": "default,exports",
            "python_version": "3.11",
            "ecs_cpu_architecture": "X86_64",
            "ecs_cpu": "4096",
            "ecs_memory": "16384",
            "ecs_stop_timeout": "60",
            "worker_concurrency": "8",
            "task_soft_time_limit": "30",
            "task_time_limit": "40",
        },
        "readme": False,
    },
}
