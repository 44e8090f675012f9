"""The Kubernetes commands of ``noetl``: ``crds``, ``submit``, ``get``, ``cancel``.

``noetl.cli`` calls :func:`add_k8s_commands` to register them. Each command parses its options
and talks to the API with the official ``kubernetes`` client, synchronously: a CLI makes a handful
of calls, so the operator's async client would add nothing but an event loop. Result blobs are
the exception: they are read through ``noetl.k8s._blobs`` so their encoding lives in one place.

Exit codes follow ``noetl run``: 0 succeeded, 1 the execution failed or was cancelled, 2 invalid
input or usage (including "no such object" and an unreachable or CRD-less cluster). Every option
can also be set with an environment variable ``NOETL_<OPTION>`` (``NOETL_NAMESPACE``,
``NOETL_KUBECONFIG``, ``NOETL_EXECUTOR``, ``NOETL_TIMEOUT``, ``NOETL_WATCH``, ``NOETL_OUTPUT``,
``NOETL_WORKLOAD_FILE``, ``NOETL_OUTPUT_DIR``); a flag wins over its variable.

This module never imports ``noetl.cli`` (``noetl.cli`` imports it).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO, TypeVar


from noetl.dsl._yaml import dump_all
from noetl.errors import NoetlError
from noetl.k8s import _resources as res
from noetl.k8s._errors import ApiError, Conflict, Gone, NotFound, api_error

__all__ = ["add_k8s_commands"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
Obj = dict[str, Any]
T = TypeVar("T")

_KIND_ALIASES = {
    **dict.fromkeys(("nex", "execution", "executions", "execution.noetl.io", "executions.noetl.io"), res.EXECUTIONS),
    **dict.fromkeys(("pb", "playbook", "playbooks", "playbook.noetl.io", "playbooks.noetl.io"), res.PLAYBOOKS),
}
_KIND_NAMES = {res.EXECUTIONS: "Execution", res.PLAYBOOKS: "Playbook"}
#: Longest Execution name: it becomes the value of the noetl.io/execution label (at most 63).
MAX_EXECUTION_NAME = 63


# -- options -----------------------------------------------------------------------------------------
def _usage(message: str) -> NoetlError:
    """The CLI's UsageError."""
    from noetl._options import UsageError

    return UsageError(message)


def _opt(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    """The flag's value, else ``NOETL_<NAME>``, else ``default``."""
    value = getattr(args, name, None)
    if value is not None:
        return value
    return os.environ.get(f"NOETL_{name.upper()}", default)


def _flag(args: argparse.Namespace, name: str) -> bool:
    """A boolean flag, or ``NOETL_<NAME>`` set to 1/true/yes/on."""
    if getattr(args, name, False):
        return True
    return os.environ.get(f"NOETL_{name.upper()}", "").strip().lower() in ("1", "true", "yes", "on")


def _choice(args: argparse.Namespace, name: str, choices: tuple[str, ...], default: str | None) -> str | None:
    value = _opt(args, name, default)
    if value is not None and value not in choices:
        raise _usage(f"--{name.replace('_', '-')} must be one of {', '.join(choices)}, got '{value}' "
                     f"(from the flag or NOETL_{name.upper()})")
    return None if value is None else str(value)


# -- the API -----------------------------------------------------------------------------------------
@dataclasses.dataclass
class Cluster:
    """Clients for one namespace of one cluster. ``close()`` it (open sockets are warnings)."""

    api_client: Any
    custom: Any
    core: Any
    namespace: str
    kubeconfig: str | None
    server: str

    def close(self) -> None:
        self.api_client.close()


def connect(*, kubeconfig: str | None, namespace: str | None) -> Cluster:
    """Clients from ``kubeconfig`` (else ``KUBECONFIG``, ``~/.kube/config``, or in-cluster), with the
    namespace given, else the kubeconfig context's, else ``default``."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    cfg = client.Configuration()
    try:
        if kubeconfig is None and not os.environ.get("KUBECONFIG") and os.environ.get("KUBERNETES_SERVICE_HOST") \
                and not Path("~/.kube/config").expanduser().exists():
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            namespace = namespace or _incluster_namespace()
        else:
            # KUBECONFIG is read now, not at import time (the client library reads it once, on import)
            kubeconfig = kubeconfig or os.environ.get("KUBECONFIG") or None
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=cfg, persist_config=False)
            namespace = namespace or _context_namespace(kubeconfig)
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise _usage(f"cannot load the kubeconfig {where}: {exc}; point --kubeconfig (NOETL_KUBECONFIG) "
                     "or KUBECONFIG at a valid file") from None
    api_client = client.ApiClient(cfg)
    return Cluster(api_client=api_client, custom=client.CustomObjectsApi(api_client),
                   core=client.CoreV1Api(api_client), namespace=namespace or "default",
                   kubeconfig=kubeconfig, server=str(cfg.host))


def _context_namespace(kubeconfig: str | None) -> str | None:
    from kubernetes import config

    try:
        _, current = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - no namespace in the kubeconfig is not an error
        return None
    ns = ((current or {}).get("context") or {}).get("namespace")
    return str(ns) if ns else None


def _incluster_namespace() -> str | None:
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return path.read_text().strip() if path.exists() else None


def _call(cluster: Cluster, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """One API call; its failure becomes an :class:`ApiError` (no client traceback for the user)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return fn(*args, **kwargs)
    except ApiException as exc:
        raise api_error(int(exc.status or 0), str(exc.reason or ""), exc.body) from None
    except HTTPError as exc:
        raise ApiError(0, "Unreachable", f"cannot reach the API server at {cluster.server}: {exc}") from None


def _explain(err: ApiError, *, kind: str, name: str | None, namespace: str) -> NoetlError:
    """A message that names the object and the fix, for the failures a user can act on."""
    what = _KIND_NAMES[kind]
    if isinstance(err, NotFound) and "could not find the requested resource" in err.message:
        return _usage(f"the cluster has no {what} resource: install the CRDs with "
                      "`noetl crds | kubectl apply -f -` (or `helm install noetl charts/noetl`)")
    if isinstance(err, NotFound) and name:
        return _usage(f"{what} '{name}' not found in namespace '{namespace}' "
                      f"(list them with `noetl get {'nex' if kind == res.EXECUTIONS else 'pb'} -n {namespace}`)")
    if err.status == 0:
        return _usage(f"{err.message}; check --kubeconfig (NOETL_KUBECONFIG) or KUBECONFIG")
    if err.status == 422:
        return _usage(f"the API server rejected the {what}: {err.message}")
    return err


def _objects(cluster: Cluster, kind: str, name: str | None = None) -> Any:
    """GET one object or the list (raw dicts), with readable failures."""
    api = cluster.custom
    try:
        if name is None:
            return _call(cluster, api.list_namespaced_custom_object, res.GROUP, res.VERSION, cluster.namespace, kind)
        return _call(cluster, api.get_namespaced_custom_object, res.GROUP, res.VERSION, cluster.namespace, kind, name)
    except ApiError as exc:
        raise _explain(exc, kind=kind, name=name, namespace=cluster.namespace) from None


# -- noetl crds --------------------------------------------------------------------------------------
def cmd_crds(args: argparse.Namespace) -> int:
    """Print the CRDs (multi-document YAML) or write ``crds/<plural>.<group>.yaml`` files."""
    from noetl.k8s._crds import build_crds, crd_filename, render_crd

    crds = build_crds()
    out_dir = _opt(args, "output_dir")
    if not out_dir:
        sys.stdout.write("---\n".join(render_crd(c) for c in crds))
        return EXIT_OK
    directory = Path(out_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for crd in crds:
            path = directory / crd_filename(crd)
            path.write_text(render_crd(crd), encoding="utf-8")
            print(f"wrote {path}", file=sys.stderr)
    except OSError as exc:
        raise _usage(f"--output-dir {out_dir}: {exc.strerror}") from None
    return EXIT_OK


# -- noetl submit ------------------------------------------------------------------------------------
def cmd_submit(args: argparse.Namespace) -> int:
    """Validate, apply the Playbook, create an Execution; with --watch follow it to the end."""
    from noetl.dsl import load_playbook, to_manifest

    output = _choice(args, "output", ("text", "json"), "text")
    executor = _choice(args, "executor", ("worker", "job"), None)
    timeout = _positive_int(_opt(args, "timeout"), "--timeout")
    workload = _workload(args)
    parsed = load_playbook(args.file)  # PlaybookError: noetl.cli prints the problems, exit 2
    for warning in parsed.warnings:
        print(warning, file=sys.stderr)
    if args.name and len(args.name) > MAX_EXECUTION_NAME:
        raise _usage(f"--name: at most {MAX_EXECUTION_NAME} characters (it becomes a label value), "
                     f"got {len(args.name)}")
    cluster = connect(kubeconfig=_opt(args, "kubeconfig"), namespace=_opt(args, "namespace"))
    try:
        playbook = apply_playbook(cluster, to_manifest(parsed, namespace=cluster.namespace))
        body = execution_body(playbook=playbook["metadata"]["name"], name=args.name, workload=workload,
                              executor=executor, timeout=timeout)
        execution = create_execution(cluster, body)
        name = execution["metadata"]["name"]
        if not _flag(args, "watch"):
            if output == "json":
                print(json.dumps({"execution": name, "namespace": cluster.namespace,
                                  "playbook": playbook["metadata"]["name"]}))
            else:
                print(name)
            return EXIT_OK
        print(f"execution {cluster.namespace}/{name} created; watching (Ctrl-C stops watching, "
              f"not the execution; `noetl cancel {name}` stops it)", file=sys.stderr)
        final = watch_execution(cluster, name, bar=ProgressBar(sys.stderr, enabled=output == "text"))
        summary = summarize(final, read_result(cluster, final))
        _print_summary(summary, output)
        return EXIT_OK if summary["status"] == "succeeded" else EXIT_FAILED
    finally:
        cluster.close()


def _positive_int(value: Any, flag: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _usage(f"{flag} must be a whole number of seconds, got '{value}'") from None
    if number < 1:
        raise _usage(f"{flag} must be at least 1, got {number}")
    return number


def _workload(args: argparse.Namespace) -> dict[str, Any]:
    """--workload-file, with the --set overrides merged over it (as `noetl run` does)."""
    from noetl._options import _load_yaml_map, parse_set
    from noetl.engine import deep_merge

    base: dict[str, Any] = {}
    workload_file = _opt(args, "workload_file")
    if workload_file:
        base = _load_yaml_map(workload_file, "--workload-file")
    merged: dict[str, Any] = deep_merge(base, parse_set(args.set or []))
    return merged


def apply_playbook(cluster: Cluster, manifest: Obj) -> Obj:
    """Create the Playbook, or replace the spec of the existing one (keeping its other labels and
    annotations). Replace, not merge: a step removed from the file must go from the spec too."""
    api, ns, name = cluster.custom, cluster.namespace, manifest["metadata"]["name"]
    manifest["metadata"]["namespace"] = ns
    try:
        created: Obj = _call(cluster, api.create_namespaced_custom_object, res.GROUP, res.VERSION, ns,
                             res.PLAYBOOKS, manifest)
        return created
    except Conflict:
        pass
    except ApiError as exc:
        raise _explain(exc, kind=res.PLAYBOOKS, name=None, namespace=ns) from None
    for _ in range(5):  # a concurrent writer changed it between our read and write: read again
        current = _objects(cluster, res.PLAYBOOKS, name)
        meta = current["metadata"]
        body = {**manifest, "metadata": {
            **manifest["metadata"], "resourceVersion": meta["resourceVersion"],
            "labels": {**(meta.get("labels") or {}), **(manifest["metadata"].get("labels") or {})},
            "annotations": {**(meta.get("annotations") or {}), **(manifest["metadata"].get("annotations") or {})}}}
        try:
            replaced: Obj = _call(cluster, api.replace_namespaced_custom_object, res.GROUP, res.VERSION, ns,
                                  res.PLAYBOOKS, name, body)
            return replaced
        except Conflict:
            continue
        except ApiError as exc:
            raise _explain(exc, kind=res.PLAYBOOKS, name=name, namespace=ns) from None
    raise ApiError(409, "Conflict", f"Playbook '{name}' kept changing while it was being replaced; try again")


def execution_body(*, playbook: str, name: str | None, workload: dict[str, Any], executor: str | None,
                   timeout: int | None) -> Obj:
    """The Execution object for a referenced Playbook (generateName ``<playbook>-`` unless named)."""
    spec: Obj = {"playbookRef": {"name": playbook}}
    if workload:
        spec["workload"] = workload
    if executor:
        spec["executor"] = executor
    if timeout:
        spec["timeoutSeconds"] = timeout
    # generateName adds 5 characters; the result must still fit a label value.
    meta: Obj = {"name": name} if name else {"generateName": playbook[: MAX_EXECUTION_NAME - 6].rstrip("-.") + "-"}
    return {"apiVersion": res.API_VERSION, "kind": "Execution", "metadata": meta, "spec": spec}


def create_execution(cluster: Cluster, body: Obj) -> Obj:
    try:
        created: Obj = _call(cluster, cluster.custom.create_namespaced_custom_object, res.GROUP, res.VERSION,
                             cluster.namespace, res.EXECUTIONS, body)
        return created
    except Conflict:
        raise _usage(f"an Execution named '{body['metadata'].get('name')}' already exists in namespace "
                     f"'{cluster.namespace}'; choose another --name or omit it") from None
    except ApiError as exc:
        raise _explain(exc, kind=res.EXECUTIONS, name=None, namespace=cluster.namespace) from None


# -- watching ----------------------------------------------------------------------------------------
def _phase(obj: Obj) -> str:
    return str((obj.get("status") or {}).get("phase") or res.Phase.PENDING)


def _finished(obj: Obj) -> bool:
    return _phase(obj) in {p.value for p in res.Phase if p.finished}


#: Seconds without any status before `--watch` says that nothing seems to reconcile Executions.
PENDING_HINT_SECONDS = 20


def watch_execution(cluster: Cluster, name: str, *, bar: ProgressBar) -> Obj:
    """Follow one Execution until its phase is finished; returns the last object seen.

    When nothing has written any status after PENDING_HINT_SECONDS, says once that the operator
    may not be running (the usual reason an Execution never moves).
    """
    obj: Obj = _objects(cluster, res.EXECUTIONS, name)
    bar.update(obj)
    started, hinted = time.monotonic(), False
    try:
        while not _finished(obj):
            waiting = not obj.get("status")
            timeout = max(1, int(PENDING_HINT_SECONDS - (time.monotonic() - started))) if waiting and not hinted \
                else 60
            for event_obj in _stream(cluster, name, obj["metadata"]["resourceVersion"], timeout=timeout):
                obj = event_obj
                bar.update(obj)
                if _finished(obj) or (not hinted and not obj.get("status")):
                    break
            else:
                obj = _objects(cluster, res.EXECUTIONS, name)  # watch ended (timeout or 410): re-read
                bar.update(obj)
            if not hinted and not obj.get("status") and time.monotonic() - started >= PENDING_HINT_SECONDS:
                hinted = True
                bar.stream.write(f"no status after {PENDING_HINT_SECONDS}s: is the NoETL operator running? "
                                 "(kubectl get pods -l app.kubernetes.io/component=operator -A)\n")
                bar.stream.flush()
    finally:
        bar.close()
    return obj


def _stream(cluster: Cluster, name: str, resource_version: str, *, timeout: int = 60) -> Iterator[Obj]:
    """Objects from a watch on one Execution; returns when the server ends the watch.
    Raises a usage error when the Execution is deleted while we watch."""
    from kubernetes import watch

    w = watch.Watch()  # type: ignore[no-untyped-call]
    stream = w.stream(  # type: ignore[no-untyped-call]
        cluster.custom.list_namespaced_custom_object, res.GROUP, res.VERSION, cluster.namespace, res.EXECUTIONS,
        field_selector=f"metadata.name={name}", resource_version=resource_version, timeout_seconds=timeout)
    try:
        while True:
            try:
                event = _call(cluster, next, stream)
            except StopIteration:
                return
            except Gone:
                return
            if event["type"] == "DELETED":
                raise _usage(f"Execution '{name}' was deleted while being watched")
            if event["type"] in ("ADDED", "MODIFIED") and isinstance(event["object"], dict):
                yield event["object"]
    finally:
        w.stop()  # type: ignore[no-untyped-call]
        close = getattr(stream, "close", None)
        if close is not None:
            close()


class ProgressBar:
    """One status line on stderr: redrawn in place on a terminal, printed on change otherwise."""

    WIDTH = 24

    def __init__(self, stream: TextIO, *, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last = ""
        self._drawn = False

    def update(self, obj: Obj) -> None:
        if not self.enabled:
            return
        line = progress_line(obj, width=self.WIDTH)
        if line == self._last:
            return
        self._last = line
        if self.tty:
            self.stream.write(f"\r\x1b[2K{line}")
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def _fraction(value: Any) -> tuple[int, int] | None:
    """'3/7', {done: 3, total: 7} or [3, 7] -> (3, 7); anything else -> None."""
    try:
        if isinstance(value, str) and "/" in value:
            done, total = value.split("/", 1)
            return int(done), int(total)
        if isinstance(value, dict) and "total" in value:
            return int(value.get("done") or 0), int(value["total"])
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return int(value[0]), int(value[1])
    except (TypeError, ValueError):
        return None
    return None


def _step_items(step: Any) -> tuple[int, int] | None:
    """Loop progress of one status.steps entry, in whichever shape the operator wrote it."""
    if not isinstance(step, dict):
        return None
    for key in ("items", "loop"):
        frac = _fraction(step.get(key))
        if frac:
            return frac
    if "itemsTotal" in step:
        return _fraction({"done": step.get("itemsDone"), "total": step["itemsTotal"]})
    return None


def progress_line(obj: Obj, *, width: int = 24) -> str:
    """``name  Running  [######------] 3/7 steps  fetch 40/100 items``."""
    status = obj.get("status") or {}
    steps: dict[str, Any] = status["steps"] if isinstance(status.get("steps"), dict) else {}
    frac = _fraction(status.get("progress"))
    if frac is None and steps:
        frac = (sum(1 for s in steps.values() if isinstance(s, dict) and s.get("status") in
                    ("succeeded", "failed", "skipped", "done")), len(steps))
    done, total = frac or (0, 0)
    filled = width * done // total if total else 0
    line = f"{obj['metadata']['name']}  {_phase(obj):<9}  [{'#' * filled}{'-' * (width - filled)}] {done}/{total} steps"
    loops = [f"{n} {it[0]}/{it[1]} items" for n, s in steps.items()
             if (it := _step_items(s)) and it[0] < it[1]]
    if loops:
        line += "  " + ", ".join(loops[:3])
    return line


# -- results and summaries ---------------------------------------------------------------------------
def read_result(cluster: Cluster, obj: Obj) -> Any:
    """The full workflow result: inline ``status.result`` or the blob ``status.resultRef`` names."""
    status = obj.get("status") or {}
    ref = status.get("resultRef")
    if not ref:
        return status.get("result")
    return read_blob(cluster, ref)


def read_blob(cluster: Cluster, ref: dict[str, Any]) -> Any:
    """Decode a stored blob with ``noetl.k8s._blobs`` (its encoding is that module's business)."""
    import asyncio

    try:  # by name: the module is written alongside this one and may not exist yet
        _blobs: Any = importlib.import_module("noetl.k8s._blobs")
        kube_client: Any = importlib.import_module("noetl.k8s._client").KubeClient
    except (ImportError, AttributeError) as exc:
        raise NoetlError(f"cannot read the result blob {ref}: {exc}") from None

    async def fetch() -> Any:
        client = kube_client.from_env(cluster.kubeconfig)
        if asyncio.iscoroutine(client):
            client = await client
        try:
            return await _blobs.get_blob(client, cluster.namespace, ref)
        finally:
            closing = getattr(client, "close", None) or getattr(client, "aclose", None)
            if closing is not None:
                done = closing()
                if asyncio.iscoroutine(done):
                    await done

    try:
        return asyncio.run(fetch())
    except ApiError as exc:
        raise NoetlError(f"cannot read the result blob {json.dumps(ref)}: {exc}") from None


def summarize(obj: Obj, result: Any) -> Obj:
    """The shape of `noetl run --output json`: {execution_id, status, result, error, steps}."""
    status = obj.get("status") or {}
    return {"execution_id": obj["metadata"]["name"], "status": _phase(obj).lower(), "result": result,
            "error": status.get("error"), "steps": status.get("steps") or {}}


def _print_summary(summary: Obj, output: str | None) -> None:
    if output == "json":
        print(json.dumps(summary, default=str))
        return
    print(f"execution {summary['execution_id']}: {summary['status']}")
    _print_steps(summary["steps"])
    err = summary["error"]
    if err:
        print(f"error in step '{err.get('step')}': {err.get('type')}: {err.get('message')}")
    elif summary["status"] == "succeeded":
        print(f"result: {json.dumps(summary['result'], indent=2, default=str)}")


def _print_steps(steps: dict[str, Any], indent: str = "  ") -> None:
    width = max((len(n) for n in steps), default=4)
    for name, st in steps.items():
        st = st if isinstance(st, dict) else {"status": st}
        items = _step_items(st)
        extra = f" items={items[0]}/{items[1]}" if items else ""
        print(f"{indent}{name:<{width}}  {str(st.get('status', '?')):<9}  runs={str(st.get('runs', '-')):<4} "
              f"calls={st.get('calls', '-')}{extra}")


# -- noetl get ---------------------------------------------------------------------------------------
def parse_target(words: list[str]) -> tuple[str, str | None]:
    """``[]``, ``[nex]``, ``[nex/NAME]``, ``[nex, NAME]`` or ``[NAME]`` (an Execution) -> (kind, name)."""
    if len(words) > 2:
        raise _usage(f"expected [nex|pb] [NAME], got {' '.join(words)}")
    if not words:
        return res.EXECUTIONS, None
    first, rest = words[0], words[1:]
    kind_word, slash, name = first.partition("/")
    if slash:
        if kind_word.lower() not in _KIND_ALIASES or not name or rest:
            raise _usage(f"'{first}': write nex/NAME or pb/NAME")
        return _KIND_ALIASES[kind_word.lower()], name
    if first.lower() in _KIND_ALIASES:
        return _KIND_ALIASES[first.lower()], (rest[0] if rest else None)
    if rest:
        raise _usage(f"unknown kind '{first}': use nex (executions) or pb (playbooks)")
    return res.EXECUTIONS, first


def cmd_get(args: argparse.Namespace) -> int:
    """A table of Executions or Playbooks, or one of them in full (with the full result)."""
    output = _choice(args, "output", ("text", "json", "yaml"), "text")
    kind, name = parse_target(list(args.target or []))
    cluster = connect(kubeconfig=_opt(args, "kubeconfig"), namespace=_opt(args, "namespace"))
    try:
        data = _objects(cluster, kind, name)
        if name and kind == res.EXECUTIONS and (data.get("status") or {}).get("resultRef"):
            data.setdefault("status", {})["result"] = read_result(cluster, data)
    finally:
        cluster.close()
    if output == "json":
        print(json.dumps(data, indent=2, default=str))
    elif output == "yaml":
        sys.stdout.write(dump_all([data]))
    elif name is None:
        _print_table(kind, data.get("items") or [], cluster.namespace)
    elif kind == res.EXECUTIONS:
        _print_execution(data)
    else:
        _print_playbook(data)
    return EXIT_OK


def _age(timestamp: str | None, now: dt.datetime | None = None) -> str:
    """kubectl's short ages: 45s, 12m, 5h, 3d."""
    if not timestamp:
        return "<unknown>"
    try:
        then = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    seconds = int(((now or dt.datetime.now(dt.timezone.utc)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size or (unit == "m" and seconds >= size):
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _table_rows(kind: str, items: list[Obj]) -> list[list[str]]:
    if kind == res.EXECUTIONS:
        rows = [["NAME", "PLAYBOOK", "PHASE", "PROGRESS", "AGE", "DURATION"]]
        for o in items:
            st, spec = o.get("status") or {}, o.get("spec") or {}
            ref = (spec.get("playbookRef") or {}).get("name") or ("<inline>" if spec.get("playbook") else "")
            rows.append([o["metadata"]["name"], ref, _phase(o), str(st.get("progress") or ""),
                         _age(o["metadata"].get("creationTimestamp")), str(st.get("duration") or "")])
        return rows
    rows = [["NAME", "PHASE", "STEPS", "AGE"]]
    for o in items:
        st = o.get("status") or {}
        steps = st.get("steps", len((o.get("spec") or {}).get("workflow") or []))
        rows.append([o["metadata"]["name"], str(st.get("phase") or ""), str(steps),
                     _age(o["metadata"].get("creationTimestamp"))])
    return rows


def _print_table(kind: str, items: list[Obj], namespace: str) -> None:
    if not items:
        print(f"No {kind} found in namespace {namespace}.", file=sys.stderr)
        return
    rows = _table_rows(kind, sorted(items, key=lambda o: str(o["metadata"].get("creationTimestamp") or "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _print_execution(obj: Obj) -> None:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    pinned = status.get("playbook") or {}
    playbook = (spec.get("playbookRef") or {}).get("name") or "<inline>"
    if pinned.get("generation") is not None:
        playbook += f" (generation {pinned['generation']})"
    print(f"execution {meta['name']}  (namespace {meta.get('namespace')})")
    fields = [("playbook", playbook), ("phase", _phase(obj)), ("progress", status.get("progress")),
              ("executor", spec.get("executor")), ("created", meta.get("creationTimestamp")),
              ("started", status.get("startedAt")), ("finished", status.get("finishedAt")),
              ("duration", status.get("duration")), ("suspend", spec.get("suspend")),
              ("cancel", spec.get("cancel"))]
    for label, value in fields:
        if value not in (None, ""):
            print(f"  {label + ':':<10} {value}")
    for cond in status.get("conditions") or []:
        if isinstance(cond, dict) and cond.get("message"):
            print(f"  condition {cond.get('type')}={cond.get('status')} ({cond.get('reason')}): {cond['message']}")
    steps = status.get("steps") or {}
    if steps:
        print("steps:")
        _print_steps(steps)
    for warning in status.get("warnings") or []:
        print(f"warning: {warning}")
    err = status.get("error")
    if err:
        print(f"error in step '{err.get('step')}': {err.get('type')}: {err.get('message')}")
    if "result" in status:
        print(f"result: {json.dumps(status['result'], indent=2, default=str)}")


def _print_playbook(obj: Obj) -> None:
    meta, status = obj["metadata"], obj.get("status") or {}
    workflow = (obj.get("spec") or {}).get("workflow") or []
    print(f"playbook {meta['name']}  (namespace {meta.get('namespace')}, generation {meta.get('generation')})")
    print(f"  phase:  {status.get('phase') or '<not validated yet>'}")
    print(f"  steps:  {', '.join(str(s.get('step')) for s in workflow if isinstance(s, dict))}")
    for message in status.get("messages") or []:
        print(f"  problem: {message}")


# -- noetl cancel ------------------------------------------------------------------------------------
def cmd_cancel(args: argparse.Namespace) -> int:
    """Ask the operator to stop an Execution: ``spec.cancel: true`` (the operator does the rest)."""
    name = args.name.split("/", 1)[1] if args.name.lower().startswith(("nex/", "execution/")) else args.name
    cluster = connect(kubeconfig=_opt(args, "kubeconfig"), namespace=_opt(args, "namespace"))
    try:
        obj = _objects(cluster, res.EXECUTIONS, name)
        if _finished(obj):
            print(f"execution {cluster.namespace}/{name} already finished ({_phase(obj)}); nothing to cancel")
            return EXIT_OK
        try:
            _call(cluster, cluster.custom.patch_namespaced_custom_object, res.GROUP, res.VERSION,
                  cluster.namespace, res.EXECUTIONS, name, {"spec": {"cancel": True}})
        except ApiError as exc:
            raise _explain(exc, kind=res.EXECUTIONS, name=name, namespace=cluster.namespace) from None
    finally:
        cluster.close()
    print(f"execution {cluster.namespace}/{name}: cancel requested (spec.cancel=true); "
          f"the operator stops it and sets phase Cancelled")
    return EXIT_OK


# -- registration ------------------------------------------------------------------------------------
def _cluster_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace", default=None,
                   help="namespace [NOETL_NAMESPACE; default: the kubeconfig context's, else default]")
    p.add_argument("--kubeconfig", default=None, metavar="FILE",
                   help="kubeconfig file [NOETL_KUBECONFIG; default: KUBECONFIG, ~/.kube/config, in-cluster]")


def add_k8s_commands(subparsers: Any) -> None:
    """Register crds, submit, get and cancel on the ``noetl`` parser's subparsers."""
    p = subparsers.add_parser("crds", help="print the Playbook and Execution CRDs (or write them to a directory)")
    p.add_argument("--output-dir", metavar="DIR", default=None,
                   help="write DIR/<plural>.noetl.io.yaml instead of printing [NOETL_OUTPUT_DIR]")
    p.set_defaults(fn=cmd_crds)

    p = subparsers.add_parser("submit", help="apply a playbook to the cluster and start an Execution of it")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a workload field; VALUE is YAML, dotted KEY sets nested fields (repeatable)")
    p.add_argument("--workload-file", metavar="F", help="YAML map of workload overrides [NOETL_WORKLOAD_FILE]")
    p.add_argument("--executor", choices=("worker", "job"), default=None,
                   help="where commands run [NOETL_EXECUTOR; default: the operator's setting]")
    p.add_argument("--name", default=None, help="Execution name (default: generated, <playbook>-xxxxx)")
    p.add_argument("--timeout", default=None, metavar="SECONDS",
                   help="fail the execution after this many seconds (spec.timeoutSeconds) [NOETL_TIMEOUT]")
    p.add_argument("--watch", action="store_true", default=None,
                   help="follow the execution with a progress bar until it finishes [NOETL_WATCH]")
    p.add_argument("--output", "-o", choices=("text", "json"), default=None, help="output format [NOETL_OUTPUT]")
    _cluster_options(p)
    p.set_defaults(fn=cmd_submit)

    p = subparsers.add_parser("get", help="list Executions/Playbooks, or show one with its full result")
    p.add_argument("target", nargs="*", metavar="[nex|pb] [NAME]",
                   help="nex (default) or pb, and a name (also nex/NAME)")
    p.add_argument("--output", "-o", choices=("text", "json", "yaml"), default=None,
                   help="output format [NOETL_OUTPUT]")
    _cluster_options(p)
    p.set_defaults(fn=cmd_get)

    p = subparsers.add_parser("cancel", help="stop an Execution (sets spec.cancel)")
    p.add_argument("name", metavar="NAME")
    _cluster_options(p)
    p.set_defaults(fn=cmd_cancel)
