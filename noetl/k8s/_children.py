"""Child playbooks (the ``playbook`` tool) inside a worker or Job process.

In the cluster there are no files next to the parent: ``path``/``name`` of the tool names a
``Playbook`` resource of the Execution's namespace -- by ``metadata.name``, by the annotation
``noetl.io/path`` or by ``noetl.io/name`` (what ``noetl manifest`` writes). The child runs embedded
in this process with the local runner, sharing the worker's runtime (HTTP pool, tools and the
namespace's Secret credentials); grandchildren resolve the same way.
"""

from __future__ import annotations

import uuid
from typing import Any

from noetl.dsl import NAME_ANNOTATION, PATH_ANNOTATION, ParsedPlaybook, k8s_name, validate_document
from noetl.errors import PlaybookError, ToolError
from noetl.k8s._client import KubeClient
from noetl.k8s._errors import ApiError, NotFound
from noetl.k8s._resources import API_VERSION, PLAYBOOKS
from noetl.local import LocalRunner
from noetl.local._runner import MAX_DEPTH
from noetl.worker import WorkerRuntime

__all__ = ["PlaybookResolver", "run_child_playbook"]


class PlaybookResolver:
    """Finds and validates Playbook resources of one namespace for the ``playbook`` tool."""

    def __init__(self, client: KubeClient, namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    async def find(self, ref: dict[str, Any]) -> ParsedPlaybook:
        wanted = str(ref.get("path") or ref.get("name") or "")
        if not wanted:
            raise ToolError("PlaybookError", "the playbook tool needs 'path' or 'name'")
        try:
            obj = await self._lookup(wanted)
        except ApiError as exc:
            raise ToolError("PlaybookUnavailable", f"child playbook '{wanted}': reading Playbooks in namespace "
                                                   f"'{self.namespace}' failed: {exc}") from None
        if obj is None:
            raise ToolError("PlaybookNotFound",
                            f"no playbook '{wanted}' in namespace '{self.namespace}': no Playbook is named "
                            f"'{k8s_name(wanted)}' or annotated {PATH_ANNOTATION} / {NAME_ANNOTATION}: {wanted}; "
                            "apply it there (noetl manifest FILE | kubectl apply -f -)")
        meta = obj.get("metadata") or {}
        document = {"apiVersion": API_VERSION, "kind": "Playbook",
                    "metadata": {"name": meta.get("name"), "annotations": meta.get("annotations") or {}},
                    "spec": obj.get("spec") or {}}
        where = f"Playbook {self.namespace}/{meta.get('name')}"
        try:
            return validate_document(document, file=where)
        except PlaybookError as exc:
            raise ToolError("PlaybookInvalid", f"child playbook {where} is invalid: {exc}") from None

    async def _lookup(self, wanted: str) -> dict[str, Any] | None:
        if k8s_name(wanted) == wanted:
            try:
                return await self.client.get_object(PLAYBOOKS, self.namespace, wanted)
            except NotFound:
                pass
        items, _ = await self.client.list_objects(PLAYBOOKS, self.namespace)
        for by in (PATH_ANNOTATION, NAME_ANNOTATION):
            for obj in items:
                if ((obj.get("metadata") or {}).get("annotations") or {}).get(by) == wanted:
                    return obj
        for obj in items:
            if obj["metadata"]["name"] == k8s_name(wanted):
                return obj
        return None


class _ClusterRunner(LocalRunner):
    """The local runner with child playbooks resolved as Playbook resources (not files)."""

    def __init__(self, parsed: ParsedPlaybook, *, resolver: PlaybookResolver, **kwargs: Any) -> None:
        super().__init__(parsed, **kwargs)
        self.resolver = resolver

    async def _run_child(self, ref: dict[str, Any], args: dict[str, Any]) -> Any:
        return await run_child_playbook(self.resolver, ref, args, parent_id=self.execution_id,
                                        runtime=self._runtime, depth=self._depth)


async def run_child_playbook(resolver: PlaybookResolver, ref: dict[str, Any], args: dict[str, Any], *,
                             parent_id: str, runtime: WorkerRuntime, depth: int = 0) -> Any:
    """Run the child playbook ``ref`` with ``args`` over its workload; its workflow result."""
    if depth + 1 > MAX_DEPTH:
        raise ToolError("PlaybookError", f"child playbooks nested deeper than {MAX_DEPTH} levels")
    parsed = await resolver.find(ref)
    runner = _ClusterRunner(parsed, resolver=resolver, workload=args, runtime=runtime, depth=depth + 1,
                            execution_id=f"{parent_id}.{uuid.uuid4().hex[:6]}")
    summary = await runner.run()
    if summary["status"] != "succeeded":
        err = summary.get("error") or {}
        raise ToolError("PlaybookFailed", f"child playbook '{parsed.playbook.metadata.name}' failed at step "
                                          f"'{err.get('step')}': {err.get('type')}: {err.get('message')}")
    return summary["result"]
