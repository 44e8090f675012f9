"""Playbook resources: validated on every new generation; status says Ready or Invalid and why."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from noetl.dsl import validate_document
from noetl.errors import PlaybookError
from noetl.k8s import PLAYBOOKS, Conflict, NotFound, Reason

log = logging.getLogger("noetl.operator")


def validation_status(body: dict[str, Any]) -> dict[str, Any]:
    """The status a Playbook object deserves (pure: no API calls)."""
    meta = body["metadata"]
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        parsed = validate_document(body, file=f"playbook {meta['name']}")
    except PlaybookError as exc:
        messages = [_line(p) for p in getattr(exc, "problems", []) if p.severity == "error"] or [str(exc)]
        return {"phase": "Invalid", "messages": messages, "observedGeneration": meta.get("generation"),
                "conditions": [{"type": "Ready", "status": "False", "reason": str(Reason.PLAYBOOK_INVALID),
                                "message": "; ".join(messages)[:1024], "lastTransitionTime": now}]}
    warnings = [_line(p) for p in parsed.warnings]
    return {"phase": "Ready", "messages": warnings or None, "observedGeneration": meta.get("generation"),
            "steps": len(parsed.playbook.workflow),
            "conditions": [{"type": "Ready", "status": "True", "reason": str(Reason.VALID),
                            "message": "playbook is valid", "lastTransitionTime": now}]}


def _line(problem: Any) -> str:
    parts = [f"step '{problem.step}'"] if problem.step else []
    if problem.field:
        parts.append(problem.field)
    parts.append(problem.message)
    return ": ".join(parts)


async def reconcile_playbook(client: Any, body: dict[str, Any]) -> None:
    meta, status = body["metadata"], body.get("status") or {}
    if status.get("observedGeneration") == meta.get("generation") and status.get("phase"):
        return
    new = validation_status(body)
    try:
        await client.patch_status(PLAYBOOKS, meta["namespace"], meta["name"], {"status": new},
                                  resource_version=meta.get("resourceVersion"))
    except (Conflict, NotFound):
        return  # a newer version (or a deletion) is on its way as another watch event
    if new["phase"] == "Invalid":
        log.warning("playbook %s/%s is invalid: %s", meta["namespace"], meta["name"], new["messages"])
        await client.post_event(body, reason=str(Reason.PLAYBOOK_INVALID), message="; ".join(new["messages"])[:1024],
                                type="Warning")
