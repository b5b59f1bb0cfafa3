"""The example task runs through a real worker process against the real broker."""

from {{ cookiecutter.package_name }}.tasks.example import add

from .support.workers import Fleet


def test_worker_runs_the_example_task(fleet: Fleet) -> None:
    fleet.start_ready()
    assert add.delay(2, 3).get(timeout=30) == 5
