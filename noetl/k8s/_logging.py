"""Structured logs of the worker processes: one JSON object per line on stderr.

Fields: ``ts`` (RFC 3339, milliseconds), ``level``, ``logger``, ``msg``, and ``execution`` /
``command`` when the record concerns one (pass them in ``extra``). Exceptions add ``error`` (type
and capped message), never a traceback full of local values. Callers never put command args or
credentials in messages: a log line is as public as an Event.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import TextIO

from noetl.errors import cap

__all__ = ["JsonFormatter", "configure_json_logging"]

_FIELDS = ("execution", "command", "namespace", "worker")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        out: dict[str, object] = {"ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
                                  "level": record.levelname.lower(), "logger": record.name,
                                  "msg": cap(record.getMessage(), 1000)}
        for field in _FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                out[field] = value
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            out["error"] = f"{type(exc).__name__}: {cap(str(exc), 500)}"
        return json.dumps(out, default=str)


def configure_json_logging(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send the ``noetl`` loggers to ``stream`` (stderr) as JSON lines; idempotent."""
    logger = logging.getLogger("noetl")
    for handler in list(logger.handlers):
        if isinstance(handler.formatter, JsonFormatter):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
