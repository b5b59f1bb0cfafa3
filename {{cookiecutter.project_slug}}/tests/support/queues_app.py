"""The service's app with the tests' probe queues, for ``celery --app tests.support.queues_app``."""

from {{ cookiecutter.package_name }} import queues

from . import probe_queues

queues.QUEUES = probe_queues.QUEUES

from {{ cookiecutter.package_name }}.celery_app import app  # noqa: E402

__all__ = ["app"]
