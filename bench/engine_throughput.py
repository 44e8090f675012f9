#!/usr/bin/env python3
"""Engine throughput and `noetl run` footprint on an N-item parallel loop of `noop` calls (default 10,000).

(a) engine: drives `noetl.engine.Engine` directly (no tools, no I/O): every command it issues is
    answered at once with `Event.done(command, response=command.args)`. Prints call.done events
    fed per second (and commands issued), best and median of --repeat runs.
(b) runner: `noetl run FILE --output json` as a subprocess under /usr/bin/time -v (or getrusage
    when that is missing): wall time and peak RSS, checked against the JSON report (target: < 200 MiB).

    python bench/engine_throughput.py [--items 10000] [--repeat 3] [--skip-engine] [--skip-run]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, fail, machine, median, ours_command, ours_version, tail

MIB = 1024 * 1024
TARGET_PEAK_MIB = 200


def playbook_text(items: int, max_in_flight: int) -> str:
    """One step `start`: a parallel loop over workload.items calling `noop` with args {x: item}."""
    lines = [
        "apiVersion: noetl.io/v2", "kind: Playbook", "metadata:",
        f"  name: noop_loop_{items}", f"  path: bench/noop_loop_{items}",
        "workload:", f"  items: {json.dumps(list(range(items)))}",
        "workflow:",
        "  - step: start",
        "    loop:",
        '      in: "{{ workload.items }}"',
        "      iterator: it",
        "      mode: parallel",
        f"      max_in_flight: {max_in_flight}",
        "    tool:", "      kind: noop",
        "    args:", '      x: "{{ it }}"',
    ]
    return "\n".join(lines) + "\n"


def drive_engine(path: Path, items: int) -> tuple[float, int, int, int]:
    """Run the engine to completion in this process.

    Returns (seconds, call.done events fed, commands issued, events the engine recorded itself).
    Like the local runner, records are drained after every call. Parsing the YAML is not timed;
    engine construction and start() are.
    """
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from noetl.dsl import load_playbook  # noqa: PLC0415 (imported late: measured code, working tree)
    from noetl.engine import Engine, Event  # noqa: PLC0415

    playbook = load_playbook(path).playbook
    fed = issued = recorded = 0
    gc.collect()  # start each run from a clean heap (earlier runs' garbage is not this run's cost)
    start = time.perf_counter()
    engine = Engine(playbook, execution_id="bench-engine", workload={})
    pending: deque[Any] = deque(engine.start())
    recorded += len(engine.drain_records())
    issued += len(pending)
    while pending:
        command = pending.popleft()
        new = engine.handle(Event.done(command, response=command.args))
        recorded += len(engine.drain_records())
        fed += 1
        issued += len(new)
        pending.extend(new)
    seconds = time.perf_counter() - start
    summary = engine.summary()
    if summary.get("status") != "succeeded" or fed != items:
        fail(f"engine finished {summary.get('status')!r} after {fed} call.done events for {items} items",
             json.dumps(summary.get("error")))
    return seconds, fed, issued, recorded


def run_cli(path: Path, ours: str | None) -> tuple[float, float, float, dict[str, Any]]:
    """`noetl run` as a subprocess; returns (wall seconds, CPU seconds, peak RSS MiB, JSON report)."""
    prefix, env = ours_command(ours)
    argv = [*prefix, "run", str(path), "--output", "json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    gnu_time = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
    if gnu_time:
        with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
            start = time.perf_counter()
            proc = subprocess.run([gnu_time, "-v", "-o", stats.name, *argv], capture_output=True, text=True, env=env)
            wall = time.perf_counter() - start
            text = Path(stats.name).read_text()
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
        if not found:
            fail("could not read peak RSS from /usr/bin/time -v", text)
        peak_mib = int(found.group(1)) / 1024
    else:  # ru_maxrss: the largest child waited for so far (KiB on Linux); fine, this is our biggest child
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode != 0:
        fail(f"noetl run exited {proc.returncode}", tail(proc.stderr + proc.stdout))
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        report = None
    if not isinstance(report, dict):
        fail("noetl run did not print one JSON object on stdout", tail(proc.stdout + proc.stderr))
    return wall, cpu, peak_mib, report


def check_report(report: dict[str, Any], items: int) -> None:
    if report.get("status") != "succeeded":
        fail(f"noetl run finished {report.get('status')!r}", json.dumps(report.get("error")))
    step = (report.get("steps") or {}).get("start") or {}
    if step.get("calls") != items:
        fail(f"step 'start' made {step.get('calls')} calls, expected {items}", json.dumps(step)[:2000])
    results = (report.get("result") or {}).get("results")
    if not isinstance(results, list) or len(results) != items:
        got = len(results) if isinstance(results, list) else results
        fail(f"loop result holds {got} item results, expected {items}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000, help="loop items (default 10000)")
    parser.add_argument("--max-in-flight", type=int, default=64, help="loop max_in_flight (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="engine runs (default 3); the CLI runs once per repeat too")
    parser.add_argument("--ours", default=None,
                        help="command that runs our CLI (default: this Python + the working tree's noetl.cli)")
    parser.add_argument("--skip-engine", action="store_true", help="skip (a), the in-process engine run")
    parser.add_argument("--skip-run", action="store_true", help="skip (b), the `noetl run` subprocess")
    opts = parser.parse_args()
    if opts.items < 1 or opts.repeat < 1:
        parser.error("--items and --repeat must be >= 1")

    prefix, env = ours_command(opts.ours)
    print(f"machine: {machine()}")
    print(f"ours:    noetl {ours_version(prefix, env)}")
    print(f"loop:    {opts.items} items, mode parallel, max_in_flight {opts.max_in_flight}, tool noop")

    with tempfile.TemporaryDirectory(prefix="noetl-bench-") as tmp:
        path = Path(tmp) / f"noop_loop_{opts.items}.yaml"
        path.write_text(playbook_text(opts.items, opts.max_in_flight))

        if not opts.skip_engine:
            rates: list[float] = []
            for run in range(1, opts.repeat + 1):
                seconds, fed, issued, recorded = drive_engine(path, opts.items)
                rates.append(fed / seconds)
                print(f"engine run {run}: {seconds:.3f} s, {fed} call.done fed, {issued} commands issued, "
                      f"{recorded} events recorded by the engine; {fed / seconds:,.0f} call.done/s, "
                      f"{(fed + recorded) / seconds:,.0f} events/s all kinds")
            print(f"engine: median {median(rates):,.0f} call.done events/s, best {max(rates):,.0f} "
                  f"({1e6 / median(rates):.1f} us per call.done, including issuing the next command)")

        if not opts.skip_run:
            walls: list[float] = []
            peaks: list[float] = []
            for run in range(1, opts.repeat + 1):
                wall, cpu, peak, report = run_cli(path, opts.ours)
                check_report(report, opts.items)
                walls.append(wall)
                peaks.append(peak)
                print(f"noetl run {run}: {wall:.3f} s wall, {cpu:.3f} s CPU, peak RSS {peak:.1f} MiB, "
                      f"{opts.items / wall:,.0f} items/s end to end")
            verdict = "under" if max(peaks) < TARGET_PEAK_MIB else "OVER"
            print(f"noetl run: median {median(walls):.3f} s wall, max peak RSS {max(peaks):.1f} MiB "
                  f"({verdict} the {TARGET_PEAK_MIB} MiB target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
