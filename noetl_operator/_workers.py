"""The live worker pods, as their Leases tell (DESIGN §4.1, `worker` executor).

A worker holds a Lease named after its pod and renews it every few seconds. A worker whose Lease
was not renewed within its duration is dead for assignment purposes: its commands go to another
worker (at-least-once delivery; command ids make a second report harmless).
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from noetl.k8s import LABEL_WORKER

SELECTOR = f"{LABEL_WORKER}=true"


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class WorkerPool:
    def __init__(self, client: Any, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._alive: list[str] = []
        self._counter = itertools.count()

    async def refresh(self, now: dt.datetime | None = None) -> list[str]:
        """Re-read the Leases; returns the identities of live workers."""
        now = now or dt.datetime.now(dt.timezone.utc)
        items, _ = await self.client.list_leases(self.namespace, label_selector=SELECTOR)
        alive = []
        for lease in items:
            spec = lease.get("spec") or {}
            renewed = _parse_time(spec.get("renewTime")) or _parse_time(spec.get("acquireTime"))
            duration = spec.get("leaseDurationSeconds") or 15
            if renewed is not None and (now - renewed).total_seconds() <= duration and spec.get("holderIdentity"):
                alive.append(str(spec["holderIdentity"]))
        self._alive = sorted(alive)
        return self._alive

    def alive(self, identity: str) -> bool:
        return identity in self._alive

    def pick(self) -> str | None:
        """A live worker, round robin; None when there is none (the command stays queued)."""
        if not self._alive:
            return None
        return self._alive[next(self._counter) % len(self._alive)]
