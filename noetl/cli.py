"""`noetl` command line. Commands parse their options and delegate to the library.

Exit codes: 0 success, 1 the workflow failed, 2 invalid input or usage.
Every option can also be set through an environment variable named ``NOETL_<OPTION>``
(for example ``NOETL_OUTPUT=json``, ``NOETL_CREDENTIALS=creds.yaml``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence


from noetl._options import UsageError, _env, _load_yaml_map, parse_set
from noetl.errors import NoetlError, PlaybookError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


# -- commands ----------------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    from noetl.dsl import load_playbook

    status = EXIT_OK
    for file in args.files:
        try:
            parsed = load_playbook(file)
        except PlaybookError as exc:
            for problem in getattr(exc, "problems", []):
                print(problem, file=sys.stderr if problem.severity == "warning" else sys.stdout)
            status = EXIT_USAGE
            continue
        for warning in parsed.warnings:
            print(warning, file=sys.stderr)
        if not args.quiet:
            print(f"{file}: ok ({len(parsed.playbook.workflow)} steps)", file=sys.stderr)
    return status


def cmd_run(args: argparse.Namespace) -> int:
    from noetl.dsl import load_playbook
    from noetl.local import Progress, run
    from noetl.worker import default_credentials

    output = args.output or _env("output", "text")
    if output not in ("text", "json"):
        raise UsageError(f"NOETL_OUTPUT must be text or json, got '{output}'")
    workload: dict[str, Any] = {}
    workload_file = args.workload_file or _env("workload_file")
    if workload_file:
        workload = _load_yaml_map(workload_file, "--workload-file")
    from noetl.engine import deep_merge

    workload = deep_merge(workload, parse_set(args.set or []))
    credentials = default_credentials(args.credentials or _env("credentials"))
    _interrupt_on_termination()
    parsed = load_playbook(args.file)
    for warning in parsed.warnings:
        print(warning, file=sys.stderr)
    progress = Progress(quiet=output == "json" or args.quiet)
    if not progress.quiet:
        _show_user_output()
    summary = run(parsed, workload=workload, credentials=credentials, progress=progress,
                  execution_id=args.execution_id)
    code = EXIT_OK if summary["status"] == "succeeded" else EXIT_FAILED
    try:
        if output == "json":
            print(json.dumps(summary, default=str))
        else:
            _print_text_summary(summary)
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()  # `noetl run ... | head`: the reader left; the run's outcome still decides
    return code


def _interrupt_on_termination() -> None:
    """SIGTERM/SIGHUP end the run like Ctrl-C does: running calls are cancelled and the python
    tool's child processes stopped, instead of being orphaned (`timeout N noetl run ...`)."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def _show_user_output() -> None:
    """What user Python code prints is logged by the python tool; show it on stderr."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    logger = logging.getLogger("noetl.tools.python")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _print_text_summary(summary: dict[str, Any]) -> None:
    from noetl.local import describe_error

    out = sys.stdout
    print(f"execution {summary['execution_id']}: {summary['status']}", file=out)
    width = max((len(n) for n in summary["steps"]), default=4)
    for name, st in summary["steps"].items():
        print(f"  {name:<{width}}  {st['status']:<9}  runs={st['runs']:<4} calls={st['calls']}", file=out)
    for warning in summary.get("warnings") or []:
        print(f"warning: {warning}", file=sys.stderr)
    if summary["error"]:
        err = summary["error"]
        where = f"error in step '{err['step']}'" if err.get("step") else "error"
        print(f"{where}: {describe_error(err)}", file=out)
        rest = str(err.get("message") or "").strip().splitlines()[1:]
        if rest:
            print("\n".join("  " + line for line in rest[:20]), file=out)
    else:
        text = json.dumps(summary["result"], indent=2, default=str, ensure_ascii=False)
        if len(text) > 4000:
            text = text[:4000] + f"\n... ({len(text) - 4000} more characters; use --output json)"
        print(f"result: {text}", file=out)


def cmd_manifest(args: argparse.Namespace) -> int:
    from noetl.dsl import load_playbook, to_manifest
    from noetl.dsl._yaml import dump_all

    docs = [to_manifest(load_playbook(f), namespace=args.namespace) for f in args.files]
    sys.stdout.write(dump_all(docs))
    return EXIT_OK


def cmd_operator(args: argparse.Namespace) -> int:
    from noetl.logs import setup_logging
    from noetl_operator import Settings, run as run_operator

    setup_logging(args.log_format or _env("log_format", "json"), args.log_level or _env("log_level", "INFO"))
    namespaces = args.namespace or [n for n in (_env("namespace", "") or "").split(",") if n]
    executor = args.executor or _env("executor", "worker")
    if executor not in ("worker", "job"):
        raise UsageError(f"--executor must be worker or job, got '{executor}'")
    port = args.liveness_port or _env("liveness_port")
    settings = Settings(
        namespaces=tuple(namespaces), executor=executor,
        worker_namespace=args.worker_namespace or _env("worker_namespace") or _env("pod_namespace") or "default",
        image=args.image or _env("image", "noetl:dev"),
        image_pull_policy=args.image_pull_policy or _env("image_pull_policy", "IfNotPresent"),
        job_service_account=args.job_service_account or _env("job_service_account", "noetl-job"),
        liveness_port=int(port) if port else None,
    )
    run_operator(settings)
    return EXIT_OK


# -- entry point -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from noetl import __version__

    parser = argparse.ArgumentParser(prog="noetl", description="Run NoETL DSL v2 playbooks.")
    parser.add_argument("--version", action="version", version=f"noetl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check playbooks; exit 2 with one line per problem")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("run", help="run a playbook with the embedded runner (no cluster needed)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a workload field; VALUE is YAML, dotted KEY sets nested fields (repeatable)")
    p.add_argument("--workload-file", metavar="F", help="YAML map merged over the playbook's workload [NOETL_WORKLOAD_FILE]")
    p.add_argument("--credentials", metavar="F", help="YAML map name -> {field: value} for `auth:` [NOETL_CREDENTIALS]")
    p.add_argument("--output", choices=("text", "json"), default=None, help="summary format [NOETL_OUTPUT]")
    p.add_argument("--execution-id", default=None, help="use this execution id instead of a random one")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("manifest", help="print the Kubernetes resource form of playbooks")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-n", "--namespace", default=None)
    p.set_defaults(fn=cmd_manifest)

    p = sub.add_parser("operator", help="run the Kubernetes operator (kopf)")
    p.add_argument("-n", "--namespace", action="append",
                   help="watch this namespace (repeatable); default: cluster-wide [NOETL_NAMESPACE, comma-separated]")
    p.add_argument("--executor", choices=("worker", "job"), default=None,
                   help="default executor of Executions that do not set one [NOETL_EXECUTOR]")
    p.add_argument("--worker-namespace", default=None,
                   help="namespace of the worker Leases [NOETL_WORKER_NAMESPACE, else POD_NAMESPACE]")
    p.add_argument("--image", default=None, help="image of Job pods [NOETL_IMAGE]")
    p.add_argument("--image-pull-policy", default=None, help="of Job pods [NOETL_IMAGE_PULL_POLICY]")
    p.add_argument("--job-service-account", default=None, help="ServiceAccount of Job pods [NOETL_JOB_SERVICE_ACCOUNT]")
    p.add_argument("--liveness-port", type=int, default=None, help="serve /healthz on this port [NOETL_LIVENESS_PORT]")
    p.add_argument("--log-format", choices=("json", "text"), default=None, help="[NOETL_LOG_FORMAT] (default json)")
    p.add_argument("--log-level", default=None, help="[NOETL_LOG_LEVEL] (default INFO)")
    p.set_defaults(fn=cmd_operator)

    # Kubernetes commands; these modules load the kubernetes client only when a command runs.
    from noetl.k8s import add_worker_command
    from noetl.k8s._cli import add_k8s_commands

    add_worker_command(sub)
    add_k8s_commands(sub)
    return parser


#: Modules of the `k8s` extra: a command that needs one says how to install it.
_K8S_MODULES = frozenset({"kubernetes", "kopf", "urllib3"})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args))
    except PlaybookError as exc:
        problems = getattr(exc, "problems", None)
        if problems:
            for problem in problems:
                print(problem, file=sys.stderr)
        else:
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"noetl {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NoetlError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 141  # as a shell reports a reader that went away (128 + SIGPIPE)
    except Exception as exc:  # noqa: BLE001 - a bug in noetl: say so without a wall of traceback
        if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in _K8S_MODULES:
            print(f"noetl {args.command}: needs the Kubernetes extras (module '{exc.name}' is missing); "
                  "install them with: pip install -e '.[k8s]'", file=sys.stderr)
            return EXIT_USAGE
        if os.environ.get("NOETL_DEBUG"):
            raise
        print(f"noetl {args.command}: internal error: {type(exc).__name__}: {exc} "
              "(set NOETL_DEBUG=1 for the traceback and please report it)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
