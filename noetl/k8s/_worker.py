"""``noetl worker``: the processes that run commands in the cluster (DESIGN §4.1).

Two modes, one way of running a command (load, wait ``delay``, ``noetl.worker.execute`` with the
namespace's Secret credentials, report):

* **deployment** (``run_worker``): a long-lived pod. It holds a Lease ``noetl-worker-<identity>``
  (renewed every ``LEASE_RENEW_SECONDS``), watches Executions, and runs the entries of
  ``status.commands`` whose ``worker`` is its identity, up to ``concurrency`` at a time.
* **job** (``run_job_command``): one Job pod, one command from ``NOETL_COMMAND``.

Reporting is the only write to an Execution, and it only adds ``status.inbox[EVENT_ID] = EVENT``:
a JSON patch ``add`` (exact, nulls included; see ``_patch_inbox`` for why not a merge patch) with
no resourceVersion, since adding distinct keys cannot clobber other writers or the operator. An event above ``INLINE_LIMIT_BYTES`` goes
to an owned ConfigMap and the inbox gets ``{"eventRef", "id", "command_id"}``. Transient API errors
are retried with backoff until ``REPORT_DEADLINE`` seconds.

Delivery is at-least-once: a command is run at most once per worker while it stays assigned
(``started`` ids are forgotten only when the command leaves ``status.commands`` or is assigned
elsewhere, which also cancels it here), and an id already in the inbox is not run again.
Never logs command args, credentials or results.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import random
import signal
import socket
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Sequence

from noetl.engine import Command, Event
from noetl.errors import error_record
from noetl.k8s._blobs import blob_name, get_blob, put_blob
from noetl.k8s._children import PlaybookResolver, run_child_playbook
from noetl.k8s._client import KubeClient, json_pointer
from noetl.k8s._config import SA_DIR_ENV, SA_MOUNT
from noetl.k8s._credentials import SecretCredentials
from noetl.k8s._defaults import DEFAULT_CONCURRENCY, GRACE_SECONDS, RELIST_SECONDS, REPORT_DEADLINE
from noetl.k8s._errors import ApiError, Gone, NotFound
from noetl.k8s._resources import (
    API_VERSION,
    EXECUTIONS,
    INLINE_LIMIT_BYTES,
    LABEL_COMPONENT,
    LABEL_PART_OF,
    LABEL_WORKER,
    LEASE_DURATION_SECONDS,
    LEASE_RENEW_SECONDS,
)
from noetl.worker import WorkerRuntime, execute

__all__ = ["InboxWriter", "Worker", "inbox_entry", "lease_name", "report_event", "run_job_command", "run_worker"]

log = logging.getLogger("noetl.k8s.worker")

Obj = dict[str, Any]
OwnerFn = Callable[[], Awaitable[Obj]]


def lease_name(identity: str) -> str:
    """``noetl-worker-<identity>`` as a valid object name."""
    return blob_name(f"noetl-worker-{identity}")


def _identity() -> str:
    return os.environ.get("POD_NAME") or socket.gethostname()


def _own_namespace() -> str:
    """The pod's namespace: POD_NAMESPACE, else the ServiceAccount's namespace file, else default."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    for folder in (SA_MOUNT, os.environ.get(SA_DIR_ENV)):
        if folder and (Path(folder) / "namespace").is_file():
            return (Path(folder) / "namespace").read_text().strip()
    return "default"


# -- reporting ---------------------------------------------------------------------------------------
def _event_id(command_id: str) -> str:
    return f"{command_id}:done"  # Event.done's id: lets us see "already reported" in the inbox


async def inbox_entry(client: KubeClient, ns: str, name: str, event: Event, *, owner: OwnerFn) -> Obj:
    """What goes into ``status.inbox[event.id]``: the event, or a reference to a ConfigMap holding it."""
    data = event.model_dump(mode="json")
    if len(json.dumps(data, separators=(",", ":")).encode()) <= INLINE_LIMIT_BYTES:
        return data
    suffix = "event-" + hashlib.sha256(event.id.encode()).hexdigest()[:16]
    ref = await put_blob(client, ns, blob_name(name, suffix), data, owner=await owner(), kind_label="event")
    return {"eventRef": ref, "id": event.id, "command_id": event.command_id}


async def _patch_inbox(client: KubeClient, ns: str, name: str, entries: Mapping[str, Obj], *,
                       deadline: float, extra: Mapping[str, Any], inbox_missing: bool = False) -> bool:
    """One patch adding ``entries`` to the inbox, retried on transient errors; True once landed.

    A JSON patch of ``add`` operations, not a merge patch: a merge patch would drop every ``null``
    inside a response (``{"a": null}`` -> ``{}``). Like a merge patch it needs no resourceVersion
    and touches only its own keys. ``add`` needs ``status.inbox`` to exist: when the API answers
    422 (or the caller saw no inbox: ``inbox_missing``) we create it with the merge patch
    ``{"status": {"inbox": {}}}`` (a no-op when it exists) and try once more. Retries (capped exponential backoff with jitter, until ``deadline``
    seconds) everything except 404 (the Execution is gone) and repeated 400/413/422.
    """
    operations = [{"op": "add", "path": json_pointer("status", "inbox", event_id), "value": entry}
                  for event_id, entry in entries.items()]
    give_up = time.monotonic() + deadline
    delay = 0.2
    created_inbox = False
    while True:
        try:
            if inbox_missing and not created_inbox:
                created_inbox = True
                await client.patch_status(EXECUTIONS, ns, name, {"status": {"inbox": {}}})
            await client.json_patch_status(EXECUTIONS, ns, name, operations)
            return True
        except NotFound:
            log.warning("Execution is gone; dropping %d event(s)", len(entries), extra=extra)
            return False
        except ApiError as exc:
            if exc.status == 422 and not created_inbox:
                created_inbox = True
                try:
                    await client.patch_status(EXECUTIONS, ns, name, {"status": {"inbox": {}}})
                    continue
                except NotFound:
                    log.warning("Execution is gone; dropping %d event(s)", len(entries), extra=extra)
                    return False
                except ApiError as inner:
                    exc = inner
            if exc.status in (400, 413, 422):
                log.error("the API refused %d event(s): %s", len(entries), exc, extra=extra)
                return False
            if time.monotonic() + delay > give_up:
                log.error("could not report %d event(s) within %.0fs: %s", len(entries), deadline, exc, extra=extra)
                return False
            log.warning("reporting failed (%s); retrying in %.1fs", exc, delay, extra=extra)
        await asyncio.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 10.0)


async def report_event(client: KubeClient, ns: str, name: str, event: Event, *, owner: OwnerFn,
                       deadline: float = REPORT_DEADLINE) -> bool:
    """Add one event to the Execution's inbox (Job mode); True once it landed."""
    extra = {"execution": f"{ns}/{name}", "command": event.command_id}
    try:
        entry = await inbox_entry(client, ns, name, event, owner=owner)
    except NotFound:
        log.warning("Execution is gone; dropping its event", extra=extra)
        return False
    except ApiError as exc:
        log.error("could not store the large event: %s", exc, extra=extra)
        return False
    return await _patch_inbox(client, ns, name, {event.id: entry}, deadline=deadline, extra=extra)


class InboxWriter:
    """Reports the events of one Execution from one worker, batching what piles up.

    Why: concurrent merge patches of one object conflict inside the apiserver, which retries them;
    on a busy apiserver throughput then collapses (measured on the test control plane: 12 patches/s
    with one writer, 2.4/s with eight). So each worker keeps at most one patch in flight per
    Execution, and every event that finished meanwhile goes into the next patch. An idle worker
    still reports each event at once.
    """

    #: Largest patch: well below the apiserver's 3 MiB request limit and the 1.5 MiB etcd value.
    MAX_BATCH_BYTES = 512 * 1024

    def __init__(self, client: KubeClient, ns: str, name: str, *, deadline: float = REPORT_DEADLINE) -> None:
        self.client = client
        self.ns = ns
        self.name = name
        self.deadline = deadline
        self._pending: dict[str, tuple[Obj, int, asyncio.Future[bool]]] = {}
        self._flusher: asyncio.Task[None] | None = None
        #: Set by the worker when the last object seen had no ``status.inbox`` (saves a refused patch).
        self.inbox_missing = False

    async def report(self, event_id: str, entry: Obj) -> bool:
        """Queue ``entry`` under ``event_id``; True once it is in the inbox."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        size = len(json.dumps(entry, separators=(",", ":")))
        self._pending[event_id] = (entry, size, future)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name=f"inbox-{self.ns}/{self.name}")
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch: dict[str, Obj] = {}
            futures: list[asyncio.Future[bool]] = []
            total = 0
            for event_id in list(self._pending):
                entry, size, future = self._pending[event_id]
                if batch and total + size > self.MAX_BATCH_BYTES:
                    break
                del self._pending[event_id]
                batch[event_id] = entry
                futures.append(future)
                total += size
            extra = {"execution": f"{self.ns}/{self.name}", "command": next(iter(batch))}
            try:
                ok = await _patch_inbox(self.client, self.ns, self.name, batch, deadline=self.deadline, extra=extra,
                                        inbox_missing=self.inbox_missing)
                self.inbox_missing = False
            except BaseException:
                for future in futures:
                    if not future.done():
                        future.set_result(False)
                raise
            for future in futures:
                if not future.done():
                    future.set_result(ok)

    async def aclose(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            await asyncio.gather(self._flusher, return_exceptions=True)


async def _load_command(client: KubeClient, ns: str, record: Mapping[str, Any]) -> Command:
    """The command of a status.commands entry (or of NOETL_COMMAND): inline, or via commandRef."""
    if "commandRef" in record and "id" not in record:
        return Command.model_validate(await get_blob(client, ns, record["commandRef"]))
    return Command.model_validate(record.get("command", record))


def _failed_event(command_id: str, exc: BaseException) -> Event:
    """A call.done carrying the error, when the command could not even be loaded."""
    return Event(id=_event_id(command_id), command_id=command_id, error=error_record(exc),
                 started_at=time.time(), finished_at=time.time())


class _Runtimes:
    """One WorkerRuntime (HTTP pool, tools) for the process; per namespace a view with its Secrets."""

    def __init__(self, client: KubeClient, base: WorkerRuntime) -> None:
        self.client = client
        self.base = base
        self._credentials: dict[str, SecretCredentials] = {}
        self._resolvers: dict[str, PlaybookResolver] = {}

    def for_command(self, ns: str, command: Command) -> WorkerRuntime:
        creds = self._credentials.get(ns)
        if creds is None:
            creds = self._credentials[ns] = SecretCredentials(self.client, ns)
        resolver = self._resolvers.get(ns)
        if resolver is None:
            resolver = self._resolvers[ns] = PlaybookResolver(self.client, ns)
        runtime = dataclasses.replace(self.base, credentials=creds, owns_http=False)

        async def run_playbook(ref: dict[str, Any], args: dict[str, Any]) -> Any:
            return await run_child_playbook(resolver, ref, args, parent_id=command.execution_id, runtime=runtime)

        runtime.run_playbook = run_playbook
        return runtime


async def _execute(runtimes: _Runtimes, ns: str, command: Command) -> Event:
    try:
        return await execute(command, runtimes.for_command(ns, command))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - execute should not raise; never lose an event
        return Event.done(command, error=error_record(exc))


# -- deployment mode ---------------------------------------------------------------------------------
@dataclasses.dataclass
class _Running:
    task: asyncio.Task[None]
    executing: bool = False


class Worker:
    """A worker pod's loop. ``await Worker(...).run(stop)`` returns after ``stop`` is set and it shut down."""

    def __init__(self, client: KubeClient, *, identity: str, lease_namespace: str,
                 namespaces: Sequence[str] | None = None, concurrency: int = DEFAULT_CONCURRENCY,
                 grace_seconds: float = GRACE_SECONDS, relist_seconds: int = RELIST_SECONDS,
                 runtime: WorkerRuntime | None = None) -> None:
        self.client = client
        self.identity = identity
        self.lease_namespace = lease_namespace
        self.namespaces: list[str | None] = list(namespaces) if namespaces else [None]
        self.concurrency = concurrency
        self.grace_seconds = grace_seconds
        self.relist_seconds = relist_seconds
        self._runtime = runtime
        self._slots = asyncio.Semaphore(concurrency)
        self._stopping = False
        self._running: dict[str, dict[str, _Running | None]] = {}  # execution uid -> command id -> task
        self._where: dict[str, tuple[str, str]] = {}  # execution uid -> (namespace, name)
        self._owners: dict[str, Obj] = {}
        self._writers: dict[tuple[str, str], InboxWriter] = {}
        self.commands_run = 0

    @property
    def lease(self) -> str:
        return lease_name(self.identity)

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the Lease, take commands until ``stop``, then shut down gracefully."""
        base = self._runtime or WorkerRuntime.create()
        self._runtimes = _Runtimes(self.client, base)
        extra = {"worker": self.identity}
        await self._renew_lease()  # before taking anything: the operator only assigns to live workers
        log.info("worker started (concurrency %d, namespaces %s)", self.concurrency,
                 ",".join(n or "*" for n in self.namespaces), extra=extra)
        background = [asyncio.create_task(self._lease_loop(), name="lease")]
        background += [asyncio.create_task(self._watch_loop(ns), name=f"watch-{ns or 'all'}")
                       for ns in self.namespaces]
        try:
            await stop.wait()
        finally:
            log.info("worker stopping", extra=extra)
            self._stopping = True
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._drain()
            await asyncio.gather(*(w.aclose() for w in self._writers.values()))
            try:
                await self.client.delete_lease(self.lease_namespace, self.lease)
            except ApiError as exc:
                log.warning("could not delete the Lease: %s", exc, extra=extra)
            if self._runtime is None:
                await base.aclose()
            log.info("worker stopped (%d commands run)", self.commands_run, extra=extra)

    async def _drain(self) -> None:
        """Cancel what has not started, give running calls ``grace_seconds``, cancel the rest."""
        waiting: list[asyncio.Task[None]] = []
        executing: list[asyncio.Task[None]] = []
        for commands in self._running.values():
            for running in commands.values():
                if running is not None and not running.task.done():
                    (executing if running.executing else waiting).append(running.task)
        for task in waiting:
            task.cancel()
        if executing:
            _, pending = await asyncio.wait(executing, timeout=self.grace_seconds)
            for task in pending:
                log.warning("command still running after the grace period; cancelled", extra={"command": task.get_name()})
                task.cancel()
        await asyncio.gather(*waiting, *executing, return_exceptions=True)

    # -- lease -------------------------------------------------------------------------------------
    async def _renew_lease(self) -> None:
        labels = {LABEL_WORKER: "true", LABEL_PART_OF: "noetl", LABEL_COMPONENT: "worker"}
        await self.client.create_or_renew_lease(self.lease_namespace, self.lease, self.identity,
                                                LEASE_DURATION_SECONDS, labels, owner=_pod_owner(self.identity))

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW_SECONDS)
            try:
                await self._renew_lease()
            except Exception as exc:  # noqa: BLE001 - keep renewing whatever happened once
                log.warning("Lease renewal failed: %s", exc, extra={"worker": self.identity})

    # -- watching ----------------------------------------------------------------------------------
    async def _watch_loop(self, ns: str | None) -> None:
        """List, then watch until the server ends the watch (``relist_seconds``), then list again."""
        backoff = 0.5
        while True:
            try:
                items, version = await self.client.list_objects(EXECUTIONS, ns)
                self._sync(ns, items)
                async with self.client.watch_objects(EXECUTIONS, ns, version,
                                                     timeout_seconds=self.relist_seconds) as stream:
                    async for kind, obj in stream:
                        if kind in ("ADDED", "MODIFIED"):
                            self._take(obj)
                        elif kind == "DELETED":
                            self._forget(obj["metadata"]["uid"])
                backoff = 0.5
            except Gone:
                continue
            except Exception as exc:  # noqa: BLE001 - a worker that stops watching would hold its Lease idle
                log.warning("watching Executions failed: %s: %s; retrying in %.1fs", type(exc).__name__, exc, backoff,
                            extra={"namespace": ns or "*", "worker": self.identity})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 15.0)

    def _sync(self, ns: str | None, items: list[Obj]) -> None:
        seen = {obj["metadata"]["uid"] for obj in items}
        for uid, (where, _) in list(self._where.items()):
            if (ns is None or where == ns) and uid not in seen:
                self._forget(uid)
        for obj in items:
            self._take(obj)

    def _forget(self, uid: str) -> None:
        for running in (self._running.pop(uid, None) or {}).values():
            if running is not None and not running.task.done():
                running.task.cancel()
        where = self._where.pop(uid, None)
        self._owners.pop(uid, None)
        if where is not None:
            self._writers.pop(where, None)

    def _take(self, obj: Obj) -> None:
        """Start the commands of ``obj`` assigned here; forget (and cancel) those no longer assigned."""
        meta = obj["metadata"]
        uid = meta["uid"]
        status = obj.get("status") or {}
        commands = status.get("commands") or {}
        mine = {cid: rec for cid, rec in commands.items()
                if isinstance(rec, dict) and rec.get("worker") == self.identity}
        known = self._running.get(uid)
        if known is None:
            if not mine or self._stopping:
                return
            known = self._running[uid] = {}
        for cid in [c for c in known if c not in mine]:
            running = known.pop(cid)
            if running is not None and not running.task.done():
                running.task.cancel()  # cancelled or reassigned elsewhere: stop spending on it
        if not self._stopping:
            self._where[uid] = (meta["namespace"], meta["name"])
            self._owners[uid] = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                                 "metadata": {"name": meta["name"], "uid": uid}}
            inbox = status.get("inbox") or {}
            writer = self._writers.get((meta["namespace"], meta["name"]))
            if writer is None:
                writer = self._writers[(meta["namespace"], meta["name"])] = InboxWriter(
                    self.client, meta["namespace"], meta["name"])
            writer.inbox_missing = "inbox" not in status
            for cid, rec in mine.items():
                if cid in known:
                    continue
                if _event_id(cid) in inbox:
                    known[cid] = None  # reported already (e.g. before a restart)
                    continue
                task = asyncio.create_task(self._run_command(uid, meta["namespace"], meta["name"], cid, rec),
                                           name=cid)
                known[cid] = _Running(task)
        if not known:  # nothing of ours left there: keep no state for it
            self._running.pop(uid, None)
            where = self._where.pop(uid, None)
            self._owners.pop(uid, None)
            if where is not None:
                self._writers.pop(where, None)

    async def _run_command(self, uid: str, ns: str, name: str, cid: str, record: Obj) -> None:
        extra = {"execution": f"{ns}/{name}", "command": cid}
        try:
            command = await _load_command(self.client, ns, record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken command becomes a failed call, not a hang
            log.error("cannot load the command", exc_info=exc, extra=extra)
            event = _failed_event(cid, exc)
        else:
            if command.delay > 0:
                await asyncio.sleep(command.delay)
            async with self._slots:
                running = (self._running.get(uid) or {}).get(cid)
                if running is not None:
                    running.executing = True
                t0 = time.monotonic()
                event = await _execute(self._runtimes, ns, command)
                self.commands_run += 1
                log.info("%s %s in %.3fs", command.step, "failed" if event.error else "done", time.monotonic() - t0,
                         extra=extra)
        owner = self._owners.get(uid) or {"apiVersion": API_VERSION, "kind": "Execution",
                                          "metadata": {"name": name, "uid": uid}}

        async def get_owner() -> Obj:
            return owner

        try:
            entry = await inbox_entry(self.client, ns, name, event, owner=get_owner)
        except ApiError as exc:
            log.error("could not store the large event: %s", exc, extra=extra)
            return
        writer = self._writers.get((ns, name))
        if writer is None:
            writer = self._writers[(ns, name)] = InboxWriter(self.client, ns, name)
        await writer.report(event.id, entry)


async def run_worker(*, client: KubeClient | None = None, kubeconfig: str | None = None,
                     namespaces: Sequence[str] | None = None, identity: str | None = None,
                     lease_namespace: str | None = None, concurrency: int = DEFAULT_CONCURRENCY,
                     grace_seconds: float = GRACE_SECONDS, stop: asyncio.Event | None = None,
                     handle_signals: bool = False, runtime: WorkerRuntime | None = None) -> None:
    """Deployment mode: run until ``stop`` is set (or SIGTERM/SIGINT with ``handle_signals``).

    ``identity`` defaults to env POD_NAME (else the host name), ``lease_namespace`` to env
    POD_NAMESPACE; ``namespaces`` are the namespaces whose Executions it serves (all when empty).
    A client is created from the environment unless given (and then closed at the end).
    """
    stop = stop or asyncio.Event()
    if handle_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    owned = client is None
    kube = client or KubeClient.from_env(kubeconfig, pool_size=max(16, concurrency * 2))
    try:
        worker = Worker(kube, identity=identity or _identity(), lease_namespace=lease_namespace or _own_namespace(),
                        namespaces=namespaces, concurrency=concurrency, grace_seconds=grace_seconds, runtime=runtime)
        await worker.run(stop)
    finally:
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        if owned:
            await kube.aclose()


# -- job mode ----------------------------------------------------------------------------------------
class JobUsageError(ValueError):
    """NOETL_COMMAND / NOETL_EXECUTION missing or malformed (exit code 2)."""


def _job_inputs(command_text: str | None, command_file: str | None, execution: str | None) -> tuple[Obj, str, str]:
    if command_text is None and command_file:
        command_text = Path(command_file).read_text(encoding="utf-8")
    command_text = command_text if command_text is not None else os.environ.get("NOETL_COMMAND")
    execution = execution or os.environ.get("NOETL_EXECUTION")
    if not command_text:
        raise JobUsageError("no command: set NOETL_COMMAND (JSON of a Command) or pass --command-file")
    if not execution or execution.count("/") != 1:
        raise JobUsageError(f"NOETL_EXECUTION must be 'namespace/name', got {execution!r}")
    try:
        data = json.loads(command_text)
    except ValueError as exc:
        raise JobUsageError(f"the command is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise JobUsageError("the command must be a JSON object")
    ns, name = execution.split("/")
    return data, ns, name


async def run_job_command(*, command: str | None = None, command_file: str | None = None,
                          execution: str | None = None, client: KubeClient | None = None,
                          kubeconfig: str | None = None, runtime: WorkerRuntime | None = None) -> int:
    """Job mode: run one command and report its event. Exit code: 0 reported (even a failed call:
    the event carries the error), 1 could not report, 2 bad input.

    The command is ``command`` (JSON text), else the file ``command_file``, else env NOETL_COMMAND
    (a Command, or ``{"commandRef": REF}`` for one stored with put_blob); the Execution is
    ``execution`` or env NOETL_EXECUTION, as ``namespace/name``.
    """
    try:
        data, ns, name = _job_inputs(command, command_file, execution)
    except (JobUsageError, OSError) as exc:
        log.error("%s", exc)
        return 2
    extra = {"execution": f"{ns}/{name}", "command": str(data.get("id") or "")}
    owned = client is None
    kube = client or KubeClient.from_env(kubeconfig)
    base = runtime or WorkerRuntime.create()
    try:
        cid = str(data.get("id") or "")
        try:
            cmd = await _load_command(kube, ns, data)
        except Exception as exc:  # noqa: BLE001 - report it as a failed call when we know the id
            log.error("cannot load the command", exc_info=exc, extra=extra)
            if not cid:
                return 2
            event = _failed_event(cid, exc)
        else:
            extra["command"] = cmd.id
            if cmd.delay > 0:
                await asyncio.sleep(cmd.delay)
            t0 = time.monotonic()
            event = await _execute(_Runtimes(kube, base), ns, cmd)
            log.info("%s %s in %.3fs", cmd.step, "failed" if event.error else "done", time.monotonic() - t0,
                     extra=extra)

        async def owner() -> Obj:
            return await kube.get_object(EXECUTIONS, ns, name)

        ok = await report_event(kube, ns, name, event, owner=owner)
        return 0 if ok else 1
    finally:
        if runtime is None:
            await base.aclose()
        if owned:
            await kube.aclose()


def _pod_owner(pod_name: str) -> dict[str, Any] | None:
    """An ownerReference to this worker's own pod (env POD_UID, set by the chart from the downward
    API), so a Lease a killed worker could not delete is garbage-collected with its pod."""
    uid = os.environ.get("POD_UID")
    if not uid:
        return None
    return {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": uid}
