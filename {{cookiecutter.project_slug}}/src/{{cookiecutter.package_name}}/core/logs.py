"""Logging: one JSON object per line on stderr, which awslogs ships to CloudWatch.

One way to write an event: ``log = logs.get(__name__)`` then ``log.info("lock.lost", key=key)``.
Celery's and the libraries' own records come out as the same JSON, and every line written while
a task runs carries the task's fields (``bind_task``), so CloudWatch Logs Insights can filter on
``task_id`` directly. Celery's own success line is dropped: ``task.succeeded`` says it, with the
run's duration as a metric.
"""

import logging
import os
from typing import Any

import structlog
from celery.app.trace import LOG_SUCCESS
from structlog.typing import Processor

#: Added to every line, ours and the libraries': time, level, logger, process, the task's fields.
SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.CallsiteParameterAdder({structlog.processors.CallsiteParameter.PROCESS}),
]


def not_celerys_success_line(record: logging.LogRecord) -> bool:
    """Filter of ``celery.app.trace``: its "Task ... succeeded" line repeats ``task.succeeded``."""
    return bool(record.msg != LOG_SUCCESS)


def configure(loglevel: Any = None, **_: Any) -> None:
    """Send every record to stderr as JSON; connected to Celery's ``setup_logging`` signal."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*SHARED, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=str),
        ],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(loglevel or os.environ.get("LOG_LEVEL", "INFO"))
    logging.getLogger("celery.app.trace").addFilter(not_celerys_success_line)
    structlog.configure(
        # An event below the level is dropped first, before any processor runs.
        processors=[
            structlog.stdlib.filter_by_level,
            *SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get(name: str) -> Any:
    """The logger of module ``name``: ``log.info("event.name", field=value)``."""
    return structlog.stdlib.get_logger(name)


def bind_task(task: Any, **_: Any) -> None:
    """``task_prerun`` receiver: every line until the task ends carries its fields."""
    request = task.request
    structlog.contextvars.bind_contextvars(
        task=task.name,
        task_id=request.id,
        retries=request.retries,
        redelivered=bool((request.delivery_info or {}).get("redelivered")),
    )


def unbind_task(**_: Any) -> None:
    """``task_postrun`` receiver."""
    structlog.contextvars.clear_contextvars()
