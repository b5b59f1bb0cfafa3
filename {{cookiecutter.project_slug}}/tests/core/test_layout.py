"""The service's side of the layout: task modules registered as they are dropped in, Celery
overrides merged last and checked."""

import subprocess
import sys

import pytest

from {{ cookiecutter.package_name }} import service_settings
from {{ cookiecutter.package_name }}.core import config, refusal
from {{ cookiecutter.package_name }}.core.celery_settings import celery_settings, task_modules

from ..support.workers import PROJECT, Fleet

TASKS = PROJECT / "src" / "{{ cookiecutter.package_name }}" / "tasks"


def test_a_module_dropped_into_the_tasks_package_is_registered(fleet: Fleet) -> None:
    module = TASKS / "dropped_in.py"
    module.write_text(
        "from ..celery_app import app\n\n\n"
        "@app.task(name='dropped_in.double')\n"
        "def double(x: int) -> int:\n"
        "    return 2 * x\n"
    )
    try:
        assert "{{ cookiecutter.package_name }}.tasks.dropped_in" in task_modules()
        fleet.start_ready()
        assert fleet.app.send_task("dropped_in.double", args=[21]).get(timeout=30) == 42
    finally:
        module.unlink()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"task_acks_late": False},
            "task_acks_late=False (service_settings.CELERY_OVERRIDES): must stay True",
            id="guarantee",
        ),
        pytest.param(
            {"worker_prefetch_multiplier": 4},
            "worker_prefetch_multiplier=4 (service_settings.CELERY_OVERRIDES): must come from "
            "queues.py: set the queue's prefetch_multiplier",
            id="prefetch",
        ),
        pytest.param(
            {"task_time_limit": 600},
            "task_time_limit=600 (service_settings.CELERY_OVERRIDES): must come from "
            "queues.py: set the queue's time_limit",
            id="time-limit",
        ),
        pytest.param(
            {"broker_url": "amqp://elsewhere//"},
            "broker_url='amqp://elsewhere//' (service_settings.CELERY_OVERRIDES): must come from "
            "the environment: set CELERY_BROKER_URL",
            id="broker",
        ),
        pytest.param(
            {"task_acks_lately": True},
            "task_acks_lately=True (service_settings.CELERY_OVERRIDES): must be a Celery setting",
            id="unknown",
        ),
    ],
)
def test_an_override_that_breaks_a_rule_is_refused(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, object], message: str
) -> None:
    monkeypatch.setattr(service_settings, "CELERY_OVERRIDES", overrides)
    with pytest.raises(config.ConfigError) as raised:
        celery_settings(config.from_env({}))
    (problem,) = raised.value.problems
    assert problem.startswith(message)


def test_overrides_are_merged_last(monkeypatch: pytest.MonkeyPatch) -> None:
    route = {"queue": "other"}
    routes = {"example.add": route}
    overrides = {"task_routes": routes, "timezone": "Europe/Paris", "task_acks_late": True}
    monkeypatch.setattr(service_settings, "CELERY_OVERRIDES", overrides)
    settings = celery_settings(config.from_env({}))
    assert (settings["task_routes"], settings["timezone"]) == (routes, "Europe/Paris")


def test_the_app_refuses_a_broken_override_when_imported() -> None:
    """The worker and the dead-letter command import the app: both stop here (exit 78)."""
    script = (
        "from {{ cookiecutter.package_name }} import service_settings\n"
        "service_settings.CELERY_OVERRIDES = {'task_acks_late': False}\n"
        "import {{ cookiecutter.package_name }}.celery_app\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == refusal.EXIT_STATUS, done.stderr
    assert "task_acks_late=False (service_settings.CELERY_OVERRIDES): must stay True" in done.stderr
    assert "Traceback" not in done.stderr
