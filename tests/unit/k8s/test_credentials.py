"""Secret -> credential value, and SecretCredentials' lookup order and cache (API seam faked)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from noetl.errors import ToolError
from noetl.k8s import Forbidden, SecretCredentials, secret_value
from tests.unit.k8s.fakes import FakeClient


def secret(name: str, data: dict[str, str], credential: str | None = None) -> dict[str, Any]:
    annotations = {"noetl.io/credential": credential} if credential else {}
    return {"metadata": {"name": name, "annotations": annotations},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


@pytest.mark.parametrize(("data", "expected"), [
    ({"value": "tok"}, "tok"),
    ({"value": '{"a": 1}'}, {"a": 1}),
    ({"user": "u", "password": "p"}, {"user": "u", "password": "p"}),
    ({"amadeus": '{"client_id": "i", "client_secret": "s"}'}, {"amadeus": {"client_id": "i", "client_secret": "s"}}),
    ({"list": "[1, 2]", "brace": "{not json"}, {"list": [1, 2], "brace": "{not json"}),
], ids=["scalar", "scalar-json", "fields", "nested-json", "array-and-bad-json"])
def test_secret_values(data: dict[str, str], expected: Any) -> None:
    assert secret_value(secret("s", data)) == expected


def test_binary_secret_is_refused_without_its_bytes() -> None:
    raw = {"metadata": {"name": "bin"}, "data": {"k": base64.b64encode(b"\xff\xfe").decode()}}
    with pytest.raises(ToolError) as info:
        secret_value(raw)
    assert info.value.record["type"] == "CredentialInvalid" and "'bin'" in info.value.record["message"]


def test_annotation_wins_then_name_then_dns_name_and_values_are_cached() -> None:
    client = FakeClient()
    client.secrets = {"api": secret("api", {"value": "by-name"}),
                      "zz": secret("zz", {"value": "by-annotation"}, credential="x, api"),
                      "pg-local": secret("pg-local", {"dsn": "postgresql://h/db"})}
    creds = SecretCredentials(client, "ns")  # type: ignore[arg-type]

    async def go() -> None:
        assert await creds.resolve("api") == "by-annotation"
        assert await creds.resolve("x") == "by-annotation"
        assert await creds.resolve("pg_local") == {"dsn": "postgresql://h/db"}
        calls = len(client.calls)
        assert await asyncio.gather(*(creds.resolve("pg_local") for _ in range(10))) == [{"dsn": "postgresql://h/db"}] * 10
        assert len(client.calls) == calls
    asyncio.run(go())


def test_forbidden_becomes_a_tool_error_naming_the_fix() -> None:
    client = FakeClient()
    client.fail_next = [Forbidden(403, "Forbidden", 'secrets is forbidden: User "system:serviceaccount:a:b"')]

    async def go() -> None:
        with pytest.raises(ToolError) as info:
            await SecretCredentials(client, "ns").resolve("db")  # type: ignore[arg-type]
        assert info.value.record["type"] == "CredentialForbidden"
        assert "get/list on secrets" in info.value.record["message"]
    asyncio.run(go())
