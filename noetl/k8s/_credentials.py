"""Credentials from Kubernetes Secrets, resolved only in the worker or Job process (DESIGN §3.9).

``auth: NAME`` resolves, in the Execution's namespace, to

1. the Secret whose annotation ``noetl.io/credential`` lists NAME (comma-separated), else
2. the Secret named NAME, else
3. the Secret named NAME made DNS-1123 (``pg_local`` -> ``pg-local``: Secret names cannot hold ``_``).

The value is the Secret's data decoded as UTF-8, one entry per key; an entry that is a JSON object
or array is parsed (so a nested credential such as ``{amadeus: {client_id, client_secret}}`` is
one key ``amadeus`` holding JSON). A Secret with exactly one key named ``value`` is that value
alone (a scalar token).

Values are cached per process for ``ttl`` seconds (30 by default): a loop of a thousand calls
with the same ``auth`` costs one API read, and a rotated Secret is picked up within the TTL.
Implements ``noetl.worker.CredentialSource`` with an async ``resolve``. Never logs or reports a
value: messages name Secrets and credentials only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from typing import Any

from noetl.errors import ToolError
from noetl.k8s._client import KubeClient
from noetl.k8s._errors import ApiError, Forbidden, NotFound
from noetl.k8s._resources import ANNOTATION_CREDENTIAL

__all__ = ["SecretCredentials", "secret_value"]

#: Seconds a resolved credential (and the namespace's list of Secrets) is reused.
CACHE_SECONDS = 30.0


def secret_value(secret: dict[str, Any]) -> Any:
    """A Secret's data as a credential value (see the module docstring)."""
    values: dict[str, Any] = {}
    name = (secret.get("metadata") or {}).get("name", "?")
    for key, encoded in (secret.get("data") or {}).items():
        try:
            text = base64.b64decode(encoded).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ToolError("CredentialInvalid", f"Secret '{name}' key '{key}' is not UTF-8 text; "
                                                 "store credentials as text (JSON for nested values)") from None
        values[key] = _maybe_json(text)
    for key, text in (secret.get("stringData") or {}).items():  # never returned by the API; for fakes
        values[key] = _maybe_json(str(text))
    if list(values) == ["value"]:
        return values["value"]
    return values


def _maybe_json(text: str) -> Any:
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except ValueError:
            pass
    return text


def _listed(annotation: str | None) -> set[str]:
    return {part.strip() for part in (annotation or "").split(",") if part.strip()}


class SecretCredentials:
    """``auth: NAME`` -> a Secret of ``namespace`` (by annotation, then by name). Async ``resolve``."""

    def __init__(self, client: KubeClient, namespace: str, *, ttl: float = CACHE_SECONDS) -> None:
        self.client = client
        self.namespace = namespace
        self.ttl = ttl
        self._values: dict[str, tuple[float, Any]] = {}
        self._annotated: tuple[float, dict[str, dict[str, Any]]] | None = None
        self._lock = asyncio.Lock()

    def describe(self) -> str:
        return (f"Secrets of namespace '{self.namespace}' (annotation {ANNOTATION_CREDENTIAL}: NAME, "
                "or a Secret named NAME)")

    async def resolve(self, name: str) -> Any:
        """The credential ``name``; ToolError CredentialNotFound (or CredentialForbidden) otherwise."""
        now = time.monotonic()
        cached = self._values.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._lock:  # one lookup for a burst of calls needing the same credential
            cached = self._values.get(name)
            if cached is not None and cached[0] > time.monotonic():
                return cached[1]
            value = secret_value(await self._find(name))
            self._values[name] = (time.monotonic() + self.ttl, value)
            return value

    async def _find(self, name: str) -> dict[str, Any]:
        try:
            annotated = await self._annotated_secrets()
            if name in annotated:
                return annotated[name]
            candidates = [name]
            dns = re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-.")
            if dns and dns != name:
                candidates.append(dns)
            for candidate in candidates:
                try:
                    return await self.client.get_secret(self.namespace, candidate)
                except NotFound:
                    continue
        except Forbidden as exc:
            raise ToolError("CredentialForbidden",
                            f"credential '{name}' (from `auth:`): the worker may not read Secrets in namespace "
                            f"'{self.namespace}' ({exc.message}); grant its ServiceAccount get/list on secrets "
                            "there (the Helm chart's worker Role does)", credential=name) from None
        except ApiError as exc:
            raise ToolError("CredentialUnavailable", f"credential '{name}' (from `auth:`): reading Secrets in "
                            f"namespace '{self.namespace}' failed: {exc}", credential=name) from None
        tried = " or ".join(f"'{c}'" for c in candidates)
        raise ToolError(
            "CredentialNotFound",
            f"credential '{name}' (from `auth:`) not found in namespace '{self.namespace}': no Secret there is "
            f"annotated {ANNOTATION_CREDENTIAL}: {name} and no Secret is named {tried}. Create one "
            f"(kubectl -n {self.namespace} create secret generic {candidates[-1]} --from-literal=FIELD=VALUE) "
            f"or annotate an existing one (kubectl -n {self.namespace} annotate secret SECRET "
            f"{ANNOTATION_CREDENTIAL}={name})", credential=name)

    async def _annotated_secrets(self) -> dict[str, dict[str, Any]]:
        """Credential name -> Secret, for the Secrets carrying the annotation (cached like values)."""
        if self._annotated is not None and self._annotated[0] > time.monotonic():
            return self._annotated[1]
        secrets, _ = await self.client.list_secrets(self.namespace)
        found: dict[str, dict[str, Any]] = {}
        for secret in sorted(secrets, key=lambda s: str(s["metadata"]["name"])):  # deterministic on clashes
            for listed in _listed((secret["metadata"].get("annotations") or {}).get(ANNOTATION_CREDENTIAL)):
                found.setdefault(listed, secret)
        self._annotated = (time.monotonic() + self.ttl, found)
        return found
