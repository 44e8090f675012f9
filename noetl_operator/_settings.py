"""Operator settings: every one has a command-line option and a NOETL_* environment variable."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = ()  # watched namespaces; empty = cluster-wide
    executor: str = "worker"  # default spec.executor: worker | job
    worker_namespace: str = "default"  # where worker Leases live
    image: str = "noetl:dev"  # image of Job pods
    image_pull_policy: str = "IfNotPresent"
    job_service_account: str = "noetl-job"
    job_ttl_seconds: int = 300  # Jobs linger this long after finishing (debugging), then GC
    state_inline_bytes: int = 96 * 1024  # encoded engine state above this goes to ConfigMaps
    scan_interval: float = 1.0  # seconds between deadline / lease / Job checks
    job_lost_grace: float = 10.0  # a job command with no Job for this long is a failed call
    liveness_port: int | None = None
