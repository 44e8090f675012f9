"""An async facade over the official ``kubernetes`` client: plain dicts in, plain dicts out.

Who uses it: the operator, the worker and Job processes, the CLI. Everything that talks to the API
goes through one ``KubeClient``; nothing else imports ``kubernetes``.

How: the sync client's ``ApiClient`` does auth (token refresh), TLS and pooling; we build URLs from
``_kinds`` and send/receive JSON ourselves -- no model classes, no per-call validation, so a
status patch costs one ``json.dumps`` and one ``json.loads``. Calls run in the facade's own thread
pool (``pool_size`` threads, as many pooled connections): the default executor of asyncio has only
``cpu + 4`` threads, which would cap a worker's patch rate on a small node. Watches get a thread
each (``_watching``). Errors come out as ``ApiError`` subclasses (``_errors``), never as
``ApiException`` or urllib3 exceptions.

It never retries on its own: callers decide (a guarded status patch must be re-read and redone,
a worker's inbox patch may simply be repeated).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import functools
import json
from typing import Any, Callable, Iterable, Mapping, TypeVar

import urllib3
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from noetl.errors import cap
from noetl.k8s._config import load_configuration
from noetl.k8s._errors import ApiError, Conflict, NotFound, api_error
from noetl.k8s._kinds import kind_of
from noetl.k8s._watching import WatchStream

__all__ = ["KubeClient", "json_pointer", "micro_time", "owner_reference", "rfc3339"]

Obj = dict[str, Any]
T = TypeVar("T")

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
#: Connect and read timeouts of ordinary calls: an unreachable or stuck apiserver must not hold a
#: thread for ever; the read timeout is long enough for a large list on a busy server.
CALL_TIMEOUT = (10.0, 60.0)
#: Longest Event message (the API accepts more; people read these in ``kubectl describe``).
EVENT_MESSAGE_CHARS = 1024
#: Page size of lists: bounded memory per request on big clusters, few round trips on small ones.
LIST_PAGE = 500


def rfc3339(when: datetime.datetime | None = None) -> str:
    """``2026-01-02T15:04:05Z``: the API's ``Time`` (seconds)."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(when: datetime.datetime | None = None) -> str:
    """``2026-01-02T15:04:05.123456Z``: the API's ``MicroTime`` (Lease renewTime, Event eventTime)."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def json_pointer(*parts: str) -> str:
    """``/a/b~1c`` from ``("a", "b/c")``: RFC 6901 escaping of ``~`` and ``/``."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def owner_reference(obj: Mapping[str, Any]) -> Obj:
    """An ownerReference to ``obj`` that makes it the controller (garbage collection deletes ours
    with it; ``blockOwnerDeletion`` keeps foreground deletion waiting for ours)."""
    meta = obj.get("metadata") or {}
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


class KubeClient:
    """Async access to the objects noetl uses. Create with ``from_env``; ``await aclose()`` when done."""

    def __init__(self, configuration: k8s_client.Configuration, *, pool_size: int = 16) -> None:
        self._api = k8s_client.ApiClient(configuration)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=pool_size,
                                                               thread_name_prefix="noetl-kube")
        self._watches: set[WatchStream] = set()
        self._closed = False
        self.host: str = str(configuration.host)

    @classmethod
    def from_env(cls, kubeconfig: str | None = None, *, pool_size: int = 16) -> "KubeClient":
        """In-cluster config in a pod (``KUBERNETES_SERVICE_HOST`` set), else ``kubeconfig``/``KUBECONFIG``.

        An explicit ``kubeconfig`` always wins. ``pool_size`` bounds concurrent calls (threads and
        pooled connections alike).
        """
        return cls(load_configuration(kubeconfig, pool_size=pool_size), pool_size=pool_size)

    async def aclose(self) -> None:
        """Stop every watch, wait for running calls, close the connection pool. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for watch in list(self._watches):
            await watch.aclose()
        await asyncio.to_thread(self._executor.shutdown, True)
        self._api.close()  # type: ignore[no-untyped-call]

    async def __aenter__(self) -> "KubeClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the one request path ----------------------------------------------------------------------
    def _open(self, method: str, path: str, *, query: Iterable[tuple[str, Any]] = (), body: Any = None,
              content_type: str = "application/json", timeout: Any = CALL_TIMEOUT) -> Any:
        """Send one request (sync, in a worker thread); the open urllib3 response on 2xx."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = [(k, v) for k, v in query if v is not None]
        method, url, headers, _, _ = self._api.param_serialize(
            method=method, resource_path=path, query_params=params, header_params=headers,
            auth_settings=["BearerToken"])
        try:
            resp = self._api.call_api(method, url, header_params=headers, body=body, _request_timeout=timeout)
        except ApiException as exc:  # TLS problems surface this way, with status 0
            raise ApiError(int(exc.status or 0), "ConnectionError", str(exc.reason or exc)) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiError(0, type(exc).__name__, f"{method} {path}: {exc}") from None
        raw = resp.response
        if 200 <= resp.status < 300:
            return raw
        try:
            data = raw.data
        finally:
            raw.release_conn()
        raise api_error(int(resp.status), str(resp.reason or ""), data)

    def _request_sync(self, method: str, path: str, **kwargs: Any) -> Any:
        raw = self._open(method, path, **kwargs)
        try:
            data = raw.data
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiError(0, type(exc).__name__, f"{method} {path}: reading the answer failed: {exc}") from None
        finally:
            raw.release_conn()
        return json.loads(data) if data else None

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise RuntimeError("KubeClient is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn)

    async def request(self, method: str, path: str, *, query: Iterable[tuple[str, Any]] = (), body: Any = None,
                      content_type: str = "application/json") -> Any:
        """Any API call: ``path`` is the URL path (``/api/v1/...``); the answer's JSON."""
        return await self._run(functools.partial(self._request_sync, method, path, query=list(query), body=body,
                                                 content_type=content_type))

    # -- generic objects ---------------------------------------------------------------------------
    async def get_object(self, kind: str, ns: str | None, name: str) -> Obj:
        """One object; NotFound when absent. ``kind`` is a plural (``executions``, ``playbooks``, ...)."""
        result: Obj = await self.request("GET", kind_of(kind).path(ns, name))
        return result

    async def list_objects(self, kind: str, ns: str | None, label_selector: str | None = None
                           ) -> tuple[list[Obj], str]:
        """All objects (of a namespace, or everywhere when ``ns`` is None) and the list's resourceVersion.

        Items get ``apiVersion`` and ``kind`` filled in (lists omit them for built-in kinds), so
        they can be passed to ``owner_reference`` and ``post_event`` as they are.
        """
        path = kind_of(kind).path(ns)
        items: list[Obj] = []
        token: str | None = None
        version = ""
        while True:
            page: Obj = await self.request("GET", path, query=[("labelSelector", label_selector),
                                                               ("limit", LIST_PAGE), ("continue", token)])
            api_version = page.get("apiVersion", "")
            item_kind = str(page.get("kind", "")).removesuffix("List")
            for item in page.get("items") or []:
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", item_kind)
                items.append(item)
            meta = page.get("metadata") or {}
            version = str(meta.get("resourceVersion") or version)
            token = meta.get("continue") or None
            if not token:
                return items, version

    def watch_objects(self, kind: str, ns: str | None, resource_version: str | None = None, *,
                      timeout_seconds: int = 300, label_selector: str | None = None,
                      bookmarks: bool = False) -> WatchStream:
        """Changes after ``resource_version``: ``async for type, obj in client.watch_objects(...)``.

        Ends after ``timeout_seconds`` (the server closes it; watch again from the last
        resourceVersion seen) or on ``aclose()``. Raises ``Gone`` when the version is too old.
        With ``bookmarks`` the server also sends ``BOOKMARK`` events carrying only a newer version.
        """
        if self._closed:
            raise RuntimeError("KubeClient is closed")
        path = kind_of(kind).path(ns)
        query = [("watch", "true"), ("resourceVersion", resource_version), ("timeoutSeconds", timeout_seconds),
                 ("labelSelector", label_selector), ("allowWatchBookmarks", "true" if bookmarks else None)]
        # The read timeout only catches a dead connection: the server closes the watch itself.
        opener = functools.partial(self._open, "GET", path, query=query, timeout=(10.0, timeout_seconds + 60.0))
        stream = WatchStream(opener, loop=asyncio.get_running_loop(), name=f"{kind}-{ns or 'all'}",
                             on_close=self._watches.discard)
        self._watches.add(stream)
        return stream

    async def patch_object(self, kind: str, ns: str | None, name: str, patch: Obj) -> Obj:
        """JSON merge patch of the main resource (spec, metadata)."""
        result: Obj = await self.request("PATCH", kind_of(kind).path(ns, name), body=patch, content_type=MERGE_PATCH)
        return result

    async def patch_status(self, kind: str, ns: str, name: str, patch: Obj,
                           resource_version: str | None = None) -> Obj:
        """JSON merge patch of the ``/status`` subresource; the updated object.

        ``patch`` is the object fragment, e.g. ``{"status": {"inbox": {id: event}}}``. With
        ``resource_version`` the write only succeeds on that version (``Conflict`` otherwise): the
        operator's guarded write of engine state. Without it, merge patches of distinct keys from
        many writers all land.
        """
        if resource_version is not None:
            patch = {**patch, "metadata": {**(patch.get("metadata") or {}), "resourceVersion": resource_version}}
        result: Obj = await self.request("PATCH", kind_of(kind).path(ns, name, "status"), body=patch,
                                         content_type=MERGE_PATCH)
        return result

    async def json_patch_status(self, kind: str, ns: str, name: str, operations: list[Obj],
                                resource_version: str | None = None) -> Obj:
        """RFC 6902 JSON patch of the ``/status`` subresource (a list of ``{op, path, value}``).

        Why besides the merge patch: a merge patch deletes every key whose value is ``null``, at any
        depth of a new value, so ``{"inbox": {id: {"response": {"a": None}}}}`` would lose ``a``.
        ``add``/``replace`` operations store their values exactly. Paths are JSON pointers
        (``json_pointer``). ``resource_version`` guards the write as in ``patch_status`` (``Conflict``).
        """
        if resource_version is not None:
            operations = [{"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version},
                          *operations]
        result: Obj = await self.request("PATCH", kind_of(kind).path(ns, name, "status"), body=operations,
                                         content_type=JSON_PATCH)
        return result

    async def delete_object(self, kind: str, ns: str | None, name: str, *, propagation: str = "Background",
                            missing_ok: bool = True) -> None:
        """Delete one object (its dependents by ``propagation``); absent is fine unless ``missing_ok`` is False."""
        try:
            await self.request("DELETE", kind_of(kind).path(ns, name), query=[("propagationPolicy", propagation)])
        except NotFound:
            if not missing_ok:
                raise

    async def create_object(self, kind: str, ns: str | None, body: Obj) -> Obj:
        """Create an object; ``Conflict`` when the name is taken."""
        result: Obj = await self.request("POST", kind_of(kind).path(ns), body=body)
        return result

    # -- Jobs --------------------------------------------------------------------------------------
    async def create_job(self, ns: str, body: Obj) -> Obj:
        """Create a batch/v1 Job (``Conflict`` when one of that name exists)."""
        return await self.create_object("jobs", ns, {"apiVersion": "batch/v1", "kind": "Job", **body})

    async def delete_job(self, ns: str, name: str, propagation: str = "Background") -> None:
        """Delete a Job and (by default in the background) its pods; absent is fine."""
        await self.delete_object("jobs", ns, name, propagation=propagation)

    async def list_jobs(self, ns: str, label_selector: str | None = None) -> tuple[list[Obj], str]:
        """Jobs of ``ns`` and the list's resourceVersion (as ``list_objects``)."""
        return await self.list_objects("jobs", ns, label_selector)

    async def get_job(self, ns: str, name: str) -> Obj:
        return await self.get_object("jobs", ns, name)

    # -- ConfigMaps --------------------------------------------------------------------------------
    async def get_configmap(self, ns: str, name: str) -> Obj:
        return await self.get_object("configmaps", ns, name)

    async def put_configmap(self, ns: str, name: str, data: Mapping[str, str] | None = None, *,
                            binary_data: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None,
                            annotations: Mapping[str, str] | None = None, owner: Mapping[str, Any] | None = None
                            ) -> Obj:
        """Create the ConfigMap, or replace it when it exists (last writer wins).

        ``binary_data`` values are base64 text (the API's encoding). ``owner`` is the owning object
        (or an ownerReference): deleting it deletes the ConfigMap.
        """
        meta: Obj = {"name": name, "namespace": ns}
        if labels:
            meta["labels"] = dict(labels)
        if annotations:
            meta["annotations"] = dict(annotations)
        if owner is not None:
            meta["ownerReferences"] = [owner_reference(owner) if "metadata" in owner else dict(owner)]
        body: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}
        if data is not None:
            body["data"] = dict(data)
        if binary_data is not None:
            body["binaryData"] = dict(binary_data)
        try:
            return await self.create_object("configmaps", ns, body)
        except Conflict:
            # PUT without resourceVersion is an unconditional replace: what we want for a blob.
            result: Obj = await self.request("PUT", kind_of("configmaps").path(ns, name), body=body)
            return result

    async def delete_configmaps(self, ns: str, label_selector: str) -> None:
        """Delete every ConfigMap of ``ns`` matching ``label_selector`` (one deletecollection call)."""
        if not label_selector:
            raise ValueError("delete_configmaps needs a label selector (refusing to delete them all)")
        await self.request("DELETE", kind_of("configmaps").path(ns), query=[("labelSelector", label_selector)])

    # -- Leases ------------------------------------------------------------------------------------
    async def list_leases(self, ns: str, label_selector: str | None = None) -> tuple[list[Obj], str]:
        """Leases of ``ns`` and the list's resourceVersion (as ``list_objects``)."""
        return await self.list_objects("leases", ns, label_selector)

    async def get_lease(self, ns: str, name: str) -> Obj:
        return await self.get_object("leases", ns, name)

    async def create_or_renew_lease(self, ns: str, name: str, holder: str, duration_seconds: int,
                                    labels: Mapping[str, str] | None = None,
                                    owner: Mapping[str, Any] | None = None) -> Obj:
        """Renew ``name`` for ``holder`` (one merge patch), creating it the first time.

        Renewal comes first because it is what happens every few seconds; creation once per
        process. ``renewTime`` is a MicroTime, as the coordination API requires.
        """
        now = micro_time()
        spec = {"holderIdentity": holder, "leaseDurationSeconds": duration_seconds, "renewTime": now}
        try:
            return await self.patch_object("leases", ns, name, {"spec": spec})
        except NotFound:
            pass
        body: Obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": name, "namespace": ns, "labels": dict(labels or {})},
                     "spec": {**spec, "acquireTime": now}}
        if owner is not None:  # e.g. the worker's pod: garbage collection removes a Lease left behind
            body["metadata"]["ownerReferences"] = [dict(owner)]
        try:
            return await self.create_object("leases", ns, body)
        except Conflict:  # created meanwhile (a restarted process with the same identity): renew it
            return await self.patch_object("leases", ns, name, {"spec": spec})

    async def delete_lease(self, ns: str, name: str) -> None:
        await self.delete_object("leases", ns, name)

    # -- Secrets -----------------------------------------------------------------------------------
    async def list_secrets(self, ns: str, label_selector: str | None = None) -> tuple[list[Obj], str]:
        """Secrets of ``ns`` and the list's resourceVersion (as ``list_objects``)."""
        return await self.list_objects("secrets", ns, label_selector)

    async def get_secret(self, ns: str, name: str) -> Obj:
        return await self.get_object("secrets", ns, name)

    # -- Events ------------------------------------------------------------------------------------
    async def post_event(self, obj: Mapping[str, Any], *, reason: str, message: str, type: str = "Normal",
                         component: str = "noetl-operator") -> Obj:
        """Record a core/v1 Event about ``obj`` (shown by ``kubectl describe``); message capped at 1024."""
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        now = rfc3339()
        body: Obj = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'object')}.", "namespace": ns},
            "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta.get("name"),
                               "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                               "resourceVersion": meta.get("resourceVersion")},
            "reason": str(reason), "message": cap(message, EVENT_MESSAGE_CHARS), "type": type,
            "source": {"component": component}, "reportingComponent": component,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        return await self.create_object("events", ns, body)
