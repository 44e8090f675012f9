"""Convert the file form of a playbook into its Kubernetes resource form (`noetl manifest`)."""

from __future__ import annotations

import re
from typing import Any

from noetl.dsl._parsing import NAME_ANNOTATION, PATH_ANNOTATION, ParsedPlaybook

_BODY_KEYS = ("workload", "workbook", "workflow", "keychain")


def k8s_name(name: str) -> str:
    """A DNS-1123 subdomain made from ``name``: lower case, [a-z0-9-.], at most 253 characters."""
    out = re.sub(r"[^a-z0-9.-]+", "-", name.lower())
    out = re.sub(r"-{2,}", "-", out).strip("-.")
    return (out or "playbook")[:253].rstrip("-.")


def to_manifest(parsed: ParsedPlaybook, *, namespace: str | None = None) -> dict[str, Any]:
    """The resource form of a playbook; the body is kept exactly as written."""
    body = parsed.body
    meta = dict(body.get("metadata") or {})
    name = str(meta.get("name"))
    annotations: dict[str, str] = {}
    if meta.get("path"):
        annotations[PATH_ANNOTATION] = str(meta["path"])
    if k8s_name(name) != name:
        annotations[NAME_ANNOTATION] = name
    if meta.get("version") is not None:
        annotations["noetl.io/version"] = str(meta["version"])
    if meta.get("description"):
        annotations["noetl.io/description"] = str(meta["description"])
    metadata: dict[str, Any] = {"name": k8s_name(name)}
    if namespace:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = annotations
    spec = {k: body[k] for k in _BODY_KEYS if body.get(k) is not None}
    return {"apiVersion": "noetl.io/v2", "kind": "Playbook", "metadata": metadata, "spec": spec}
