"""Execution reconciliation: the engine runs here, on events recorded in the Execution's status.

One reconcile round (always under the Execution's lock, so rounds never interleave):

1. load the engine (memory; else restore from ``status.state`` and the pinned playbook; else start);
2. feed it the events of ``status.inbox`` (duplicates are ignored by the engine) and any events the
   operator made up itself (a Job that failed without reporting);
3. decide the lifecycle (cancel, suspend, deadline, finished) and the outstanding commands, each
   assigned to a live worker or to a Job;
4. write all of it -- new state, commands, inbox removals, phase, progress -- in ONE status merge
   patch guarded by ``metadata.resourceVersion``; a conflict re-reads the object and redoes the
   round (the engine already holds the applied events, and re-feeding them changes nothing);
5. only after the write landed: create Jobs, post Kubernetes Events.

A round that would change nothing writes nothing, so the watch event caused by our own patch ends
there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import logging
from typing import Any, Iterable

from noetl.dsl import validate_document
from noetl.errors import PlaybookError
from noetl.dsl import Playbook as PlaybookModel
from noetl.engine import Command, Engine, Event
from noetl.k8s import (
    API_VERSION,
    EXECUTIONS,
    INLINE_LIMIT_BYTES,
    LABEL_COMPONENT,
    LABEL_EXECUTION,
    LABEL_PART_OF,
    PLAYBOOKS,
    RESULT_INLINE_LIMIT_BYTES,
    Conflict,
    NotFound,
    Phase,
    Reason,
    get_blob,
    json_pointer,
    owner_reference,
    put_blob,
)
from noetl_operator import _statestore
from noetl_operator._settings import Settings
from noetl_operator._workers import WorkerPool

log = logging.getLogger("noetl.operator")

#: At most this many StepFailed/Retrying Events per round, so a loop of failing items cannot flood.
MAX_EVENTS_PER_ROUND = 5


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def rfc3339(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def human_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60}m"


def job_name(execution: str, command_id: str) -> str:
    """Deterministic, DNS-1123 Job name for one command (so a retried create finds the same Job)."""
    digest = hashlib.sha256(command_id.encode()).hexdigest()[:10]
    return f"{execution[:40].rstrip('-.')}-{digest}"


@dataclasses.dataclass
class Live:
    """An Execution whose engine is in memory."""

    engine: Engine
    playbook: PlaybookModel
    version: int = 0  # bumped whenever the engine state changed
    persisted: int = -1  # version last written to status
    seq: int = 0  # status.state.seq last written
    #: fields and Events of the start that must be in the next successful write, even if the first
    #: write attempt hit a conflict (the redone round finds the engine already in memory)
    unwritten: dict[str, Any] = dataclasses.field(default_factory=dict)
    unposted: list[tuple[Reason, str, str]] = dataclasses.field(default_factory=list)


class ResolveError(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ExecutionController:
    def __init__(self, client: Any, settings: Settings, workers: WorkerPool) -> None:
        self.client = client
        self.settings = settings
        self.workers = workers
        self.live: dict[str, Live] = {}
        self.bodies: dict[str, dict[str, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # -- entry points ------------------------------------------------------------------------------
    async def on_event(self, event_type: str | None, body: dict[str, Any]) -> None:
        uid = body["metadata"]["uid"]
        if event_type == "DELETED":
            self.bodies.pop(uid, None)
            self.live.pop(uid, None)
            self._locks.pop(uid, None)
            return
        known = self.bodies.get(uid)
        if known is None or _rv(body) >= _rv(known):
            self.bodies[uid] = body
        await self.reconcile(uid)

    async def reconcile(self, uid: str, extra_events: Iterable[Event] = ()) -> None:
        lock = self._locks.setdefault(uid, asyncio.Lock())
        async with lock:
            body = self.bodies.get(uid)
            extra = list(extra_events)
            for _ in range(50):
                if body is None:
                    return
                try:
                    await self._round(body, extra)
                    return
                except Conflict:
                    meta = body["metadata"]
                    try:
                        body = await self.client.get_object(EXECUTIONS, meta["namespace"], meta["name"])
                    except NotFound:
                        return
                    self.bodies[uid] = body
                except NotFound:
                    return
            log.error("execution %s: gave up after 50 conflicting writes", uid)

    # -- one round ---------------------------------------------------------------------------------
    async def _round(self, body: dict[str, Any], extra: list[Event]) -> None:
        meta, spec = body["metadata"], body.get("spec") or {}
        status = body.get("status") or {}
        uid = meta["uid"]
        phase = status.get("phase")
        if phase and Phase(phase).finished:
            self.live.pop(uid, None)
            return
        now = now_utc()
        patch: dict[str, Any] = {}
        notes: list[tuple[Reason, str, str]] = []  # Kubernetes Events to post after the write
        live = self.live.get(uid)
        if live is None:
            try:
                live = await self._load_or_start(body, now)
            except ResolveError as exc:
                await self._write(body, self._failed_to_resolve(exc, now))
                await self._post(body, [(exc.reason, str(exc), "Warning")])
                return
        patch.update(live.unwritten)
        notes += live.unposted
        engine = live.engine

        # 2. events
        inbox = status.get("inbox") or {}
        events = [await self._inbox_event(body, raw) for raw in inbox.values()]
        events.sort(key=lambda e: (e.finished_at or 0.0, e.id))
        before = engine.state.events
        for event in events + extra:
            engine.handle(event)
        if engine.state.events != before:
            live.version += 1
        if inbox:
            patch["inbox"] = {eid: None for eid in inbox}
        notes += self._notes_from_records(engine.drain_records())

        # 3. lifecycle
        started = parse_time(status.get("startedAt")) or now
        terminal: Phase | None = None
        error: dict[str, Any] | None = None
        if spec.get("cancel"):
            terminal = Phase.CANCELLED
            error = {"type": "Cancelled", "message": "cancelled by spec.cancel", "step": None}
        elif spec.get("timeoutSeconds") and (now - started).total_seconds() > int(spec["timeoutSeconds"]):
            terminal = Phase.FAILED
            error = {"type": "DeadlineExceeded", "step": None,
                     "message": f"execution exceeded spec.timeoutSeconds={spec['timeoutSeconds']}"}
        elif engine.finished:
            terminal = Phase.SUCCEEDED if engine.state.status == "succeeded" else Phase.FAILED
            error = engine.state.error
        suspended = bool(spec.get("suspend")) and terminal is None

        # commands: outstanding ones in the engine, each assigned once
        current = status.get("commands") or {}
        desired: dict[str, dict[str, Any]] = {}
        new_jobs: list[tuple[str, Command]] = []
        if terminal is None:
            executor = spec.get("executor") or self.settings.executor
            for command in engine.pending_commands():
                record = dict(current.get(command.id) or await self._record(body, command, executor, now))
                if not suspended:
                    self._assign(body, record, command, now, new_jobs)
                desired[command.id] = record
        commands_patch: dict[str, dict[str, Any] | None] = {cid: None for cid in current if cid not in desired}
        commands_patch.update({cid: rec for cid, rec in desired.items() if current.get(cid) != rec})
        if commands_patch:
            patch["commands"] = commands_patch

        # state and summaries
        if live.version != live.persisted:
            live.seq += 1
            patch["state"] = await _statestore.save(self.client, body, engine.snapshot(), seq=live.seq,
                                                   inline_limit=self.settings.state_inline_bytes)
            patch["eventsProcessed"] = engine.state.events
            patch.update(self._summaries(engine))
        new_phase = terminal or (Phase.SUSPENDED if suspended else Phase.RUNNING)
        if phase != str(new_phase):
            patch["phase"] = str(new_phase)
            patch["conditions"] = [_condition(new_phase, error, now)]
            if new_phase == Phase.SUSPENDED:
                notes.append((Reason.SUSPENDED, "suspended: no new commands until spec.suspend is false", "Normal"))
            elif new_phase == Phase.RUNNING and phase == str(Phase.SUSPENDED):
                notes.append((Reason.RESUMED, "resumed", "Normal"))
        if terminal is not None:
            patch.update(await self._finish(body, engine, terminal, error, started, now, notes))

        if not patch:
            return
        await self._write(body, patch)
        live.persisted = live.version
        live.unwritten, live.unposted = {}, []

        # 5. side effects, after the write landed
        for name, command in new_jobs:
            await self._create_job(body, name, command)
        if terminal in (Phase.CANCELLED, Phase.FAILED):
            await self._delete_jobs(body)
        if terminal is not None:
            self.live.pop(uid, None)
        await self._post(body, notes)

    # -- starting and restoring --------------------------------------------------------------------
    async def _load_or_start(self, body: dict[str, Any], now: dt.datetime) -> Live:
        meta, status = body["metadata"], body.get("status") or {}
        pinned = status.get("playbook") or {}
        if status.get("state") and pinned.get("blob"):
            source = await get_blob(self.client, meta["namespace"], pinned["blob"])
            playbook = validate_document(source, file=f"execution {meta['name']}").playbook
            snapshot = await _statestore.load(self.client, body, status["state"])
            engine = Engine.restore(playbook, snapshot, keep_commands=True)
            live = Live(engine=engine, playbook=playbook, seq=int(status["state"].get("seq", 0)))
            live.persisted = live.version
            self.live[meta["uid"]] = live
            log.info("execution %s/%s: resumed from status (seq %s)", meta["namespace"], meta["name"], live.seq)
            return live
        parsed_body, origin, version = await self._resolve(body)
        try:
            parsed = validate_document(parsed_body, file=origin)
        except PlaybookError as exc:
            problems = getattr(exc, "problems", [])
            text = "; ".join(_problem_text(p) for p in problems if p.severity == "error") or str(exc)
            raise ResolveError(Reason.PLAYBOOK_INVALID, f"{origin} is invalid: {text}") from None
        ref = await put_blob(self.client, meta["namespace"], f"{meta['name']}-playbook", parsed.body,
                             owner=body, kind_label="playbook")
        pinned = {"name": origin, "blob": ref, **version}
        engine = Engine(parsed.playbook, execution_id=meta["uid"], workload=(body.get("spec") or {}).get("workload"),
                        keep_commands=True)
        engine.start()
        live = Live(engine=engine, playbook=parsed.playbook, version=1)
        live.unwritten = {
            "playbook": pinned,
            "inbox": {},  # workers add entries under it with JSON patch `add`, which needs the parent
            "startedAt": rfc3339(now),
            "observedGeneration": meta.get("generation"),
        }
        live.unposted = [(Reason.STARTED, f"started {origin}", "Normal")]
        self.live[meta["uid"]] = live
        return live

    async def _resolve(self, body: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, Any]]:
        """The playbook document to run, a name for it in messages, and the version pinned."""
        meta, spec = body["metadata"], body.get("spec") or {}
        if spec.get("playbook"):
            inline = dict(spec["playbook"])
            return ({"apiVersion": API_VERSION, "kind": "Playbook", "metadata": {"name": meta["name"]},
                     "spec": inline}, f"inline playbook of execution {meta['name']}", {})
        ref = (spec.get("playbookRef") or {}).get("name")
        if not ref:
            raise ResolveError(Reason.PLAYBOOK_NOT_FOUND, "spec needs playbookRef.name or an inline spec.playbook")
        try:
            obj = await self.client.get_object(PLAYBOOKS, meta["namespace"], ref)
        except NotFound:
            raise ResolveError(Reason.PLAYBOOK_NOT_FOUND,
                               f"playbook '{ref}' not found in namespace '{meta['namespace']}'; "
                               f"apply it first (noetl manifest FILE | kubectl apply -f -)") from None
        version = {"uid": obj["metadata"].get("uid"), "generation": obj["metadata"].get("generation")}
        return obj, f"playbook {ref}", version

    def _failed_to_resolve(self, exc: ResolveError, now: dt.datetime) -> dict[str, Any]:
        error = {"type": str(exc.reason), "message": str(exc), "step": None}
        return {"phase": str(Phase.FAILED), "error": error, "finishedAt": rfc3339(now), "startedAt": rfc3339(now),
                "duration": "0s", "conditions": [_condition(Phase.FAILED, error, now, reason=exc.reason)]}

    # -- commands ----------------------------------------------------------------------------------
    async def _record(self, body: dict[str, Any], command: Command, executor: str, now: dt.datetime) -> dict[str, Any]:
        data = command.model_dump(mode="json")
        record: dict[str, Any] = {"executor": executor, "createdAt": rfc3339(now)}
        if len(json.dumps(data)) > INLINE_LIMIT_BYTES:
            suffix = hashlib.sha256(command.id.encode()).hexdigest()[:12]
            record["commandRef"] = await put_blob(self.client, body["metadata"]["namespace"],
                                                  f"{body['metadata']['name']}-cmd-{suffix}", data, owner=body,
                                                  kind_label="command")
        else:
            record["command"] = data
        return record

    def _assign(self, body: dict[str, Any], record: dict[str, Any], command: Command, now: dt.datetime,
                new_jobs: list[tuple[str, Command]]) -> None:
        if record.get("executor") == "job":
            if not record.get("job"):
                record["job"] = job_name(body["metadata"]["name"], command.id)
                record["assignedAt"] = rfc3339(now)
                new_jobs.append((record["job"], command))
            return
        worker = record.get("worker")
        if worker and self.workers.alive(worker):
            return
        picked = self.workers.pick()
        if picked != worker:
            record["worker"] = picked
            record["assignedAt"] = rfc3339(now) if picked else None

    async def _inbox_event(self, body: dict[str, Any], raw: dict[str, Any]) -> Event:
        if "eventRef" in raw:
            raw = await get_blob(self.client, body["metadata"]["namespace"], raw["eventRef"])
        return Event.model_validate(raw)

    # -- Jobs ----------------------------------------------------------------------------------------
    def job_manifest(self, body: dict[str, Any], name: str, command: Command) -> dict[str, Any]:
        meta = body["metadata"]
        labels = {LABEL_EXECUTION: meta["name"], LABEL_COMPONENT: "job", LABEL_PART_OF: "noetl"}
        deadline = int((command.timeout or 300) + command.delay + 120)
        env = [
            {"name": "NOETL_COMMAND", "value": command.model_dump_json()},
            {"name": "NOETL_EXECUTION", "value": f"{meta['namespace']}/{meta['name']}"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ]
        return {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": meta["namespace"], "labels": labels,
                         "annotations": {"noetl.io/command-id": command.id},
                         "ownerReferences": [owner_reference(body)]},
            "spec": {
                "backoffLimit": 0,  # retries are the playbook's business (retry rules)
                "activeDeadlineSeconds": deadline,
                "ttlSecondsAfterFinished": self.settings.job_ttl_seconds,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "serviceAccountName": self.settings.job_service_account,
                        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{
                            "name": "command", "image": self.settings.image,
                            "imagePullPolicy": self.settings.image_pull_policy,
                            "command": ["noetl", "worker", "--job"], "env": env,
                            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                "capabilities": {"drop": ["ALL"]}},
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }],
                        # the root filesystem is read-only; python children and tools need a /tmp
                        "volumes": [{"name": "tmp", "emptyDir": {}}],
                    },
                },
            },
        }

    async def _create_job(self, body: dict[str, Any], name: str, command: Command) -> None:
        try:
            await self.client.create_job(body["metadata"]["namespace"], self.job_manifest(body, name, command))
        except Conflict:
            pass  # created by an earlier round that crashed before recording it: same name, same command

    async def _delete_jobs(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        jobs, _ = await self.client.list_jobs(meta["namespace"], label_selector=f"{LABEL_EXECUTION}={meta['name']}")
        for job in jobs:
            if not _job_finished(job):
                await self.client.delete_job(meta["namespace"], job["metadata"]["name"])

    async def check_jobs(self, uid: str, now: dt.datetime) -> None:
        """Turn Jobs that failed or vanished without reporting into failed calls (retry rules apply)."""
        body = self.bodies.get(uid)
        if body is None:
            return
        status = body.get("status") or {}
        job_records = {cid: rec for cid, rec in (status.get("commands") or {}).items() if rec.get("job")}
        if not job_records:
            return
        meta = body["metadata"]
        jobs, _ = await self.client.list_jobs(meta["namespace"], label_selector=f"{LABEL_EXECUTION}={meta['name']}")
        by_name = {j["metadata"]["name"]: j for j in jobs}
        inbox = status.get("inbox") or {}
        made: list[Event] = []
        for cid, rec in job_records.items():
            if f"{cid}:done" in inbox:
                continue
            job = by_name.get(rec["job"])
            command = Command.model_validate(rec["command"]) if "command" in rec else None
            if command is None:
                command = Command.model_validate(await get_blob(self.client, meta["namespace"], rec["commandRef"]))
            if job is None:
                assigned = parse_time(rec.get("assignedAt")) or now
                if (now - assigned).total_seconds() > self.settings.job_lost_grace:
                    made.append(Event.done(command, error={"type": "JobLost", "status": None,
                                                           "message": f"Job {rec['job']} disappeared before "
                                                                      "reporting its result"}))
            elif _job_failed(job):
                made.append(Event.done(command, error={"type": "JobFailed", "status": None,
                                                       "message": f"Job {rec['job']} failed without reporting: "
                                                                  f"{_job_failure_message(job)}"}))
            elif _job_finished(job):
                done_at = parse_time((job.get("status") or {}).get("completionTime")) or now
                if (now - done_at).total_seconds() > self.settings.job_lost_grace:
                    made.append(Event.done(command, error={"type": "JobLost", "status": None,
                                                           "message": f"Job {rec['job']} completed but its "
                                                                      "result never arrived"}))
        if made:
            await self.reconcile(uid, made)

    # -- finishing -----------------------------------------------------------------------------------
    async def _finish(self, body: dict[str, Any], engine: Engine, terminal: Phase, error: dict[str, Any] | None,
                      started: dt.datetime, now: dt.datetime, notes: list[tuple[Reason, str, str]]) -> dict[str, Any]:
        out: dict[str, Any] = {"finishedAt": rfc3339(now), "duration": human_duration((now - started).total_seconds())}
        if terminal == Phase.SUCCEEDED:
            result = engine.state.result
            if len(json.dumps(result, default=str)) > RESULT_INLINE_LIMIT_BYTES:
                meta = body["metadata"]
                out["resultRef"] = await put_blob(self.client, meta["namespace"], f"{meta['name']}-result", result,
                                                  owner=body, kind_label="result")
                out["result"] = None
            else:
                out["result"] = result
            notes.append((Reason.SUCCEEDED, f"succeeded in {out['duration']}", "Normal"))
        else:
            out["error"] = error
            reason = Reason.CANCELLED if terminal == Phase.CANCELLED else (
                Reason.DEADLINE_EXCEEDED if (error or {}).get("type") == "DeadlineExceeded" else Reason.FAILED)
            detail = f"{(error or {}).get('type')}: {(error or {}).get('message')}"
            if (error or {}).get("step"):
                detail = f"step '{error['step']}' {detail}"  # type: ignore[index]
            notes.append((reason, detail, "Normal" if terminal == Phase.CANCELLED else "Warning"))
        return out

    def _summaries(self, engine: Engine) -> dict[str, Any]:
        steps = {}
        done = 0
        for name, st in engine.state.steps.items():
            entry: dict[str, Any] = {"status": st.status, "runs": st.runs, "calls": st.calls}
            if st.items_total:
                entry["items"] = f"{st.items_done}/{st.items_total}"
            steps[name] = entry
            if st.status in ("succeeded", "failed", "skipped"):
                done += 1
        out: dict[str, Any] = {"steps": steps, "progress": f"{done}/{len(steps)}"}
        if engine.state.warnings:
            out["warnings"] = engine.state.warnings[-20:]
        return out

    def _notes_from_records(self, records: list[dict[str, Any]]) -> list[tuple[Reason, str, str]]:
        notes: list[tuple[Reason, str, str]] = []
        for r in records:
            if len(notes) >= MAX_EVENTS_PER_ROUND:
                break
            if r["name"] == "step.exit" and r.get("error"):
                err = r["error"]
                notes.append((Reason.STEP_FAILED, f"step '{r['step']}' failed: {err.get('type')}: "
                                                  f"{str(err.get('message'))[:300]}", "Warning"))
            elif r["name"] == "call.done" and "retry" in r:
                notes.append((Reason.RETRYING, f"step '{r['step']}': retry attempt {r['retry']} in "
                                               f"{r['delay']:.1f}s", "Normal"))
        return notes

    # -- API writes ----------------------------------------------------------------------------------
    async def _write(self, body: dict[str, Any], status_patch: dict[str, Any]) -> None:
        meta = body["metadata"]
        updated = await self.client.json_patch_status(EXECUTIONS, meta["namespace"], meta["name"],
                                                      status_operations(body, status_patch),
                                                      resource_version=meta.get("resourceVersion"))
        self.bodies[meta["uid"]] = updated

    async def _post(self, body: dict[str, Any], notes: list[tuple[Reason, str, str]]) -> None:
        for reason, message, kind in notes:
            try:
                await self.client.post_event(body, reason=str(reason), message=message, type=kind)
            except Exception as exc:  # noqa: BLE001 - an Event is a courtesy; never fail a round on it
                log.warning("could not post event %s: %s", reason, exc)


#: Status fields that are maps of independent entries: patched entry by entry, never replaced whole
#: (workers add inbox entries concurrently; the resourceVersion guard makes that safe either way).
_ENTRY_MAPS = ("commands", "inbox")


def status_operations(body: dict[str, Any], status_patch: dict[str, Any]) -> list[dict[str, Any]]:
    """JSON patch operations (RFC 6902) that apply ``status_patch`` to ``body``'s status.

    ``status_patch`` is written like a merge patch (``None`` deletes), but a merge patch also drops
    every ``null`` nested inside new values (a command's args, a result), so it is turned into
    ``add``/``remove`` operations, which store values exactly. ``remove`` is only issued for keys
    present in ``body``; the write is guarded by its resourceVersion, so they are still there.
    """
    status = body.get("status")
    ops: list[dict[str, Any]] = []
    if not isinstance(status, dict):
        ops.append({"op": "add", "path": "/status", "value": {}})
        status = {}
    for key, value in status_patch.items():
        path = json_pointer("status", key)
        if key in _ENTRY_MAPS and isinstance(value, dict):
            current = status.get(key)
            if not isinstance(current, dict):
                ops.append({"op": "add", "path": path, "value": {}})
                current = {}
            for entry, entry_value in value.items():
                entry_path = json_pointer("status", key, entry)
                if entry_value is None:
                    if entry in current:
                        ops.append({"op": "remove", "path": entry_path})
                else:
                    ops.append({"op": "add", "path": entry_path, "value": entry_value})
        elif value is None:
            if key in status:
                ops.append({"op": "remove", "path": path})
        else:
            ops.append({"op": "add", "path": path, "value": value})
    return ops


def _rv(body: dict[str, Any]) -> int:
    try:
        return int(body["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


def _condition(phase: Phase, error: dict[str, Any] | None, now: dt.datetime, reason: Reason | None = None) -> dict[str, Any]:
    finished = phase.finished
    message = str(phase)
    if error:
        message = f"{error.get('type')}: {error.get('message')}"
    return {"type": "Finished", "status": "True" if finished else "False",
            "reason": str(reason) if reason else str(phase), "message": message[:1024],
            "lastTransitionTime": rfc3339(now)}


def _problem_text(problem: Any) -> str:
    parts = []
    if problem.step:
        parts.append(f"step '{problem.step}'")
    if problem.field:
        parts.append(problem.field)
    parts.append(problem.message)
    return ": ".join(parts)


def _job_failed(job: dict[str, Any]) -> bool:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return True
    return False


def _job_finished(job: dict[str, Any]) -> bool:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return True
    return False


def _job_failure_message(job: dict[str, Any]) -> str:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed":
            return f"{cond.get('reason')}: {cond.get('message')}"
    return "unknown"

