"""``noetl worker`` options: parse, then delegate to ``_worker`` (STYLE §7).

Kept apart from ``_worker`` so that building the ``noetl`` parser does not import the Kubernetes
client (about a second, and an optional dependency): ``_worker`` is imported when the command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any, Sequence

from noetl.k8s._defaults import DEFAULT_CONCURRENCY, GRACE_SECONDS
from noetl.logs import configure_json_logging

__all__ = ["add_worker_command", "cmd_worker", "main"]

log = logging.getLogger("noetl.k8s.worker")


def _env(name: str, default: Any = None) -> Any:
    return os.environ.get(f"NOETL_{name.upper().replace('-', '_')}", default)


def add_worker_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``noetl worker`` to the CLI's subparsers; the handler is ``args.fn(args) -> exit code``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "worker", help="run commands in the cluster: a worker pod (default) or one Job pod (--job)",
        description="Deployment mode: hold a Lease and run the commands the operator assigns to this pod "
                    "(identity: env POD_NAME, Lease namespace: env POD_NAMESPACE). Job mode (--job): run the command "
                    "in env NOETL_COMMAND for the Execution in env NOETL_EXECUTION (namespace/name) and exit. "
                    "Every option also reads NOETL_<OPTION>.")
    p.add_argument("--namespace", action="append", dest="namespaces", metavar="NS",
                   default=[n for n in str(_env("namespace", "")).split(",") if n] or None,
                   help="serve Executions of this namespace (repeatable; default all) [NOETL_NAMESPACE, comma-separated]")
    p.add_argument("--concurrency", type=int, default=int(_env("concurrency", DEFAULT_CONCURRENCY)), metavar="N",
                   help=f"commands run at the same time (default {DEFAULT_CONCURRENCY}) [NOETL_CONCURRENCY]")
    p.add_argument("--job", action="store_true", default=str(_env("job", "")).lower() in ("1", "true", "yes"),
                   help="job mode: run one command and exit [NOETL_JOB]")
    p.add_argument("--command-file", default=_env("command-file"), metavar="FILE",
                   help="job mode: read the command from FILE instead of env NOETL_COMMAND [NOETL_COMMAND_FILE]")
    p.add_argument("--grace-seconds", type=float, default=float(_env("grace-seconds", GRACE_SECONDS)), metavar="S",
                   help=f"on SIGTERM, let running commands finish for S seconds (default {GRACE_SECONDS:g}) "
                        "[NOETL_GRACE_SECONDS]")
    p.add_argument("--kubeconfig", default=_env("kubeconfig"),
                   help="kubeconfig file (default: in-cluster, else KUBECONFIG) [NOETL_KUBECONFIG]")
    p.add_argument("--log-level", default=_env("log-level", "info"), choices=["debug", "info", "warning", "error"],
                   help="level of the JSON logs on stderr [NOETL_LOG_LEVEL]")
    p.set_defaults(fn=cmd_worker)
    return p


def cmd_worker(args: argparse.Namespace) -> int:
    """Run ``noetl worker``: 0 on a clean stop (or a reported Job event), 1 not reported, 2 usage."""
    configure_json_logging(getattr(logging, str(args.log_level).upper()))
    if args.concurrency < 1:
        log.error("--concurrency must be at least 1, got %d", args.concurrency)
        return 2
    if args.command_file and not args.job:
        log.error("--command-file only applies with --job")
        return 2
    from noetl.k8s._worker import run_job_command, run_worker

    if args.job:
        return asyncio.run(run_job_command(command_file=args.command_file, kubeconfig=args.kubeconfig))
    asyncio.run(run_worker(kubeconfig=args.kubeconfig, namespaces=args.namespaces, concurrency=args.concurrency,
                           grace_seconds=args.grace_seconds, handle_signals=True))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m noetl.k8s [worker options]`` (what ``noetl worker`` runs)."""
    parser = argparse.ArgumentParser(prog="noetl")
    add_worker_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["worker", *(sys.argv[1:] if argv is None else argv)])
    return int(args.fn(args))
