"""Logging of the service: one line per record on stderr, which awslogs ships to CloudWatch."""

import logging
import os
from typing import Any

FORMAT = "%(asctime)s %(levelname)s [%(processName)s] %(name)s: %(message)s"


def configure(loglevel: Any = None, **_: Any) -> None:
    """Configure the root logger; connected to Celery's ``setup_logging`` signal."""
    level = loglevel or os.environ.get("LOG_LEVEL", "INFO")
    logging.basicConfig(level=level, format=FORMAT, force=True)
