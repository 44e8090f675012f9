"""The worker's pieces that need no cluster: the inbox writer's batching, CLI wiring, JSON logs."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import subprocess
import sys
import types

import pytest

import noetl.k8s
from noetl.k8s import ApiError, InboxWriter, NotFound, add_worker_command
from noetl.logs import configure_json_logging
from tests.unit.k8s.fakes import FakeClient


def test_inbox_writer_batches_what_piles_up_and_creates_the_inbox() -> None:
    client = FakeClient()
    client.patch_delay = 0.02
    writer = InboxWriter(client, "ns", "run")  # type: ignore[arg-type]

    async def go() -> list[bool]:
        return await asyncio.gather(*(writer.report(f"c/{i}:done", {"id": f"c/{i}:done", "response": None})
                                      for i in range(50)))
    assert asyncio.run(go()) == [True] * 50
    assert client.inbox is not None and len(client.inbox) == 50
    assert client.inbox["c/7:done"] == {"id": "c/7:done", "response": None}
    assert len(client.patches) < 10  # one in flight, the rest batched behind it
    assert client.calls.count("patch_status") == 1  # the missing inbox was created once


def test_inbox_writer_retries_transient_errors_and_gives_up_on_a_gone_execution() -> None:
    client = FakeClient()
    client.inbox = {}
    client.fail_next = [ApiError(503, "ServiceUnavailable", "busy")]
    writer = InboxWriter(client, "ns", "run")  # type: ignore[arg-type]
    assert asyncio.run(writer.report("a:done", {"id": "a:done"})) is True
    client.fail_next = [NotFound(404, "NotFound", "gone")]
    assert asyncio.run(InboxWriter(client, "ns", "run").report("b:done", {}))is False  # type: ignore[arg-type]
    assert set(client.inbox) == {"a:done"}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_worker_command(parser.add_subparsers(dest="command"))
    return parser.parse_args(["worker", *argv])


def test_cli_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse([])
    assert (args.namespaces, args.concurrency, args.job, args.command_file) == (None, 8, False, None)
    args = parse(["--namespace", "a", "--namespace", "b", "--concurrency", "3", "--job", "--command-file", "c.json"])
    assert (args.namespaces, args.concurrency, args.job, args.command_file) == (["a", "b"], 3, True, "c.json")
    monkeypatch.setenv("NOETL_NAMESPACE", "x,y")
    monkeypatch.setenv("NOETL_CONCURRENCY", "5")
    monkeypatch.setenv("NOETL_JOB", "true")
    args = parse([])
    assert (args.namespaces, args.concurrency, args.job) == (["x", "y"], 5, True)


def test_json_logs_carry_execution_and_command() -> None:
    stream = io.StringIO()
    configure_json_logging(logging.INFO, stream)
    try:
        logging.getLogger("noetl.k8s.worker").info("step %s done", "fetch", extra={"execution": "ns/r", "command": "c/1"})
    finally:
        for handler in list(logging.getLogger("noetl").handlers):
            logging.getLogger("noetl").removeHandler(handler)
        logging.getLogger("noetl").propagate = True
    line = json.loads(stream.getvalue())
    assert line["msg"] == "step fetch done" and line["execution"] == "ns/r" and line["command"] == "c/1"
    assert line["level"] == "info" and line["ts"].endswith("Z")


def test_exported_names_exist_and_are_listed() -> None:
    exported = set(noetl.k8s.__all__)
    assert all(hasattr(noetl.k8s, name) for name in exported)
    assert set(noetl.k8s._LAZY) <= exported
    public = {n for n, v in vars(noetl.k8s).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public - {"annotations", "TYPE_CHECKING", "Any"} == exported


def test_importing_the_package_or_the_cli_wiring_does_not_load_the_kubernetes_client() -> None:
    code = ("import sys, noetl.k8s\nfrom noetl.k8s import add_worker_command, Phase, EXECUTIONS\n"
            "assert 'kubernetes' not in sys.modules, 'loaded'\nnoetl.k8s.KubeClient\nassert 'kubernetes' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
