"""The answers this project was rendered with: the defaults of the environment variables."""

#: The service's name on the broker: its queue and its exchanges. Never Celery's ``celery``, which
#: any plain Celery app on the same vhost or Redis database also uses.
SERVICE = "{{ cookiecutter.project_slug }}"
TASK_DEFAULT_QUEUE = SERVICE
ECS_STOP_TIMEOUT = {{ cookiecutter.ecs_stop_timeout | int }}
TASK_SOFT_TIME_LIMIT = {{ cookiecutter.task_soft_time_limit | int }}
TASK_TIME_LIMIT = {{ cookiecutter.task_time_limit | int }}
WORKER_CONCURRENCY = {{ cookiecutter.worker_concurrency | int }}
DATABASE_URL = "sqlite:///{{ cookiecutter.package_name }}.sqlite3"
REDIS_URL = "redis://localhost:6379/0"
TASK_MAX_RETRIES = 5
TASK_RETRY_FIRST_COUNTDOWN = 30
TASK_RETRY_BACKOFF_MAX = 300
COMPLETION_MARKER_TTL = 24 * 3600
BATCH_SIZE = 500
TASK_DELIVERY_LIMIT = 5
#: An ElastiCache or RDS failover takes 30-120 s: a worker started during one waits it out.
STARTUP_DEPENDENCY_TIMEOUT = 120
