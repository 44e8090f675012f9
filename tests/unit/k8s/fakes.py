"""A fake KubeClient for unit tests: the API seam only (objects in dicts, calls counted)."""

from __future__ import annotations

import asyncio
from typing import Any

from noetl.k8s import ApiError, NotFound


class FakeClient:
    """The subset of KubeClient the blob store, credentials and inbox writer use."""

    def __init__(self) -> None:
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.patches: list[list[dict[str, Any]]] = []
        self.inbox: dict[str, Any] | None = None
        self.fail_next: list[ApiError] = []
        self.patch_delay = 0.0

    async def put_configmap(self, ns: str, name: str, data: Any = None, *, binary_data: Any = None,
                            labels: Any = None, annotations: Any = None, owner: Any = None) -> dict[str, Any]:
        self.calls.append(f"put_configmap {name}")
        obj = {"metadata": {"name": name, "labels": labels, "annotations": annotations}, "binaryData": binary_data}
        self.configmaps[(ns, name)] = obj
        return obj

    async def get_configmap(self, ns: str, name: str) -> dict[str, Any]:
        self.calls.append(f"get_configmap {name}")
        try:
            return self.configmaps[(ns, name)]
        except KeyError:
            raise NotFound(404, "NotFound", f'configmaps "{name}" not found') from None

    async def list_secrets(self, ns: str, label_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        self.calls.append("list_secrets")
        if self.fail_next:
            raise self.fail_next.pop(0)
        return list(self.secrets.values()), "1"

    async def get_secret(self, ns: str, name: str) -> dict[str, Any]:
        self.calls.append(f"get_secret {name}")
        try:
            return self.secrets[name]
        except KeyError:
            raise NotFound(404, "NotFound", f'secrets "{name}" not found') from None

    async def json_patch_status(self, kind: str, ns: str, name: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append("json_patch_status")
        await asyncio.sleep(self.patch_delay)
        if self.fail_next:
            raise self.fail_next.pop(0)
        if self.inbox is None:
            raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request")
        self.patches.append(operations)
        for op in operations:
            key = op["path"].split("/")[-1].replace("~1", "/").replace("~0", "~")
            self.inbox[key] = op["value"]
        return {}

    async def patch_status(self, kind: str, ns: str, name: str, patch: dict[str, Any],
                           resource_version: str | None = None) -> dict[str, Any]:
        self.calls.append("patch_status")
        if self.inbox is None:
            self.inbox = {}
        return {}
