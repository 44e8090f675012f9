"""kopf wiring: watch Playbooks and Executions, run the periodic scan, expose liveness.

Handlers are raw event handlers (``kopf.on.event``): kopf then keeps no diff-base annotation and
adds no finalizer to our objects (big specs would hit the 256 KiB annotation cap), and handlers
for one object still never run concurrently. Everything kopf would post as Kubernetes Events is
off; the controller posts its own, chosen Events.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import kopf

from noetl.k8s import EXECUTIONS, GROUP, PLAYBOOKS, VERSION, KubeClient, Phase
from noetl_operator._executions import ExecutionController, now_utc, parse_time
from noetl_operator._playbooks import reconcile_playbook
from noetl_operator._settings import Settings
from noetl_operator._workers import WorkerPool

log = logging.getLogger("noetl.operator")


class Operator:
    """Holds the API client, the controller and the scan task for one operator process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: Any = None
        self.controller: ExecutionController | None = None
        self._scan: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.client = KubeClient.from_env()
        workers = WorkerPool(self.client, self.settings.worker_namespace)
        self.controller = ExecutionController(self.client, self.settings, workers)
        try:
            await workers.refresh()
        except Exception as exc:  # noqa: BLE001 - the scan retries; start-up must not die on it
            log.warning("could not list worker leases yet: %s", exc)
        self._scan = asyncio.create_task(self.scan_forever(), name="noetl-scan")

    async def stop(self) -> None:
        if self._scan is not None:
            self._scan.cancel()
            await asyncio.gather(self._scan, return_exceptions=True)
        if self.client is not None:
            await self.client.aclose()

    async def scan_forever(self) -> None:
        while True:
            try:
                await self.scan_once(now_utc())
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failed scan is retried at the next tick
                log.exception("scan failed")
            await asyncio.sleep(self.settings.scan_interval)

    async def scan_once(self, now: dt.datetime) -> None:
        """Deadlines, TTLs, queued or orphaned worker commands, Jobs that failed silently."""
        assert self.controller is not None
        controller = self.controller
        await controller.workers.refresh(now)
        for uid, body in list(controller.bodies.items()):
            spec, status = body.get("spec") or {}, body.get("status") or {}
            phase = status.get("phase")
            if phase and Phase(phase).finished:
                ttl = spec.get("ttlSecondsAfterFinished")
                finished = parse_time(status.get("finishedAt"))
                if ttl is not None and finished and (now - finished).total_seconds() >= int(ttl):
                    meta = body["metadata"]
                    log.info("execution %s/%s: ttlSecondsAfterFinished passed, deleting", meta["namespace"],
                             meta["name"])
                    try:
                        await self.client.delete_object(EXECUTIONS, meta["namespace"], meta["name"])
                    except Exception as exc:  # noqa: BLE001
                        log.warning("could not delete %s: %s", meta["name"], exc)
                    controller.bodies.pop(uid, None)
                continue
            started = parse_time(status.get("startedAt"))
            timeout = spec.get("timeoutSeconds")
            commands = status.get("commands") or {}
            needs_round = bool(timeout and started and (now - started).total_seconds() > int(timeout))
            if not spec.get("suspend"):
                for record in commands.values():
                    if record.get("executor") != "job" and not controller.workers.alive(record.get("worker") or ""):
                        needs_round = True
                        break
            if needs_round:
                await controller.reconcile(uid)
            if any(r.get("job") for r in commands.values()):
                await controller.check_jobs(uid, now)


def build_registry(operator: Operator) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False
        # We watch exactly the namespaces given (or all): no need to list Namespaces or watch CRDs,
        # which a namespaced install deliberately does not grant.
        settings.scanning.disabled = True
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.batching.batch_window = 0.05  # coalesce bursts of inbox patches into one round
        await operator.start()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await operator.stop()

    @kopf.on.probe(id="scan", registry=registry)
    def scan_alive(**_: Any) -> bool:
        return operator._scan is not None and not operator._scan.done()

    @kopf.on.event(GROUP, VERSION, EXECUTIONS, registry=registry)
    async def on_execution(event: kopf.RawEvent, **_: Any) -> None:
        assert operator.controller is not None
        await operator.controller.on_event(event.get("type"), dict(event["object"]))

    @kopf.on.event(GROUP, VERSION, PLAYBOOKS, registry=registry)
    async def on_playbook(event: kopf.RawEvent, **_: Any) -> None:
        if event.get("type") != "DELETED":
            await reconcile_playbook(operator.client, dict(event["object"]))

    return registry


def run(settings: Settings) -> None:
    """Run the operator until interrupted (blocking)."""
    operator = Operator(settings)
    registry = build_registry(operator)
    liveness = f"http://0.0.0.0:{settings.liveness_port}/healthz" if settings.liveness_port else None
    kopf.run(registry=registry, standalone=True, clusterwide=not settings.namespaces,
             namespaces=list(settings.namespaces), liveness_endpoint=liveness)
