"""Log output of the long-running processes (operator, workers, Job pods): JSON lines or text.

JSON fields: ``ts`` (RFC 3339, milliseconds), ``level``, ``logger``, ``msg``, and ``execution`` /
``command`` / ``namespace`` / ``worker`` when the record concerns one (pass them in ``extra``).
Exceptions add ``error`` (type and capped message), never a traceback full of local values.
Nothing here redacts: callers never put credentials or command arguments in messages, since a log
line is as public as an Event.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import TextIO

from noetl.errors import cap

__all__ = ["JsonFormatter", "configure_json_logging", "setup_logging"]

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


def setup_logging(fmt: str = "json", level: str | int = "INFO", *, logger: str = "",
                  stream: TextIO | None = None) -> None:
    """Send ``logger`` (the root by default, so kopf's logs too) to stderr; idempotent.

    A named logger stops propagating, so its lines are not printed twice by a root handler.
    """
    target = logging.getLogger(logger or None)
    for handler in list(target.handlers):
        if getattr(handler, "_noetl", False):
            target.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._noetl = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    target.addHandler(handler)
    target.setLevel(level.upper() if isinstance(level, str) else level)
    if logger:
        target.propagate = False


def configure_json_logging(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """JSON lines for the ``noetl`` loggers only (worker and Job processes)."""
    setup_logging("json", level, logger="noetl", stream=stream)
