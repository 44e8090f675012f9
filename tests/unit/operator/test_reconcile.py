"""The operator's reconcile rounds, driven against an in-memory API (the seam) and real tools.

What is checked here is the bookkeeping: one guarded write per round, conflicts redone without
losing events, restarts resuming from status, duplicates ignored, lifecycle fields honoured. The
same flows run against a real apiserver in tests/integration/operator.
"""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any, Callable


from noetl.engine import Command, Event
from noetl.worker import WorkerRuntime, execute
from noetl_operator import ExecutionController, Settings
from noetl_operator._workers import WorkerPool
from tests.unit.operator.fake_kube import FakeKube

NS = "ns"
FINISHED = ("Succeeded", "Failed", "Cancelled")


def lease(name: str) -> dict[str, Any]:
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"metadata": {"name": f"noetl-worker-{name}"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 15, "renewTime": now}}


def setup(playbook: str, *, executor: str = "worker", workload: dict[str, Any] | None = None,
          **spec: Any) -> tuple[FakeKube, ExecutionController]:
    fake = FakeKube()
    fake.leases = [lease("w1")]
    body = textwrap.dedent(playbook)
    import yaml

    fake.create("playbooks", NS, {"apiVersion": "noetl.io/v2", "kind": "Playbook", "metadata": {"name": "pb"},
                                  "spec": yaml.safe_load(body)})
    fake.create("executions", NS, {"apiVersion": "noetl.io/v2", "kind": "Execution", "metadata": {"name": "ex"},
                                   "spec": {"playbookRef": {"name": "pb"}, "executor": executor,
                                            "workload": workload, **spec}})
    controller = ExecutionController(fake, Settings(executor=executor), WorkerPool(fake, NS))
    return fake, controller


async def run_until_done(fake: FakeKube, controller: ExecutionController, *,
                         respond: Callable[[Command], Event] | None = None, rounds: int = 2000,
                         duplicate: bool = False) -> dict[str, Any]:
    """Play the worker: answer every assigned command once, feeding events back through the inbox."""
    await controller.workers.refresh()
    answered: set[str] = set()
    executed: list[str] = []
    async with WorkerRuntime.create() as runtime:
        await controller.on_event("ADDED", fake.obj("executions", NS, "ex"))
        for _ in range(rounds):
            obj = fake.obj("executions", NS, "ex")
            status = obj.get("status") or {}
            if status.get("phase") in FINISHED:
                obj["_executed"] = executed
                return obj
            for cid, record in (status.get("commands") or {}).items():
                if cid in answered or not (record.get("worker") or record.get("job")):
                    continue
                command = Command.model_validate(record["command"])
                event = respond(command) if respond else await execute(command, runtime)
                executed.append(cid)
                fake.add_inbox_event(NS, "ex", event.model_dump(mode="json"))
                if duplicate:
                    fake.add_inbox_event(NS, "ex", event.model_dump(mode="json"))
                answered.add(cid)
            await controller.on_event("MODIFIED", fake.obj("executions", NS, "ex"))
    raise AssertionError(f"execution did not finish: {fake.obj('executions', NS, 'ex').get('status')}")


LOOP = """
    workload: {items: [1, 2, 3, 4, 5]}
    workflow:
    - step: start
      loop: {in: "{{ workload.items }}", iterator: n, mode: parallel, max_in_flight: 2}
      tool: {kind: python, code: "def main(n): return n * n"}
      args: {n: "{{ n }}"}
      next: end
    - step: end
      args: {total: "{{ start.results | sum }}"}
    """


def test_execution_runs_to_the_same_result_as_the_embedded_runner() -> None:
    fake, controller = setup(LOOP)
    obj = asyncio.run(run_until_done(fake, controller))
    status = obj["status"]
    assert status["phase"] == "Succeeded"
    assert status["result"] == {"total": 55}
    assert status["steps"]["start"] == {"status": "succeeded", "runs": 1, "calls": 5, "items": "5/5"}
    assert status["progress"] == "2/2"
    assert status.get("commands") in (None, {}) and status.get("inbox") in (None, {})
    assert sorted(obj["_executed"]) == sorted(set(obj["_executed"]))  # each command executed once
    assert [e["reason"] for e in fake.events] == ["Started", "Succeeded"]


def test_commands_are_assigned_to_live_workers_only() -> None:
    fake, controller = setup(LOOP)
    fake.leases = []
    asyncio.run(controller.workers.refresh())
    asyncio.run(controller.on_event("ADDED", fake.obj("executions", NS, "ex")))
    records = fake.obj("executions", NS, "ex")["status"]["commands"]
    assert len(records) == 2  # max_in_flight
    assert all(r.get("worker") is None for r in records.values())
    fake.leases = [lease("w7")]
    asyncio.run(controller.workers.refresh())
    asyncio.run(controller.reconcile(fake.obj("executions", NS, "ex")["metadata"]["uid"]))
    records = fake.obj("executions", NS, "ex")["status"]["commands"]
    assert {r["worker"] for r in records.values()} == {"w7"}


def test_duplicate_inbox_events_count_once() -> None:
    fake, controller = setup(LOOP)
    obj = asyncio.run(run_until_done(fake, controller, duplicate=True))
    assert obj["status"]["result"] == {"total": 55}
    assert obj["status"]["eventsProcessed"] == 6  # 5 items + end


def test_a_conflicting_write_is_redone_and_no_event_is_lost() -> None:
    fake, controller = setup(LOOP)
    injected = {"n": 0}

    def concurrent_writer(kind: str, ns: str, name: str) -> None:
        # Before some operator writes, a "worker" patches the object: the guarded write must fail
        # with 409 and be redone on the fresh object.
        if kind == "executions" and injected["n"] < 3:
            injected["n"] += 1
            obj = fake.objects[(kind, ns, name)]
            obj["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1000)

    fake.before_patch = concurrent_writer
    obj = asyncio.run(run_until_done(fake, controller))
    assert injected["n"] == 3
    assert obj["status"]["result"] == {"total": 55}


def test_a_new_operator_resumes_from_status_without_rerunning_anything() -> None:
    fake, controller = setup(LOOP)

    async def scenario() -> dict[str, Any]:
        await controller.workers.refresh()
        await controller.on_event("ADDED", fake.obj("executions", NS, "ex"))
        first = fake.obj("executions", NS, "ex")["status"]["commands"]
        async with WorkerRuntime.create() as runtime:
            for record in first.values():
                event = await execute(Command.model_validate(record["command"]), runtime)
                fake.add_inbox_event(NS, "ex", event.model_dump(mode="json"))
        # the operator process dies here: its memory is gone, only the API objects remain
        revived = ExecutionController(fake, Settings(), WorkerPool(fake, NS))
        return await run_until_done(fake, revived)

    obj = asyncio.run(scenario())
    assert obj["status"]["result"] == {"total": 55}
    assert obj["status"]["steps"]["start"]["calls"] == 5
    assert obj["status"]["eventsProcessed"] == 6


def test_cancel_stops_and_drops_commands() -> None:
    fake, controller = setup(LOOP)
    asyncio.run(controller.workers.refresh())
    asyncio.run(controller.on_event("ADDED", fake.obj("executions", NS, "ex")))
    fake.objects[("executions", NS, "ex")]["spec"]["cancel"] = True
    asyncio.run(controller.on_event("MODIFIED", fake.obj("executions", NS, "ex")))
    status = fake.obj("executions", NS, "ex")["status"]
    assert status["phase"] == "Cancelled"
    assert status.get("commands") in (None, {})
    assert status["error"]["type"] == "Cancelled"
    assert fake.events[-1]["reason"] == "Cancelled"


def test_suspend_holds_new_commands_and_resume_continues() -> None:
    fake, controller = setup(LOOP, suspend=True)
    asyncio.run(controller.workers.refresh())
    asyncio.run(controller.on_event("ADDED", fake.obj("executions", NS, "ex")))
    status = fake.obj("executions", NS, "ex")["status"]
    assert status["phase"] == "Suspended"
    assert all(r.get("worker") is None for r in status["commands"].values())
    fake.objects[("executions", NS, "ex")]["spec"]["suspend"] = False
    obj = asyncio.run(run_until_done(fake, controller))
    assert obj["status"]["phase"] == "Succeeded"
    assert [e["reason"] for e in fake.events][:3] == ["Started", "Suspended", "Resumed"]


def test_timeout_fails_with_deadline_exceeded() -> None:
    fake, controller = setup(LOOP, timeoutSeconds=1)
    asyncio.run(controller.workers.refresh())
    asyncio.run(controller.on_event("ADDED", fake.obj("executions", NS, "ex")))
    fake.objects[("executions", NS, "ex")]["status"]["startedAt"] = "2020-01-01T00:00:00Z"
    asyncio.run(controller.on_event("MODIFIED", fake.obj("executions", NS, "ex")))
    status = fake.obj("executions", NS, "ex")["status"]
    assert status["phase"] == "Failed"
    assert status["error"]["type"] == "DeadlineExceeded"
    assert status["conditions"][0]["reason"] == "Failed"


def test_job_executor_creates_one_job_per_command_with_deterministic_names() -> None:
    fake, controller = setup(LOOP, executor="job")
    asyncio.run(controller.on_event("ADDED", fake.obj("executions", NS, "ex")))
    jobs = fake.jobs_created
    assert len(jobs) == 2
    records = fake.obj("executions", NS, "ex")["status"]["commands"]
    assert sorted(r["job"] for r in records.values()) == sorted(j["metadata"]["name"] for j in jobs)
    pod = jobs[0]["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["noetl", "worker", "--job"]
    assert jobs[0]["metadata"]["ownerReferences"][0]["name"] == "ex"
    # the same round again creates nothing new
    asyncio.run(controller.on_event("MODIFIED", fake.obj("executions", NS, "ex")))
    assert len(fake.jobs_created) == 2


def test_a_failed_job_becomes_a_failed_call_that_retry_rules_retry() -> None:
    import datetime as dt

    fake, controller = setup("""
        workflow:
        - step: start
          tool: {kind: noop}
          case:
          - when: "{{ event.name == 'call.done' and error is defined and error.type == 'JobFailed' }}"
            then: {retry: {max_attempts: 2, initial_delay: 0}}
        """, executor="job")
    uid = fake.obj("executions", NS, "ex")["metadata"]["uid"]
    asyncio.run(controller.on_event("ADDED", fake.obj("executions", NS, "ex")))
    first = fake.jobs_created[0]["metadata"]["name"]
    fake.objects[("jobs", NS, first)]["status"] = {"conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "pod failed"}]}
    asyncio.run(controller.check_jobs(uid, dt.datetime.now(dt.timezone.utc)))
    status = fake.obj("executions", NS, "ex")["status"]
    assert len(fake.jobs_created) == 2  # the retry got its own Job
    assert [r["command"]["attempt"] for r in status["commands"].values()] == [2]


def test_ten_thousand_item_loop_keeps_the_execution_small() -> None:
    fake, controller = setup("""
        workflow:
        - step: start
          loop: {in: "{{ range(10000) | list }}", iterator: i, mode: parallel, max_in_flight: 64}
          args: {i: "{{ i }}"}
        """)

    def respond(command: Command) -> Event:
        return Event.done(command, response=command.args)

    biggest = {"size": 0}
    original = fake.patch_status

    async def measuring(*args: Any, **kwargs: Any) -> Any:
        out = await original(*args, **kwargs)
        biggest["size"] = max(biggest["size"], fake.size("executions", NS, "ex"))
        return out

    fake.patch_status = measuring  # type: ignore[method-assign]
    obj = asyncio.run(run_until_done(fake, controller, respond=respond, rounds=20000))
    assert obj["status"]["phase"] == "Succeeded"
    assert biggest["size"] < 256 * 1024, biggest


def test_nulls_inside_written_values_survive() -> None:
    # Regression: status was written with a JSON merge patch, which deletes every null at any
    # depth, so a command's `None` args and a result's null fields silently vanished.
    fake, controller = setup("""
        workflow:
        - step: start
          args: {keep: null, list: [null, 1]}
        """)
    obj = asyncio.run(run_until_done(fake, controller))
    assert obj["status"]["result"] == {"keep": None, "list": [None, 1]}


def test_status_operations_add_and_remove_entries_individually() -> None:
    from noetl_operator._executions import status_operations

    body = {"status": {"inbox": {"a/1": {}}, "phase": "Running"}}
    ops = status_operations(body, {"inbox": {"a/1": None, "gone": None}, "commands": {"c#1": {"x": None}},
                                   "phase": "Succeeded", "error": None})
    assert ops == [
        {"op": "remove", "path": "/status/inbox/a~11"},
        {"op": "add", "path": "/status/commands", "value": {}},
        {"op": "add", "path": "/status/commands/c#1", "value": {"x": None}},
        {"op": "add", "path": "/status/phase", "value": "Succeeded"},
    ]
