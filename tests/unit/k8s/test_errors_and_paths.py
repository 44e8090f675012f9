"""ApiError translation, URL paths and RFC 3339 times (pure functions)."""

from __future__ import annotations

import datetime
import json

import pytest

from noetl.k8s import ApiError, Conflict, Forbidden, Gone, NotFound, json_pointer, micro_time, owner_reference, rfc3339
from noetl.k8s._errors import MESSAGE_CHARS, api_error
from noetl.k8s._kinds import kind_of


@pytest.mark.parametrize(("status", "cls", "retriable"), [
    (403, Forbidden, False), (404, NotFound, False), (409, Conflict, False), (410, Gone, False),
    (422, ApiError, False), (429, ApiError, True), (500, ApiError, True), (504, ApiError, True),
], ids=lambda v: str(getattr(v, "__name__", v)))
def test_status_codes_map_to_classes(status: int, cls: type, retriable: bool) -> None:
    body = json.dumps({"kind": "Status", "reason": "Why", "message": "what happened", "code": status})
    err = api_error(status, "HTTP reason", body.encode())
    assert type(err) is cls and err.retriable is retriable
    assert err.status == status and err.reason == "Why" and err.message == "what happened"


def test_remote_text_is_capped_and_non_json_bodies_kept() -> None:
    err = api_error(500, "Internal", "x" * 10_000)
    assert len(err.message) <= MESSAGE_CHARS and "chars cut" in err.message
    assert api_error(502, "Bad Gateway", None).message == "(no message)"


def test_paths() -> None:
    assert kind_of("executions").path("ns", "a", "status") == "/apis/noetl.io/v2/namespaces/ns/executions/a/status"
    assert kind_of("executions").path(None) == "/apis/noetl.io/v2/executions"
    assert kind_of("leases").path("ns") == "/apis/coordination.k8s.io/v1/namespaces/ns/leases"
    assert kind_of("configmaps").path("ns", "c") == "/api/v1/namespaces/ns/configmaps/c"
    with pytest.raises(ValueError, match="known:"):
        kind_of("widgets")


def test_json_pointer_escapes() -> None:
    assert json_pointer("status", "inbox", "e/s#1/0/1.1:done") == "/status/inbox/e~1s#1~10~11.1:done"
    assert json_pointer("a~b") == "/a~0b"


def test_times() -> None:
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.timezone.utc)
    assert rfc3339(when) == "2026-01-02T03:04:05Z"
    assert micro_time(when) == "2026-01-02T03:04:05.678901Z"


def test_owner_reference() -> None:
    obj = {"apiVersion": "noetl.io/v2", "kind": "Execution", "metadata": {"name": "r", "uid": "u", "namespace": "n"}}
    assert owner_reference(obj) == {"apiVersion": "noetl.io/v2", "kind": "Execution", "name": "r", "uid": "u",
                                    "controller": True, "blockOwnerDeletion": True}
