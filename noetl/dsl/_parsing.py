"""Read playbook YAML into a validated ``Playbook``, keeping line numbers for error messages.

Who calls it: the CLI (`validate`, `run`, `manifest`), the local runner, the operator.
What it must never do: render templates or touch the network; it only reads and checks text.
"""

from __future__ import annotations

import dataclasses
import difflib
import json

from pathlib import Path
from typing import Any, Iterator

import pydantic
import yaml

from noetl.dsl._yaml import Loader
from noetl.dsl._models import END, START, TOOL_KINDS, Playbook, Step, WorkbookEntry
from noetl.errors import PlaybookInvalid, PlaybookSyntaxError, Problem
from noetl.templating import check_syntax, is_template

PathKey = tuple[str | int, ...]


_KNOWN_TOP = {"apiVersion", "kind", "metadata", "workload", "workbook", "workflow", "keychain", "spec", "status"}
_KNOWN_STEP = {"step", "desc", "args", "tool", "loop", "case", "next"}
_KNOWN_THEN = {"set", "collect", "result", "sink", "call", "retry", "next", "skip", "fail"}
_KNOWN_LOOP = {"in", "iterator", "mode", "max_in_flight"}
#: Annotation carrying the file form's `metadata.path` in the resource form.
PATH_ANNOTATION = "noetl.io/path"
#: Annotation keeping the file form's `metadata.name` when it is not a valid Kubernetes name.
NAME_ANNOTATION = "noetl.io/name"


@dataclasses.dataclass(frozen=True)
class ParsedPlaybook:
    """A valid playbook plus what the reader learnt on the way (warnings, source location)."""

    playbook: Playbook
    file: str
    warnings: list[Problem]
    form: str  # "file" or "resource"
    body: dict[str, Any]  # the file-form document as written (templates and shorthands untouched)

    @property
    def directory(self) -> Path | None:
        return Path(self.file).parent if self.file and not self.file.startswith("<") else None


class _LineMap:
    """Line numbers (1-based) of every mapping key and sequence item of a YAML document."""

    def __init__(self, node: yaml.Node | None) -> None:
        self.lines: dict[PathKey, int] = {}
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: PathKey) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                k = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
                self.lines[path + (k,)] = key.start_mark.line + 1
                self._walk(value, path + (k,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, path + (i,))

    def line(self, path: PathKey) -> int | None:
        """Line of ``path`` or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def load_yaml(text: str, file: str) -> tuple[Any, _LineMap]:
    """Parse one YAML document; syntax errors become a located PlaybookSyntaxError."""
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        # When a construct is left open ("while parsing a flow mapping"), the problem mark is often the
        # end of the file; the line where the construct starts is where the fix goes.
        mark = exc.context_mark or exc.problem_mark
        line = mark.line + 1 if mark else None
        msg = f"malformed YAML: {exc.problem or exc}"
        if exc.context:
            msg += f" ({exc.context} started here)"
        if exc.problem_mark and exc.context_mark and exc.problem_mark.line != exc.context_mark.line:
            msg += f"; noticed at line {exc.problem_mark.line + 1}"
        raise PlaybookSyntaxError(Problem(msg, file=file, line=line)) from None
    except yaml.YAMLError as exc:
        raise PlaybookSyntaxError(Problem(f"malformed YAML: {exc}", file=file)) from None
    except RecursionError:
        raise PlaybookSyntaxError(Problem("malformed YAML: nested too deeply (or a recursive alias such as "
                                          "`x: &a [*a]`)", file=file)) from None
    finally:
        loader.dispose()
    try:
        json.dumps(data)
    except (ValueError, RecursionError):  # recursive aliases build self-referencing lists
        raise PlaybookSyntaxError(Problem("malformed YAML: a recursive alias (such as `x: &a [*a]`) or "
                                          "nesting too deep for JSON", file=file)) from None
    return data, _LineMap(node)


def parse_playbook(text: str, *, file: str = "<playbook>") -> ParsedPlaybook:
    """Parse and validate playbook text (either form). Raises PlaybookError with every problem."""
    data, lines = load_yaml(text, file)
    return validate_document(data, file=file, lines=lines)


def load_playbook(path: str | Path) -> ParsedPlaybook:
    """Read and validate a playbook file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookSyntaxError(Problem(f"cannot read file: {exc.strerror}", file=str(path))) from None
    except UnicodeDecodeError as exc:
        raise PlaybookSyntaxError(Problem(f"not UTF-8 text (byte {exc.start}): is this a playbook?",
                                          file=str(path))) from None
    return parse_playbook(text, file=str(path))


def validate_document(data: Any, *, file: str = "<playbook>", lines: _LineMap | None = None) -> ParsedPlaybook:
    """Validate an already-loaded document (dict); used for Kubernetes objects too."""
    lines = lines or _LineMap(None)
    if not isinstance(data, dict):
        raise PlaybookInvalid([Problem("a playbook must be a YAML mapping with apiVersion, kind, metadata "
                                       "and workflow", file=file, line=lines.line(()))])
    body, prefix, form = _body(data)
    checker = _Checker(file=file, lines=lines, prefix=prefix, raw=body)
    checker.check_raw()
    playbook: Playbook | None = None
    if isinstance(body.get("workflow"), list):
        try:
            playbook = Playbook.model_validate(body)
        except pydantic.ValidationError as exc:
            checker.add_pydantic(exc)
    if playbook is not None:
        checker.check_model(list(enumerate(playbook.workflow)), list(enumerate(playbook.workbook)))
    else:
        checker.check_model(*_partial(body))
    if checker.errors or playbook is None:
        raise PlaybookInvalid(sorted(checker.problems, key=lambda p: (p.line or 0)))
    return ParsedPlaybook(playbook=playbook, file=file, warnings=checker.warnings, form=form, body=body)


def _body(data: dict[str, Any]) -> tuple[dict[str, Any], PathKey, str]:
    """Return the file-form body of either document form, and the path prefix of its fields."""
    spec = data.get("spec")
    if isinstance(spec, dict) and "workflow" not in data:
        meta = dict(data.get("metadata") or {})
        annotations = meta.get("annotations") or {}
        body = {
            "apiVersion": data.get("apiVersion", "noetl.io/v2"),
            "kind": data.get("kind", "Playbook"),
            "metadata": {
                "name": annotations.get(NAME_ANNOTATION) or meta.get("name"),
                "path": annotations.get(PATH_ANNOTATION) or spec.get("path"),
                "version": annotations.get("noetl.io/version"),
                "description": annotations.get("noetl.io/description"),
            },
            **{k: v for k, v in spec.items() if k not in ("path",)},
        }
        return body, ("spec",), "resource"
    return data, (), "file"


class _Checker:
    """Collects problems with their locations. One instance per document."""

    def __init__(self, *, file: str, lines: _LineMap, prefix: PathKey, raw: dict[str, Any]) -> None:
        self.file, self._lines, self._prefix, self.raw = file, lines, prefix, raw
        self.problems: list[Problem] = []
        self._reported: list[PathKey] = []  # paths with an error already (no second message below them)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def _line(self, path: PathKey) -> int | None:
        # metadata lives outside spec in the resource form
        if path and path[0] == "metadata":
            return self._lines.line(path)
        return self._lines.line(self._prefix + path)

    def _step_name(self, path: PathKey) -> str | None:
        if len(path) >= 2 and path[0] == "workflow" and isinstance(path[1], int):
            steps = self.raw.get("workflow")
            if isinstance(steps, list) and path[1] < len(steps) and isinstance(steps[path[1]], dict):
                name = steps[path[1]].get("step")
                return str(name) if name is not None else f"#{path[1] + 1}"
        return None

    def add(self, message: str, path: PathKey = (), *, field: str | None = None, warning: bool = False) -> None:
        if field is None and path:
            rest = path[2:] if self._step_name(path) else path
            field = _dotted(rest) or None
        self.problems.append(Problem(message, file=self.file, line=self._line(path), step=self._step_name(path),
                                     field=field or None, severity="warning" if warning else "error"))
        if not warning:
            self._reported.append(path)

    # -- before the model: shape and DSL v1 leftovers -------------------------------------------
    def check_raw(self) -> None:
        raw = self.raw
        for key in raw:
            if key not in _KNOWN_TOP:
                self.add(f"unknown top-level key '{key}' is ignored", (key,), field="", warning=True)
        if raw.get("apiVersion") not in (None, "noetl.io/v2"):
            self.add(f"apiVersion '{raw.get('apiVersion')}' is not supported; write apiVersion: noetl.io/v2",
                     ("apiVersion",))
        steps = raw.get("workflow")
        if steps is None:
            self.add("missing 'workflow': a playbook needs a list of steps starting with a step named 'start'",
                     ())
            return
        if not isinstance(steps, list):
            self.add("'workflow' must be a list of steps", ("workflow",))
            return
        for i, step in enumerate(steps):
            path: PathKey = ("workflow", i)
            if not isinstance(step, dict):
                self.add("each workflow entry must be a mapping with at least 'step: <name>'", path)
                continue
            if "type" in step:
                self.add(f"DSL v1 'type: {step['type']}' is not supported; write tool: {{kind: {step['type']}}}",
                         path + ("type",))
            if "with" in step:
                self.add("DSL v1 step-level 'with' is not supported; pass data with 'args' "
                         "(and in the target step read it as {{ args.<name> }})", path + ("with",))
            for key in step:
                if key not in _KNOWN_STEP | {"type", "with"}:
                    self.add(f"unknown key '{key}' is ignored", path + (key,), warning=True)
            nxt = step.get("next")
            for j, target in enumerate(nxt if isinstance(nxt, list) else [nxt] if isinstance(nxt, dict) else []):
                if isinstance(target, dict) and {"when", "then", "else"} & set(target):
                    self.add("DSL v1 conditional 'next' (when/then/else) is not supported; move the condition "
                             "into 'case: [{when: ..., then: {next: [{step: ...}]}}]'", path + ("next", j))
            case = step.get("case")
            if case is not None and not isinstance(case, list):
                self.add("'case' must be a list of {when, then} rules", path + ("case",))
            for j, rule in enumerate(case if isinstance(case, list) else []):
                if not isinstance(rule, dict):
                    continue
                thens = rule.get("then")
                for k, then in enumerate(thens if isinstance(thens, list) else [thens]):
                    tpath = path + ("case", j, "then") + ((k,) if isinstance(thens, list) else ())
                    if not isinstance(then, dict):
                        continue
                    if "call" in then and "retry" in then:
                        self.add("'call' and 'retry' cannot be in the same 'then' map; put them in separate "
                                 "case rules", tpath)
                    for key in then:
                        if key not in _KNOWN_THEN:
                            self.add(f"unknown action '{key}' is ignored", tpath + (key,), warning=True)
            loop = step.get("loop")
            if loop is not None:
                if not isinstance(loop, dict) or "in" not in loop:
                    self.add("malformed loop: write loop: {in: '{{ <list> }}', iterator: <name>}", path + ("loop",))
                else:
                    for key in loop:
                        if key not in _KNOWN_LOOP:
                            self.add(f"unknown loop key '{key}' is ignored", path + ("loop", key), warning=True)

    def add_pydantic(self, exc: pydantic.ValidationError) -> None:
        for err in exc.errors():
            loc = tuple(err["loc"])
            # pydantic reports aliases and the internal `in_`/`from_`; map back to the YAML spelling
            path = tuple({"in_": "in", "from_": "from"}.get(p, p) if isinstance(p, str) else p for p in loc)
            if any(path[: len(r)] == r for r in self._reported if r):
                continue
            msg = err["msg"]
            if err["type"] == "missing":
                msg = "required field is missing"
            elif err["type"] == "literal_error" and path == ("kind",):
                msg = "kind must be 'Playbook'"
            self.add(msg, path)

    # -- after the model: references and templates ---------------------------------------------
    def check_model(self, steps: list[tuple[int, Step]], workbook_entries: list[tuple[int, WorkbookEntry]]) -> None:
        """Cross-references and templates. ``steps`` may be partial (those that parsed on their own),
        so one run reports every problem, not one kind per attempt."""
        workflow = self.raw.get("workflow")
        raw_steps: list[Any] = workflow if isinstance(workflow, list) else []
        seen: dict[str, int] = {}
        for i, raw in enumerate(raw_steps):
            name = raw.get("step") if isinstance(raw, dict) else None
            if not isinstance(name, str):
                continue
            if name in seen:
                self.add(f"duplicate step name '{name}' (first defined as step #{seen[name] + 1}); "
                         "step names must be unique", ("workflow", i, "step"))
            seen.setdefault(name, i)
        if START not in seen:
            self.add("no step named 'start': the workflow begins at the step named 'start'", ("workflow",))
        names = set(seen)
        workbook = {w.name for _, w in workbook_entries}
        for i, step in steps:
            path: PathKey = ("workflow", i)
            self._check_tool(step.tool, path + ("tool",), workbook)
            for j, t in enumerate(step.next):
                if t.step not in names and t.step != END:
                    self.add(f"next target '{t.step}' is not a step{_suggest(t.step, names, 'steps')}",
                             path + ("next", j))
            for j, rule in enumerate(step.case):
                for k, then in enumerate(rule.then):
                    tpath = path + ("case", j, "then", k)
                    for t in then.next or []:
                        if t.step not in names and t.step != END:
                            self.add(f"next target '{t.step}' is not a step{_suggest(t.step, names, 'steps')}",
                                     tpath + ("next",))
                    if then.sink is not None:
                        self._check_tool(then.sink.tool, tpath + ("sink", "tool"), workbook)
        parsed = {i for i, _ in steps}
        for i, raw in enumerate(raw_steps):  # steps that failed schema checks still get their tool checked
            if i not in parsed and isinstance(raw, dict) and isinstance(raw.get("tool"), dict):
                self._check_tool(raw["tool"], ("workflow", i, "tool"), workbook)
        for i, entry in workbook_entries:
            if entry.tool.get("kind") == "workbook":
                self.add("a workbook entry cannot itself be a workbook task; give it the tool it runs "
                         "(http, python, ...)", ("workbook", i, "tool", "kind"))
                continue
            self._check_tool(entry.tool, ("workbook", i, "tool"), workbook)
        self._check_templates(self.raw, ())

    def _check_tool(self, tool: dict[str, Any], path: PathKey, workbook: set[str]) -> None:
        kind = tool.get("kind")
        if kind not in TOOL_KINDS:
            self.add(f"unknown tool kind '{kind}'; use one of: {', '.join(sorted(TOOL_KINDS))}", path + ("kind",))
        if kind == "workbook":
            task = tool.get("task") or tool.get("name")
            if not task:
                self.add("a workbook tool needs 'task: <workbook entry name>'", path)
            elif not is_template(task) and task not in workbook:
                self.add(f"workbook task '{task}' is not defined in 'workbook'{_suggest(str(task), workbook, 'tasks')}",
                         path + ("task",))
        if kind == "playbook" and not (tool.get("path") or tool.get("name")):
            self.add("a playbook tool needs 'path' (file or metadata.path) or 'name'", path)

    def _check_templates(self, value: Any, path: PathKey) -> None:
        for p, text in _strings(value, path):
            if p and p[-1] == "code":  # python source is not a template
                continue
            if is_template(text):
                error = check_syntax(text)
                if error:
                    self.add(error, p)
        # `when` without braces is still an expression
        workflow = self.raw.get("workflow")
        for i, step in enumerate(workflow if isinstance(workflow, list) else []):
            case = step.get("case") if isinstance(step, dict) else None
            for j, rule in enumerate(case if isinstance(case, list) else []):
                when = rule.get("when") if isinstance(rule, dict) else None
                if isinstance(when, str) and not is_template(when):
                    error = check_syntax("{{ " + when + " }}")
                    if error:
                        self.add(error, ("workflow", i, "case", j, "when"))


def _strings(value: Any, path: PathKey) -> Iterator[tuple[PathKey, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, path + (str(k),))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, path + (i,))


def _dotted(path: PathKey) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _suggest(name: str, names: set[str], what: str) -> str:
    close = difflib.get_close_matches(name, sorted(names), n=1)
    return f"; did you mean '{close[0]}'?" if close else f"; known {what}: {', '.join(sorted(names)) or 'none'}"


def _partial(body: dict[str, Any]) -> tuple[list[tuple[int, Step]], list[tuple[int, WorkbookEntry]]]:
    """The steps and workbook entries that are valid on their own (when the whole is not)."""
    steps: list[tuple[int, Step]] = []
    entries: list[tuple[int, WorkbookEntry]] = []
    workflow, workbook = body.get("workflow"), body.get("workbook")
    for i, raw in enumerate(workflow if isinstance(workflow, list) else []):
        try:
            steps.append((i, Step.model_validate(raw)))
        except pydantic.ValidationError:
            pass
    for i, raw in enumerate(workbook if isinstance(workbook, list) else []):
        try:
            entries.append((i, WorkbookEntry.model_validate(raw)))
        except pydantic.ValidationError:
            pass
    return steps, entries


