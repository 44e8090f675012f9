"""Where each kind of object lives in the API: the URL paths the client builds.

One table instead of one generated API class per group: the client sends plain JSON to these
paths, so adding a kind is one line here. Keys are the plural resource names.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from noetl.k8s._resources import EXECUTIONS, GROUP, PLAYBOOKS, VERSION

__all__ = ["KINDS", "Kind", "kind_of"]


@dataclass(frozen=True)
class Kind:
    """A resource kind: its API prefix (``/api/v1`` or ``/apis/GROUP/VERSION``) and plural."""

    prefix: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        """``/apis/g/v/namespaces/ns/plural/name/sub``; no namespace means all namespaces."""
        parts = [self.prefix]
        if namespace is not None and self.namespaced:
            parts += ["namespaces", quote(namespace, safe="")]
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
            if subresource:
                parts.append(subresource)
        return "/".join(parts)


KINDS: dict[str, Kind] = {
    EXECUTIONS: Kind(f"/apis/{GROUP}/{VERSION}", EXECUTIONS),
    PLAYBOOKS: Kind(f"/apis/{GROUP}/{VERSION}", PLAYBOOKS),
    "jobs": Kind("/apis/batch/v1", "jobs"),
    "pods": Kind("/api/v1", "pods"),
    "configmaps": Kind("/api/v1", "configmaps"),
    "secrets": Kind("/api/v1", "secrets"),
    "events": Kind("/api/v1", "events"),
    "leases": Kind("/apis/coordination.k8s.io/v1", "leases"),
    "namespaces": Kind("/api/v1", "namespaces", namespaced=False),
}


def kind_of(kind: str) -> Kind:
    """The table entry for ``kind`` (a plural such as ``executions``); ValueError names the known ones."""
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown kind '{kind}'; known: {', '.join(sorted(KINDS))}") from None
