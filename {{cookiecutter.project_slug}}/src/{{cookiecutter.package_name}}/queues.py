"""The service's queues: each has its own workers (one ECS service), limits and dead letters.

A task names its queue, ``@app.task(queue="...")``; a task that names none goes to the first.
After a change here run ``uv run python -m {{ cookiecutter.package_name }}.core.deploy_files``: it rewrites
``deploy/ecs/queues/`` and the workers in ``compose.yaml`` (CI fails while they are stale).
Each queue's fleet scales between ``min_workers`` and ``max_workers`` on its waiting messages per
worker (``backlog_per_worker``, derived unless set; cooldowns: ``core/queues.py``).
The rules each queue must keep are in ``core/rules.py``; the worker refuses to start otherwise.
"""

from .core.queues import Queue

QUEUES = (
{%- for queue in cookiecutter.queues.split(",") %}
    Queue(
        "{{ queue | trim }}",
        concurrency={{ cookiecutter.worker_concurrency | int }},
        prefetch_multiplier=1,
        soft_time_limit={{ cookiecutter.task_soft_time_limit | int }},
        time_limit={{ cookiecutter.task_time_limit | int }},
        stop_timeout={{ cookiecutter.ecs_stop_timeout | int }},
        cpu={{ cookiecutter.ecs_cpu | int }},
        memory={{ cookiecutter.ecs_memory | int }},
        delivery_limit=5,
        min_workers=1,
        max_workers=10,
    ),
{%- endfor %}
)
