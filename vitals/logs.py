"""Structured log lines shared by every CareWatch service: one event per line, to stderr, as
``key=value`` pairs or as JSON. Extra fields passed with ``extra={...}`` appear in JSON.

The services configure logging once in their ``__main__``; library code only ever calls
``logging.getLogger(__name__)``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Literal

__all__ = ["JsonFormatter", "KeyValueFormatter", "configure_logging"]

_STANDARD = frozenset(vars(logging.makeLogRecord({})))


def _when(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class KeyValueFormatter(logging.Formatter):
    """``time=... level=INFO logger=gateway.uplink msg="..."`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message} | {self.formatException(record.exc_info)}"
        return (
            f"time={_when(record)} level={record.levelname} logger={record.name} "
            f"msg={json.dumps(message, ensure_ascii=False)}"
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "time": _when(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        event.update(
            {k: v for k, v in vars(record).items() if k not in _STANDARD and k != "message"}
        )
        return json.dumps(event, ensure_ascii=False, default=str)


def configure_logging(
    level: str,
    format: Literal["json", "kv"],
    *,
    chatty: Iterable[str] = (),
) -> None:
    """Send every log line to stderr in ``format``. Loggers named in ``chatty`` (libraries
    that log every packet at DEBUG) are held at WARNING unless ``level`` is DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if level != "DEBUG":
        for name in chatty:
            logging.getLogger(name).setLevel(logging.WARNING)
