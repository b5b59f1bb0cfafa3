"""The Celery application: ``celery -A {{ cookiecutter.package_name }}.celery_app worker``."""

from celery import Celery, signals

from . import {% if cookiecutter.broker == 'redis' %}broker, {% endif %}config, logs, soft_limit_guard, worker_checks
from .dead_letters import store as dead_letters
from .settings import celery_settings

app = Celery(__package__, task_cls=f"{__package__}.base_task:BaseTask")
app.conf.update(celery_settings(config.current()))
dead_letters.install(app)

# weak=False: the receivers are module functions, but keep them alive regardless of import order.
signals.setup_logging.connect(logs.configure, weak=False)
signals.worker_init.connect(worker_checks.refuse_unsafe_worker, weak=False)
signals.worker_process_init.connect(soft_limit_guard.install, weak=False)
{%- if cookiecutter.broker == 'redis' %}
signals.worker_init.connect(broker.warn_without_persistence, weak=False)
{%- endif %}
