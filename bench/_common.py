"""Helpers shared by the benchmarks: a counting local HTTP server, subprocess runs, our CLI command.

Standard library only. Nothing here asserts figures: the benchmarks print what they measure.
"""

from __future__ import annotations

import http.server
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

REPO_ROOT = Path(__file__).resolve().parent.parent

_BODY = json.dumps({"id": 1, "ok": True, "value": "x"}).encode()


_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
             b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Keep-alive (HTTP/1.1), TCP_NODELAY, and the whole response in one write.

    The stock send_response()/end_headers()/write(body) sends headers and body in two segments;
    with Nagle on, a keep-alive client then waits for a delayed ACK (~40 ms per request on Linux),
    which would penalise exactly the clients that pool connections.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: "CountingServer"

    def setup(self) -> None:
        super().setup()
        self.server.count_connection()

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self.server.count_request()
        self.wfile.write(_RESPONSE)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class CountingServer(http.server.ThreadingHTTPServer):
    """Threaded HTTP server on 127.0.0.1 (random port) answering every GET with a small JSON body."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._lock = threading.Lock()
        self._count = 0
        self._connections = 0
        self._thread = threading.Thread(target=self.serve_forever, name="bench-http", daemon=True)

    def count_request(self) -> None:
        with self._lock:
            self._count += 1

    def count_connection(self) -> None:
        with self._lock:
            self._connections += 1

    def reset(self) -> None:
        with self._lock:
            self._count = 0
            self._connections = 0

    @property
    def connections(self) -> int:
        """TCP connections accepted since the last reset."""
        with self._lock:
            return self._connections

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> "CountingServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


@dataclass
class Completed:
    """A finished subprocess with its wall time."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    wall: float
    cpu: float  # user + system seconds of the child (and its children), less sensitive to machine load


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 600.0) -> Completed:
    """Run a command to completion, capturing its output; wall time covers process start to exit.

    CPU time is the growth of RUSAGE_CHILDREN across the call, so runs must not overlap.
    """
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    wall = time.perf_counter() - start
    return Completed(argv, proc.returncode, proc.stdout, proc.stderr, wall, _children_cpu() - cpu)


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def fail(message: str, detail: str = "") -> NoReturn:
    """Print a failure (with an output tail) to stderr and exit 1."""
    print(f"FAILED: {message}", file=sys.stderr)
    if detail:
        print(detail, file=sys.stderr)
    raise SystemExit(1)


def ours_command(spec: str | None) -> tuple[list[str], dict[str, str]]:
    """The argv prefix that runs our `noetl` CLI, and the environment to run it in.

    Default: this interpreter calling `noetl.cli:main` (the console-script target) with the
    repository on PYTHONPATH, so the working tree is measured without installing it.
    `spec` (e.g. "noetl" or "/path/venv/bin/noetl") overrides that.
    """
    env = dict(os.environ)
    if spec:
        return shlex.split(spec), env
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    code = "import sys; from noetl.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code], env


def ours_version(prefix: list[str], env: dict[str, str]) -> str:
    """Our package version as the interpreter that runs it sees it, plus the git commit if any."""
    version = "unknown"
    if prefix[:2] == [sys.executable, "-c"]:
        code = ("import noetl, importlib.metadata as m\n"
                "v = getattr(noetl, '__version__', None)\n"
                "if v is None:\n"
                "    try: v = m.version('noetl-k8s')\n"
                "    except Exception: v = 'working tree'\n"
                "print(v)")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        if proc.returncode == 0:
            version = proc.stdout.strip()
    try:
        rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        if rev.returncode == 0 and rev.stdout.strip():
            dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "noetl"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            version += f" (git {rev.stdout.strip()}{' + uncommitted changes' if dirty else ''})"
    except (OSError, subprocess.SubprocessError):
        pass
    return version


def machine() -> str:
    load = ", load average %.2f %.2f %.2f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}{load}")


def median(values: list[float]) -> float:
    return statistics.median(values)
