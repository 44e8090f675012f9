"""CustomResourceDefinitions of Playbook and Execution, generated from the contract models.

``noetl crds`` calls :func:`build_crds`; the YAML in ``crds/`` (and the Helm chart's copy) is its
output, checked by a unit test. The pydantic models of ``noetl.k8s._resources`` give the fields,
types and descriptions; a Playbook's steps are described here from the DSL models, because the
DSL accepts shorthands (``next: name``, ``then: {...}``) that pydantic's input schema cannot show.

Two apiserver rules shape everything below:

* The schema must be *structural*: every node has a ``type`` unless it is marked
  ``x-kubernetes-preserve-unknown-fields`` (pydantic's ``anyOf [X, null]`` becomes plain X), and no
  ``$ref``, ``title`` or ``default: null``.
* Whatever the schema does not describe is silently **pruned**. Free-form content (workload,
  tool configs, status maps the operator and workers write) is therefore marked
  preserve-unknown, and the status root too, so a status field added to the operator before the
  CRDs are regenerated survives.

This module never talks to the API; it only builds dicts.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

from noetl.dsl import TOOL_KINDS, Loop, Step
from noetl.k8s import _resources as res

Schema = dict[str, Any]

PRESERVE = "x-kubernetes-preserve-unknown-fields"

#: Descriptions for contract fields whose model declares none (``kubectl explain`` shows every field).
#: Better placed in ``_resources.py``; a field in neither place makes :func:`build_crds` raise.
_FALLBACK_DESCRIPTIONS: dict[str, str] = {
    "Execution.status.observedGeneration": "metadata.generation last acted on by the operator.",
}

_KIND_DESCRIPTIONS = {
    "Playbook": "A NoETL DSL v2 playbook: the workflow an Execution runs. Its spec is the playbook body "
                "(workload, workbook, workflow), exactly as in the file form.",
    "Execution": "One run of a Playbook (referenced or inline), driven by the NoETL operator.",
    "Playbook.spec": "The playbook body: the file form's top-level fields without apiVersion, kind and metadata.",
    "Playbook.status": "Validation outcome, written by the operator.",
    "Execution.spec": "What to run and how. Set exactly one of playbookRef and playbook.",
    "Execution.status": "Progress and outcome, written by the operator; workers only add inbox entries.",
}


# -- pydantic JSON schema -> structural schema ---------------------------------------------------------
def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Inline ``$ref`` and collapse ``anyOf [X, null]`` (optional fields) into X."""
    if "$ref" in node:
        target = dict(defs[node["$ref"].rsplit("/", 1)[-1]])
        if "description" in node:
            target["description"] = node["description"]
        return _resolve(target, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            return _resolve({**options[0], **{k: v for k, v in rest.items() if k == "description"}}, defs)
        return {**rest}  # several real types: free-form (no type), handled below as "any"
    return node


def _structural(node: Schema, defs: dict[str, Schema], *, where: str) -> Schema:
    """The structural form of one (resolved) pydantic schema node; ``where`` names it in errors."""
    node = _resolve(node, defs)
    out: Schema = {}
    kind = node.get("type")
    if kind is not None:
        out["type"] = kind
    if "description" in node:
        out["description"] = node["description"]
    if kind == "object":
        _object_fields(node, defs, out, where=where)
    elif kind == "array":
        items = node.get("items")
        out["items"] = _structural(items, defs, where=f"{where}[]") if items else {PRESERVE: True}
    elif kind is None:
        out[PRESERVE] = True  # Any: any JSON value, kept as written
    for key in ("enum", "minimum", "maximum", "minLength", "maxLength", "pattern"):
        if key in node:
            out[key] = node[key]
    if "const" in node:
        out["enum"] = [node["const"]]
    return out


def _object_fields(node: Schema, defs: dict[str, Schema], out: Schema, *, where: str) -> None:
    props = node.get("properties")
    extra = node.get("additionalProperties")
    if props:
        out["properties"] = {name: _structural(sub, defs, where=f"{where}.{name}") for name, sub in props.items()}
        if node.get("required"):
            out["required"] = list(node["required"])
        if extra is True:
            out[PRESERVE] = True  # model_config extra="allow": fields we do not know yet are kept
    elif isinstance(extra, dict):
        out["additionalProperties"] = _structural(extra, defs, where=f"{where}.*")
    else:
        out[PRESERVE] = True  # dict[str, Any]: free-form map


def model_schema(model: type[BaseModel], *, where: str) -> Schema:
    """Structural schema of a contract model (``where`` is its dotted place, e.g. ``Execution.spec``)."""
    raw = model.model_json_schema(mode="validation")
    schema = _structural(raw, raw.get("$defs", {}), where=where)
    if where in _KIND_DESCRIPTIONS:
        schema["description"] = _KIND_DESCRIPTIONS[where]
    return schema


# -- the playbook body -------------------------------------------------------------------------------
def _field_doc(model: type[BaseModel], name: str, fallback: str) -> str:
    """A DSL model field's own description (as a sentence), so the CRD and the DSL say the same."""
    info = model.model_fields.get(name)
    return _sentence(info.description if info is not None and info.description else fallback)


def _sentence(text: str) -> str:
    """DSL field docs are fragments; the CRD's read as sentences."""
    text = text.strip()
    return text if text.endswith(".") else text + "."


def _free(description: str, type_: str | None = "object") -> Schema:
    """A described node whose content is kept as written."""
    node: Schema = {"description": description, PRESERVE: True}
    if type_:
        node["type"] = type_
    return node


def step_schema() -> Schema:
    """One workflow step. Known fields are typed; unknown ones are kept so the operator's
    validation can report them (with the same messages as ``noetl validate``) instead of the
    apiserver dropping them silently."""
    modes = list(typing.get_args(Loop.model_fields["mode"].annotation))
    return {
        "type": "object",
        "description": "A step: optional tool call, optional loop, case rules and transitions.",
        "required": ["step"],
        PRESERVE: True,
        "properties": {
            "step": {"type": "string", "minLength": 1, "description": _field_doc(Step, "step", "Unique step name")},
            "desc": {"type": "string", "description": "What the step is for (documentation only)."},
            "args": _free("Inputs of the step, rendered when it is activated; templates allowed."),
            "tool": {"type": "object", PRESERVE: True,
                     "description": "The tool to call: kind plus kind-specific fields (endpoint, code, "
                                    "command, task...). Omitted means kind noop.",
                     "properties": {"kind": {"type": "string", "description": "Tool kind: one of "
                                             + ", ".join(sorted(TOOL_KINDS)) + "."}}},
            "loop": {"type": "object", PRESERVE: True, "description": "Run the step once per item of a list.",
                     "required": ["in"],
                     "properties": {
                         "in": {**_free(_field_doc(Loop, "in_", "Expression giving the list of items")
                                        + " A template string or a literal list.", None), "nullable": True},
                         "iterator": {"type": "string",
                                      "description": _field_doc(Loop, "iterator", "Name bound to the current item")},
                         "mode": {"type": "string", "enum": modes,
                                  "description": "sequential (one item after another) or parallel."},
                         "max_in_flight": {"type": "integer", "minimum": 1, "description": _field_doc(
                             Loop, "max_in_flight", "Parallel items running at once")},
                     }},
            "case": {"type": "array", "description": "Rules {when, then} evaluated on the step's events.",
                     "items": _free("One rule: when (condition) and then (a map or list of action maps).")},
            "next": _free("Transitions after the step: a step name, a {step, args} map, or a list of those.", None),
        },
    }


def playbook_body_schema(*, where: str) -> Schema:
    """The playbook body: Playbook.spec and an Execution's inline spec.playbook."""
    schema = model_schema(res.PlaybookSpec, where=where)
    props = schema["properties"]
    props["workflow"]["items"] = step_schema()
    props["workflow"]["minItems"] = 1
    props["workbook"]["items"] = {
        "type": "object", PRESERVE: True, "required": ["name"],
        "description": "A named tool config, called by steps with tool {kind: workbook, task: NAME}.",
        "properties": {"name": {"type": "string", "description": "Name steps use as task."},
                       "tool": _free("The tool config (kind plus kind-specific fields).")},
    }
    return schema


# -- the CRDs --------------------------------------------------------------------------------------
def _check_described(node: Schema, where: str) -> None:
    """Every field carries a description (``kubectl explain``); fail generation otherwise."""
    for name, sub in (node.get("properties") or {}).items():
        here = f"{where}.{name}"
        if not sub.get("description"):
            if here not in _FALLBACK_DESCRIPTIONS:
                raise ValueError(f"{here} has no description: add Field(description=...) in "
                                 "noetl/k8s/_resources.py, then run `noetl crds --output-dir crds`")
            sub["description"] = _FALLBACK_DESCRIPTIONS[here]
        _check_described(sub, here)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _check_described(node[key], where)


def _crd(*, kind: str, plural: str, short: str, spec: Schema, status: Schema,
         columns: list[dict[str, Any]], validations: list[dict[str, str]] | None = None) -> dict[str, Any]:
    for part, schema in (("spec", spec), ("status", status)):
        _check_described(schema, f"{kind}.{part}")
    if validations:
        spec["x-kubernetes-validations"] = validations
    # Whatever else lands in status is kept: kopf's own progress (status.kopf) and fields a newer
    # operator writes before the CRDs are upgraded. Pruning them would lose state silently.
    status[PRESERVE] = True
    root: Schema = {
        "type": "object",
        "description": _KIND_DESCRIPTIONS[kind],
        "required": ["spec"],
        "properties": {"spec": spec, "status": status},
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{res.GROUP}", "labels": {res.LABEL_PART_OF: "noetl"}},
        "spec": {
            "group": res.GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower(),
                      "shortNames": [short], "categories": ["noetl"]},
            "versions": [{
                "name": res.VERSION, "served": True, "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": root},
            }],
        },
    }


def _column(name: str, path: str, type_: str = "string", description: str = "") -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
    if description:
        col["description"] = description
    return col


_AGE = _column("Age", ".metadata.creationTimestamp", "date")


def playbook_crd() -> dict[str, Any]:
    return _crd(kind="Playbook", plural=res.PLAYBOOKS, short="pb",
                spec=playbook_body_schema(where="Playbook.spec"),
                status=model_schema(res.PlaybookStatus, where="Playbook.status"),
                columns=[_column("Phase", ".status.phase", description="Ready or Invalid"),
                         _column("Steps", ".status.steps", "integer", "Number of steps"), _AGE])


def execution_crd() -> dict[str, Any]:
    spec = model_schema(res.ExecutionSpec, where="Execution.spec")
    inline = playbook_body_schema(where="Execution.spec.playbook")
    inline["description"] = spec["properties"]["playbook"]["description"]
    spec["properties"]["playbook"] = inline
    status = model_schema(res.ExecutionStatus, where="Execution.status")
    status["properties"]["result"]["nullable"] = True  # a workflow may well return null
    one_of = [{"rule": "has(self.playbookRef) != has(self.playbook)",
               "message": "set exactly one of spec.playbookRef (a Playbook's name) and spec.playbook (an inline body)"}]
    return _crd(kind="Execution", plural=res.EXECUTIONS, short="nex", spec=spec, status=status, validations=one_of,
                columns=[_column("Playbook", ".spec.playbookRef.name", description="The Playbook run"),
                         _column("Phase", ".status.phase", description="Where the execution is in its life"),
                         _column("Progress", ".status.progress", description="Steps done/total"),
                         _AGE,
                         _column("Duration", ".status.duration", description="Run time once finished")])


def build_crds() -> list[dict[str, Any]]:
    """Both CRDs, Playbook first (an Execution refers to a Playbook)."""
    return [playbook_crd(), execution_crd()]


def crd_filename(crd: dict[str, Any]) -> str:
    """``<plural>.<group>.yaml``, the name under ``crds/`` and the chart's ``crds/``."""
    return f"{crd['metadata']['name']}.yaml"


HEADER = "# Generated by `noetl crds --output-dir crds` from noetl/k8s/_resources.py; do not edit.\n"


_FIRST_KEYS = ("name", "type", "description", "required")


def _ordered(value: Any) -> Any:
    """Schema nodes with type and description first, so the YAML reads top-down."""
    if isinstance(value, dict):
        keys = [k for k in _FIRST_KEYS if k in value] + [k for k in value if k not in _FIRST_KEYS]
        return {k: _ordered(value[k]) for k in keys}
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return value


def render_crd(crd: dict[str, Any]) -> str:
    """The YAML text of one CRD file, exactly as committed."""
    import yaml

    return HEADER + yaml.safe_dump(_ordered(crd), sort_keys=False, allow_unicode=True, width=100)
