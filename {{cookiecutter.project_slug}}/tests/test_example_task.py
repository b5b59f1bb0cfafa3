"""The example task runs through a real worker process against the real broker."""

from {{ cookiecutter.package_name }}.tasks.example import add

from .support.workers import PROJECT, Fleet


def test_worker_runs_the_example_task(fleet: Fleet) -> None:
    fleet.start_ready()
    assert add.delay(2, 3).get(timeout=30) == 5


def test_a_module_dropped_into_the_tasks_package_is_registered(fleet: Fleet) -> None:
    module = PROJECT / "src" / "{{ cookiecutter.package_name }}" / "tasks" / "dropped_in.py"
    module.write_text(
        "from ..celery_app import app\n\n\n"
        "@app.task(name='dropped_in.double')\n"
        "def double(x: int) -> int:\n"
        "    return 2 * x\n"
    )
    try:
        fleet.start_ready()
        assert fleet.app.send_task("dropped_in.double", args=[21]).get(timeout=30) == 42
    finally:
        module.unlink()
