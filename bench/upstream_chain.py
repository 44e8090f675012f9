#!/usr/bin/env python3
"""Our embedded runner vs upstream NoETL's CLI on the same N-step HTTP chain (default 200 steps).

Both sides run as subprocesses against one local threaded HTTP server (127.0.0.1, random port).
The server counts requests; a run whose count differs from the number of steps is a failure, not a
measurement. Prints per-run wall times, medians and the ratio upstream/ours (> 1 means ours is faster).

    python bench/upstream_chain.py [--steps 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

from _common import (Completed, CountingServer, fail, machine, median, ours_command, ours_version,
                     run_timed, tail)

UPSTREAM_VERSION = "5.3.2"
DEFAULT_VENV = Path.home() / ".cache" / "noetl-bench" / f"upstream-{UPSTREAM_VERSION}"


def step_names(steps: int) -> list[str]:
    return ["start"] + [f"s{i:04d}" for i in range(1, steps)]


def chain_ours(steps: int) -> str:
    """Our dialect (DESIGN §3): `tool.endpoint`, `next: <step name>`."""
    names = step_names(steps)
    out = ["apiVersion: noetl.io/v2", "kind: Playbook", "metadata:",
           f"  name: http_chain_{steps}", f"  path: bench/http_chain_{steps}",
           "workload:", "  base_url: http://127.0.0.1:1", "workflow:"]
    for i, name in enumerate(names):
        out += [f"  - step: {name}", "    tool:", "      kind: http", "      method: GET",
                f'      endpoint: "{{{{ workload.base_url }}}}/item/{i + 1}"']
        if i + 1 < len(names):
            out.append(f"    next: {names[i + 1]}")
    return "\n".join(out) + "\n"


def chain_upstream(steps: int) -> str:
    """Upstream 5.3.2 dialect: `tool.url` (`endpoint` is a parse error: missing field `url`) and
    `next: {arcs: [{step: X}]}` (a bare `next: X` parses but silently ends the run after that step)."""
    names = step_names(steps)
    out = ["apiVersion: noetl.io/v2", "kind: Playbook", "metadata:",
           f"  name: http_chain_{steps}", f"  path: bench/http_chain_{steps}",
           "workload:", "  base_url: http://127.0.0.1:1", "workflow:"]
    for i, name in enumerate(names):
        out += [f"  - step: {name}", "    tool:", "      kind: http", "      method: GET",
                f'      url: "{{{{ workload.base_url }}}}/item/{i + 1}"']
        if i + 1 < len(names):
            out += ["    next:", "      arcs:", f"        - step: {names[i + 1]}"]
    return "\n".join(out) + "\n"


def ensure_upstream(venv_dir: Path) -> Path:
    """Create the upstream virtualenv and install noetl==5.3.2 into it, unless it is already there."""
    exe = venv_dir / "bin" / "noetl"
    if exe.exists():
        # -I: neither the cwd nor PYTHONPATH on sys.path (from the repo root, `noetl` would be ours)
        probe = subprocess.run([str(venv_dir / "bin" / "python"), "-I", "-c",
                                "import noetl; print(noetl.__version__)"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == UPSTREAM_VERSION:
            return exe
    print(f"installing noetl=={UPSTREAM_VERSION} into {venv_dir} ...", file=sys.stderr)
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    pip = subprocess.run([str(venv_dir / "bin" / "python"), "-m", "pip", "install", "-q",
                          f"noetl=={UPSTREAM_VERSION}"], capture_output=True, text=True)
    if pip.returncode != 0 or not exe.exists():
        fail(f"pip install noetl=={UPSTREAM_VERSION} failed", tail(pip.stdout + pip.stderr))
    return exe


def check_upstream(done: Completed, server: CountingServer, steps: int) -> None:
    if done.returncode != 0:
        fail(f"upstream exited {done.returncode}", tail(done.stderr + done.stdout))
    if server.count != steps:
        fail(f"upstream made {server.count} requests, expected {steps}", tail(done.stderr + done.stdout))


def check_ours(done: Completed, server: CountingServer, steps: int) -> None:
    if done.returncode != 0:
        fail(f"ours exited {done.returncode}", tail(done.stderr + done.stdout))
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        report = None
    if not isinstance(report, dict):
        fail("ours did not print one JSON object on stdout", tail(done.stdout + done.stderr))
    if report.get("status") != "succeeded":
        fail(f"ours finished with status {report.get('status')!r}", json.dumps(report.get("error")))
    if server.count != steps:
        fail(f"ours made {server.count} requests, expected {steps}", tail(done.stderr))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="steps in the chain (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (default 3)")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"upstream virtualenv (default {DEFAULT_VENV})")
    parser.add_argument("--ours", default=None,
                        help="command that runs our CLI (default: this Python + the working tree's noetl.cli)")
    parser.add_argument("--keep", type=Path, default=None, help="write the generated playbooks into this folder")
    opts = parser.parse_args()
    if opts.steps < 1 or opts.repeat < 1:
        parser.error("--steps and --repeat must be >= 1")

    upstream = ensure_upstream(opts.venv)
    ours_prefix, ours_env = ours_command(opts.ours)
    up_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    cli_version = subprocess.run([str(upstream), "--version"], capture_output=True, text=True,
                                 env=up_env).stdout.strip()
    print(f"machine:  {machine()}")
    print(f"upstream: noetl {UPSTREAM_VERSION} from PyPI (CLI reports: {cli_version or '?'}), {upstream}")
    print(f"ours:     noetl {ours_version(ours_prefix, ours_env)}, {' '.join(ours_prefix[:2])} ...")
    print(f"chain:    {opts.steps} sequential http GET steps, {opts.repeat} runs per side, alternating; "
          f"then a 1-step chain as often, to separate startup from per-step cost")

    with tempfile.TemporaryDirectory(prefix="noetl-bench-") as tmp:
        folder = (opts.keep or Path(tmp)).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[tuple[str, int], Path] = {}
        for steps in sorted({1, opts.steps}):
            files["upstream", steps] = folder / f"upstream_chain_{steps}.yaml"
            files["ours", steps] = folder / f"ours_chain_{steps}.yaml"
            files["upstream", steps].write_text(chain_upstream(steps))
            files["ours", steps].write_text(chain_ours(steps))

        times: dict[tuple[str, int], list[float]] = {key: [] for key in files}
        cpus: dict[tuple[str, int], list[float]] = {key: [] for key in files}
        with CountingServer() as server:
            url = server.base_url
            print(f"server:   {url}")
            print(f"upstream command: noetl run upstream_chain_{opts.steps}.yaml -r local --set base_url={url}")
            print(f"ours command:     noetl run ours_chain_{opts.steps}.yaml --set base_url={url} --output json")

            def measure(side: str, steps: int, label: str) -> None:
                server.reset()
                if side == "upstream":
                    argv = [str(upstream), "run", str(files[side, steps]), "-r", "local", "--set", f"base_url={url}"]
                    done = run_timed(argv, env=up_env, cwd=folder)
                    check_upstream(done, server, steps)
                else:
                    argv = [*ours_prefix, "run", str(files[side, steps]), "--set", f"base_url={url}",
                            "--output", "json"]
                    done = run_timed(argv, env=ours_env, cwd=folder)
                    check_ours(done, server, steps)
                times[side, steps].append(done.wall)
                cpus[side, steps].append(done.cpu)
                print(f"{label}: {side:8} {done.wall:8.3f} s wall, {done.cpu:6.3f} s CPU  "
                      f"({server.count} requests, {server.connections} connections)")

            for run in range(1, opts.repeat + 1):
                for side in ("upstream", "ours"):
                    measure(side, opts.steps, f"run {run}")
            if opts.steps > 1:
                for run in range(1, opts.repeat + 1):
                    for side in ("upstream", "ours"):
                        measure(side, 1, f"1-step run {run}")

    up_med, our_med = median(times["upstream", opts.steps]), median(times["ours", opts.steps])
    print(f"median wall time ({opts.steps} steps): upstream {up_med:.3f} s, ours {our_med:.3f} s")
    up_cpu, our_cpu = median(cpus["upstream", opts.steps]), median(cpus["ours", opts.steps])
    print(f"median CPU time  ({opts.steps} steps): upstream {up_cpu:.3f} s, ours {our_cpu:.3f} s")
    if opts.steps > 1:
        up_one, our_one = median(times["upstream", 1]), median(times["ours", 1])
        up_step = (up_med - up_one) / (opts.steps - 1) * 1000
        our_step = (our_med - our_one) / (opts.steps - 1) * 1000
        print(f"median wall time (1 step, ~startup): upstream {up_one:.3f} s, ours {our_one:.3f} s")
        print(f"marginal wall time per step:         upstream {up_step:.2f} ms, ours {our_step:.2f} ms")
        up_cpu1, our_cpu1 = median(cpus["upstream", 1]), median(cpus["ours", 1])
        print(f"median CPU time (1 step):            upstream {up_cpu1:.3f} s, ours {our_cpu1:.3f} s")
    print(f"ratio upstream/ours ({opts.steps} steps): {up_med / our_med:.2f} "
          f"({'ours faster' if our_med < up_med else 'upstream faster'}); "
          f"CPU ratio {up_cpu / our_cpu:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
