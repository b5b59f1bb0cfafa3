"""The Celery app: the core's settings and signals, the service's tasks and overrides.

Run by ``celery -A {{ cookiecutter.package_name }}.celery_app worker``; task modules take ``app`` from here.
"""

from celery import Celery, signals

from .core import (
    broker,
    config,
    logs,
    metrics,
    protection,
    refusal,
    shutdown,
    soft_limit_guard,
    worker_checks,
)
from .core.celery_settings import celery_settings
from .core.dead_letters import store as dead_letters

try:
    settings = celery_settings(config.current())
except config.ConfigError as error:
    # Whoever imports the app (the celery command, the dead-letter command) stops here, with
    # every problem listed and no traceback.
    refusal.refuse(error.problems)

app = Celery(__package__, task_cls=f"{__package__}.core.base_task:BaseTask")
app.conf.update(settings)
dead_letters.install(app)
app.steps["consumer"].add(shutdown.WakeOnStop)

# weak=False: the receivers are module functions, but keep them alive regardless of import order.
signals.celeryd_init.connect(worker_checks.use_queue, weak=False)
signals.setup_logging.connect(logs.configure, weak=False)
signals.task_prerun.connect(logs.bind_task, weak=False)
signals.task_postrun.connect(logs.unbind_task, weak=False)
signals.worker_init.connect(worker_checks.size_pool, weak=False)
signals.worker_init.connect(worker_checks.refuse_unsafe_worker, weak=False)
signals.worker_ready.connect(worker_checks.mark_ready, weak=False)
signals.worker_shutdown.connect(worker_checks.unmark_ready, weak=False)
signals.worker_shutting_down.connect(shutdown.bound_warm_shutdown, weak=False)
signals.worker_process_init.connect(soft_limit_guard.install, weak=False)
signals.worker_init.connect(broker.warn_without_persistence, weak=False)
signals.worker_ready.connect(protection.start, weak=False)
signals.task_received.connect(protection.wake, weak=False)
signals.worker_ready.connect(metrics.start_queue_depth, weak=False)
