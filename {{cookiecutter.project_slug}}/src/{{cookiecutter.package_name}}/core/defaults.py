"""The defaults of the environment variables (the queues' own settings are in ``queues.py``)."""

#: The service's name: its ECS families and services start with it.
SERVICE = "{{ cookiecutter.project_slug }}"
#: The start of the service's names on the broker (queues, exchanges). Never Celery's
#: ``celery``, which any plain Celery app on the same vhost or Redis database also uses.
BROKER_NAMESPACE = SERVICE
DATABASE_URL = "sqlite:///{{ cookiecutter.package_name }}.sqlite3"
REDIS_URL = "redis://localhost:6379/0"
TASK_MAX_RETRIES = 5
TASK_RETRY_FIRST_COUNTDOWN = 30
TASK_RETRY_BACKOFF_MAX = 300
COMPLETION_MARKER_TTL = 24 * 3600
BATCH_SIZE = 500
#: An ElastiCache or RDS failover takes 30-120 s: a worker started during one waits it out.
STARTUP_DEPENDENCY_TIMEOUT = 120
