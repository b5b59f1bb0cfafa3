"""Metrics as log lines in CloudWatch's embedded metric format (EMF): no API call, no permission.

A metric rides on the log line of the event it measures (``task.succeeded`` carries
``TaskDuration``): ``emf`` adds the ``_aws`` member that tells CloudWatch Logs which fields are
metrics and which are their dimensions, so an event is still logged one way (``logs.py``).
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
Queries and alarms: docs/metrics.md.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import broker, config, logs

log = logs.get(__name__)

Dimensions = tuple[tuple[str, ...], ...]
#: Each dimension set is a metric of its own, and CloudWatch bills each: the queue for alarms
#: and scaling, the queue and task only where a task's own figure is worth its cost.
BY_QUEUE: Dimensions = (("queue",),)
BY_QUEUE_AND_TASK: Dimensions = (("queue",), ("queue", "task"))
#: The waiting messages of a queue, where the broker publishes none (autoscaling reads it).
QUEUE_DEPTH = "QueueDepth"


@dataclass(frozen=True)
class Metric:
    """One value of a metric, and the dimension sets it is published under."""

    name: str
    value: float
    unit: str
    dimensions: Dimensions = BY_QUEUE


def emf(*measured: Metric, **dimensions: str) -> dict[str, Any]:
    """Fields for a log call: the metrics' values and dimensions, and the ``_aws`` directives
    that name them (each dimension a metric uses must be given)."""
    by_dimensions: dict[Dimensions, list[Metric]] = {}
    for metric in measured:
        by_dimensions.setdefault(metric.dimensions, []).append(metric)
    missing = {name for names in by_dimensions for dimension in names for name in dimension}
    if missing - dimensions.keys():
        raise ValueError(f"no value for the dimensions {sorted(missing - dimensions.keys())}")
    namespace = config.current().metrics_namespace
    directives = [
        {
            "Namespace": namespace,
            "Dimensions": [list(names) for names in dimensions],
            "Metrics": [{"Name": metric.name, "Unit": metric.unit} for metric in group],
        }
        for dimensions, group in by_dimensions.items()
    ]
    return {
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": directives},
        **dimensions,
        **{metric.name: metric.value for metric in measured},
    }


def publish_queue_depth(
    measure: Callable[[Any, str], int], app: Any, queue: str, interval: float
) -> None:
    """Log the queue's waiting messages every ``interval`` seconds, as ``QUEUE_DEPTH``."""
    while True:
        try:
            depth = measure(app, queue)
        except Exception as error:  # a broker outage must not end the thread
            log.warning("queue.depth_unavailable", queue=queue, error=type(error).__name__)
        else:
            log.info("queue.depth", **emf(Metric(QUEUE_DEPTH, depth, "Count"), queue=queue))
        time.sleep(interval)


def start_queue_depth(sender: Any, **_: Any) -> None:
    """``worker_ready`` receiver: publish the queue depth where the broker does not (Redis)."""
    measure = broker.queue_depth
    if measure is None:
        return
    settings = config.current()
    threading.Thread(
        target=publish_queue_depth,
        args=(measure, sender.app, settings.broker_queue(), settings.queue_depth_interval),
        name="queue-depth",
        daemon=True,
    ).start()
