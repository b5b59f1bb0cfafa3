"""Logs: one JSON object per line, an event below the level costs no processing, and Celery's
success line, which repeats ``task.succeeded``, is dropped."""

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from celery.app.trace import LOG_SUCCESS

from {{ cookiecutter.package_name }}.core import logs


@pytest.fixture
def output() -> Iterator[tuple[io.StringIO, list[str]]]:
    """At level WARNING: what the handler writes, and the events that reached the processors
    after the level filter. Logging is left as it was found."""
    root = logging.getLogger()
    found = (structlog.get_config(), root.handlers[:], root.level)
    logs.configure("WARNING")
    written = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(written)
    processed: list[str] = []

    def spy(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        processed.append(event["event"])
        return event

    processors = structlog.get_config()["processors"]
    structlog.configure(processors=[processors[0], spy, *processors[1:]])
    yield written, processed
    config, root.handlers, level = found
    structlog.configure(**config)
    root.setLevel(level)


def test_an_event_below_the_level_runs_no_processor(
    output: tuple[io.StringIO, list[str]],
) -> None:
    written, processed = output
    log = logs.get("test_logs")
    log.info("below.level", field=1)
    log.warning("at.level", field=2)
    assert processed == ["at.level"]
    lines = [json.loads(line) for line in written.getvalue().splitlines()]
    assert [(line["event"], line["field"], line["level"]) for line in lines] == [
        ("at.level", 2, "warning")
    ]


def test_celerys_success_line_is_dropped_and_its_other_lines_kept(
    output: tuple[io.StringIO, list[str]],
) -> None:
    written, _ = output
    logging.getLogger().setLevel(logging.INFO)
    trace = logging.getLogger("celery.app.trace")
    fields = {"id": "1", "name": "t", "return_value": "None", "runtime": 0.1}
    trace.info(LOG_SUCCESS, {**fields, "args": "()", "kwargs": "{}"})
    trace.info("Task %(name)s[%(id)s] retry: %(exc)s", {**fields, "exc": "Retry in 1s"})
    events = [json.loads(line)["event"] for line in written.getvalue().splitlines()]
    assert events == ["Task t[1] retry: Retry in 1s"]
