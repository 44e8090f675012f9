"""Errors of the Kubernetes API, translated at the edge (STYLE §4).

Tree::

    NoetlError
    └── ApiError            any failed API call: status (0 = no HTTP answer), reason, message
        ├── Forbidden       403: RBAC says no; fix the Role, retrying will not help
        ├── NotFound        404: the object (or its kind) does not exist
        ├── Conflict        409: stale resourceVersion or AlreadyExists; re-read and redo
        └── Gone            410: a watch's resourceVersion expired; list again

``ApiError.retriable`` says whether the same request may succeed later unchanged (no answer, 429,
5xx). Messages carry at most ``MESSAGE_CHARS`` of what the server sent: a remote party must not be
able to flood our logs, Events or status objects.
"""

from __future__ import annotations

import json
from typing import Any

from noetl.errors import NoetlError, cap

__all__ = ["ApiError", "Conflict", "Forbidden", "Gone", "MESSAGE_CHARS", "NotFound", "api_error"]

#: Longest remote text kept in an ApiError message: enough for the apiserver's validation messages
#: (they name field paths), short enough for a log line.
MESSAGE_CHARS = 512

#: Statuses after which the same request may succeed: throttled, server trouble, or no answer at all.
_RETRIABLE = frozenset({0, 429, 500, 502, 503, 504})


class ApiError(NoetlError):
    """A Kubernetes API call failed. ``status`` is the HTTP status, 0 when no answer came."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = cap(reason, 100)
        self.message = cap(message, MESSAGE_CHARS)
        super().__init__(f"{status} {self.reason}: {self.message}" if status else f"{self.reason}: {self.message}")

    @property
    def retriable(self) -> bool:
        """True when retrying the same request later may succeed."""
        return self.status in _RETRIABLE


class Forbidden(ApiError):
    """403: the caller's ServiceAccount lacks a permission (the message names it)."""


class NotFound(ApiError):
    """404: no such object, namespace or resource kind."""


class Conflict(ApiError):
    """409: the object changed since it was read (resourceVersion) or already exists."""


class Gone(ApiError):
    """410: the resourceVersion a watch started from is too old; list again."""


_BY_STATUS: dict[int, type[ApiError]] = {403: Forbidden, 404: NotFound, 409: Conflict, 410: Gone}


def api_error(status: int, reason: str, body: bytes | str | dict[str, Any] | None) -> ApiError:
    """The ApiError for an HTTP answer; ``body`` is the (JSON ``Status``) body the server sent."""
    message = ""
    data: Any = body
    if isinstance(body, (bytes, str)):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            data = json.loads(text)
        except ValueError:
            data = None
            message = text
    if isinstance(data, dict):
        message = str(data.get("message") or "")
        reason = str(data.get("reason") or reason)
        code = data.get("code")
        if isinstance(code, int) and code and not status:
            status = code
    cls = _BY_STATUS.get(status, ApiError)
    return cls(status, reason or "Error", message.strip() or "(no message)")
