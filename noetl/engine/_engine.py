"""The control-flow engine: events in, commands out (DESIGN §3).

Who calls it: the local runner, the operator (and tests, directly).
What it must never do: I/O, read the clock, draw random numbers, import a tool or a client. Given
the same playbook, workload and ordered events it reaches the same state and issues the same
commands; that is what makes executions replayable and safe to run inside the operator.

Flow of one activation (the engine records ``step.enter``/``step.exit`` itself; workers report only
``call.done``)::

    step.enter -> rules -> (skip) | call per item -> call.done -> rules -> call | retry | item done
    all items done -> step.exit -> rules -> next (rule or structural) | failure
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import functools
from typing import Any, Callable, Iterable

from noetl.dsl import END, START, Playbook, Step, Then, Transition
from noetl.engine._messages import Command, Event, EventName
from noetl.engine._state import Activation, ExecutionState, Item, Pending, StepStats, state_from_dict
from noetl.errors import TemplateError
from noetl.templating import Renderer, default_renderer, is_template

#: Names that only exist where a tool runs; templates using them are rendered by the worker.
CREDENTIAL_NAMES = frozenset({"auth", "secret"})
#: Tool fields that are never templates.
LITERAL_FIELDS = frozenset({"kind", "code"})
#: Default cap on `call:` re-invocations of one item (pagination), DESIGN §3.4.
DEFAULT_MAX_CALLS = 1000


def deep_merge(base: Any, override: Any) -> Any:
    """Merge ``override`` into ``base`` without mutating either (dicts merge, anything else replaces)."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return override


@dataclasses.dataclass
class _Outcome:
    """What the rules decided for one event (the actions that affect control flow)."""

    call: dict[str, Any] | None = None
    retry: Any = None
    next_fired: bool = False
    skip: bool = False
    failed: bool = False
    result_set: bool = False
    result: Any = None


class Engine:
    """One execution of one playbook. Feed it events; it returns the commands to run.

    ``start()`` once, then ``handle(event)`` for every reported ``call.done``. ``records`` lists the
    events the engine recorded itself (``step.enter``, ``step.exit``, ...) for progress display;
    ``drain_records()`` hands them over.
    """

    def __init__(self, playbook: Playbook, *, execution_id: str, workload: dict[str, Any] | None = None,
                 renderer: Renderer | None = None, keep_commands: bool = False) -> None:
        self.playbook = playbook
        self.renderer = renderer or default_renderer
        self.state = ExecutionState(execution_id=execution_id)
        self._overrides = workload or {}
        self._keep_commands = keep_commands
        self._queue: collections.deque[Callable[[], None]] = collections.deque()
        self._out: list[Command] = []
        self._records: list[dict[str, Any]] = []
        for step in playbook.workflow:
            self.state.steps.setdefault(step.step, StepStats())

    # -- public API ------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.state.status in ("succeeded", "failed")

    def start(self) -> list[Command]:
        """Begin the execution: render the workload and enter the `start` step."""
        s = self.state
        if s.status != "pending":
            return []
        s.status = "running"
        self._record(EventName.WORKFLOW_START)
        job = {"uuid": s.execution_id, "execution_id": s.execution_id}
        # Only the playbook's own workload is a template. Overrides (--set, an Execution's workload,
        # a child playbook's args) are data: rendering them would let a tool's response, passed on
        # as a child's args, run as a template.
        raw = self.playbook.workload
        try:
            rendered = self.renderer.render_value(raw, {"job": job, "execution_id": s.execution_id,
                                                        "workload": raw}, where="workload")
            s.workload = deep_merge(rendered, self._overrides)
        except TemplateError as exc:
            self._fail({"type": "TemplateError", "message": str(exc), "step": None})
            self._finish()
            return self._take()
        s.ctx = copy.deepcopy(s.workload)
        self._queue.append(lambda: self._enter(self.playbook.steps[START], {}))
        return self._run()

    def handle(self, event: Event) -> list[Command]:
        """Apply one reported event. Unknown or duplicate events change nothing."""
        pending = self.state.pending.pop(event.command_id, None)
        if pending is None or self.finished:
            return []
        self.state.events += 1
        self._queue.append(lambda: self._call_done(pending, event))
        return self._run()

    def handle_all(self, events: Iterable[Event]) -> list[Command]:
        out: list[Command] = []
        for event in events:
            out.extend(self.handle(event))
        return out

    def drain_records(self) -> list[dict[str, Any]]:
        records, self._records = self._records, []
        return records

    def outstanding(self) -> list[str]:
        """Ids of commands issued and not yet answered."""
        return list(self.state.pending)

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-able data (for comparing replays and for persistence)."""
        return dataclasses.asdict(self.state)

    @classmethod
    def restore(cls, playbook: Playbook, snapshot: dict[str, Any], *, renderer: Renderer | None = None,
                keep_commands: bool = False) -> "Engine":
        """An engine that continues from ``snapshot()`` output (also after a JSON round trip)."""
        engine = cls(playbook, execution_id=snapshot["execution_id"], renderer=renderer,
                     keep_commands=keep_commands)
        engine.state = state_from_dict(snapshot)
        return engine

    def pending_commands(self) -> list[Command]:
        """Outstanding commands, rebuilt from state (needs ``keep_commands=True``)."""
        return [Command.model_validate(p.command) for p in self.state.pending.values() if p.command]

    def summary(self) -> dict[str, Any]:
        """The run summary of `noetl run --output json` (DESIGN issue contract)."""
        s = self.state
        return {
            "execution_id": s.execution_id,
            "status": s.status,
            "result": s.result,
            "error": s.error,
            "steps": {name: {"status": st.status, "runs": st.runs, "calls": st.calls, "result": st.result}
                      for name, st in s.steps.items()},
            "warnings": list(s.warnings),
        }

    # -- machinery -------------------------------------------------------------------------------
    def _run(self) -> list[Command]:
        while True:
            while self._queue:
                self._queue.popleft()()
            if not self._maybe_finish():
                return self._take()

    def _take(self) -> list[Command]:
        out, self._out = self._out, []
        return out

    def _record(self, name: EventName, **fields: Any) -> None:
        self._records.append({"name": str(name), **fields})

    def _fail(self, error: dict[str, Any]) -> None:
        """An unhandled failure: remember the first one; no new steps are activated after it."""
        if self.state.error is None:
            self.state.error = error

    @property
    def _stopping(self) -> bool:
        return self.state.error is not None

    # -- contexts --------------------------------------------------------------------------------
    def _base_context(self, act: Activation | None) -> dict[str, Any]:
        s = self.state
        context = self.renderer.new_context(s.ctx)  # ctx keys at top level: lowest precedence
        context.update(s.results)
        context.update(workload=s.workload, ctx=s.ctx, execution_id=s.execution_id,
                       job={"uuid": s.execution_id, "execution_id": s.execution_id})
        if act is not None:
            context["args"] = act.args
        return context

    def _item_context(self, act: Activation, item: Item) -> dict[str, Any]:
        context = self._base_context(act)
        step = self.playbook.steps[act.step]
        if step.loop is not None and item.index is not None:
            n = len(act.loop_values or [])
            context[step.loop.iterator] = item.value
            context["loop"] = {"index": item.index, "first": item.index == 0, "last": item.index == n - 1,
                               "length": n}
            context["args"] = item.args
        return context

    def _event(self, name: EventName, act: Activation, item: Item | None = None, **extra: Any) -> dict[str, Any]:
        ev: dict[str, Any] = {"name": str(name), "step": act.step, "activation": act.id}
        if item is not None:
            ev.update(attempt=item.attempt, call=item.call, item=item.index)
        ev.update(extra)
        return ev

    # -- step.enter ------------------------------------------------------------------------------
    def _enter(self, step: Step, transition_args: dict[str, Any]) -> None:
        s = self.state
        if self._stopping:
            return
        stats = s.steps[step.step]
        stats.runs += 1
        stats.status = "running"
        act = Activation(id=f"{step.step}#{stats.runs}", step=step.step, number=stats.runs, args=transition_args)
        s.activations[act.id] = act
        where = f"step '{step.step}': args"
        if step.loop is None and step.args:
            try:
                own = self.renderer.render_value(step.args, self._base_context(act), where=where)
                act.args = {**transition_args, **own}
            except TemplateError as exc:
                self._record(EventName.STEP_ENTER, step=step.step, activation=act.id)
                self._exit(act, error=_template_error(exc, step.step))
                return
        self._record(EventName.STEP_ENTER, step=step.step, activation=act.id)
        context = self._base_context(act)
        context["event"] = self._event(EventName.STEP_ENTER, act)
        outcome = self._apply_rules(step, act, None, context)
        if outcome.failed:
            self._exit(act, error=self.state.error)
            return
        if outcome.skip:
            self._exit(act, result=None, skipped=True)
            return
        if step.loop is None:
            item = Item(index=None, args=act.args)
            act.items[None] = item
            self._issue_call(act, item)
            return
        try:
            values = self.renderer.render_value(step.loop.in_, self._base_context(act),
                                                where=f"step '{step.step}': loop.in")
        except TemplateError as exc:
            self._exit(act, error=_template_error(exc, step.step))
            return
        if values is None:
            values = []
        if isinstance(values, (tuple, range)):
            values = list(values)
        if not isinstance(values, list):
            self._exit(act, error={"type": "LoopError", "step": step.step, "status": None,
                                   "message": f"step '{step.step}': loop.in must give a list, got "
                                              f"{type(values).__name__}"})
            return
        act.loop_values = values
        act.results = [None] * len(values)
        stats.items_total = len(values)
        stats.items_done = 0
        if not values:
            self._exit(act, result={"results": [], "stats": {"total": 0, "succeeded": 0, "failed": 0}})
            return
        self._fill_loop(act)

    def _fill_loop(self, act: Activation) -> None:
        step = self.playbook.steps[act.step]
        assert step.loop is not None and act.loop_values is not None
        limit = step.loop.max_in_flight if step.loop.mode == "parallel" else 1
        while act.next_index < len(act.loop_values) and (act.next_index - act.completed) < limit:
            if self._stopping:
                return
            index = act.next_index
            act.next_index += 1
            item = Item(index=index, value=act.loop_values[index], args=act.args)
            act.items[index] = item
            if step.args:
                try:
                    own = self.renderer.render_value(step.args, self._item_context(act, item),
                                                     where=f"step '{step.step}': args")
                    item.args = {**act.args, **own}
                except TemplateError as exc:
                    error = _template_error(exc, step.step)
                    self._queue.append(functools.partial(self._item_outcome, act, item, None, error))
                    continue
            self._issue_call(act, item)

    # -- commands --------------------------------------------------------------------------------
    def _issue_call(self, act: Activation, item: Item, delay: float = 0.0) -> None:
        step = self.playbook.steps[act.step]
        context = self._item_context(act, item)
        # Tool fields see the call they configure, so a tool can use its attempt number.
        context["event"] = {**self._event(EventName.CALL_DONE, act, item), "name": "call"}
        try:
            command = self._prepare(step, act, item, step.tool, context, purpose="call", delay=delay,
                                    args=item.args)
        except TemplateError as exc:
            error = _template_error(exc, step.step)
            # Deferred so that a retry rule can still see it as an ordinary failed call.
            self._queue.append(lambda: self._item_outcome(act, item, None, error))
            return
        self._dispatch(command, Pending(activation=act.id, item=item.index, purpose="call"))

    def _dispatch(self, command: Command, pending: Pending) -> None:
        if self._keep_commands:
            pending.command = command.model_dump(mode="json")
        self.state.pending[command.id] = pending
        if pending.purpose == "call":
            self.state.steps[command.step].calls += 1
        self._out.append(command)

    def _prepare(self, step: Step, act: Activation, item: Item, tool: dict[str, Any], context: dict[str, Any],
                 *, purpose: str, delay: float = 0.0, args: dict[str, Any] | None = None,
                 command_id: str | None = None) -> Command:
        """Render a tool config into a Command. Fields that need credentials are deferred."""
        where = f"step '{step.step}': " + ("tool" if purpose == "call" else "sink.tool")
        call_args = dict(args or {})
        if tool.get("kind") == "workbook":
            name = self.renderer.render(str(tool.get("task") or tool.get("name")), context, where=f"{where}.task")
            entry = self.playbook.workbook_entry(str(name))
            if entry is None:
                raise TemplateError(f"workbook task '{name}' is not defined", where=f"{where}.task")
            task_args = tool.get("with", tool.get("args")) or {}
            rendered_args = self.renderer.render_value(task_args, context, where=f"{where}.with")
            call_args = {**call_args, **self.renderer.render_value(entry.args, context, where=f"{where}.args"),
                         **rendered_args}
            tool = {**entry.tool, **{k: v for k, v in tool.items() if k not in ("kind", "task", "name", "with",
                                                                               "args")}}
        config: dict[str, Any] = {}
        deferred: dict[str, str] = {}
        needed: set[str] = set()
        for key, value in tool.items():
            if key in LITERAL_FIELDS:
                config[key] = value
            elif key == "args" and tool.get("kind") != "workbook":
                before = len(deferred)
                rendered = self._render_field(value, context, f"{where}.args", "args", deferred, needed) or {}
                if len(deferred) > before:
                    config["args"] = rendered  # the worker renders the credential parts, then merges them
                else:
                    call_args.update(rendered)
            else:
                config[key] = self._render_field(value, context, f"{where}.{key}", key, deferred, needed)
        if item.overrides and purpose == "call":
            config = deep_merge(config, item.overrides)
        auth = config.pop("auth", None)
        if isinstance(auth, dict):
            auth = auth.get("credential") or auth.get("name") or auth.get("key")
        config.pop("max_calls", None)  # read by the engine (see _item_outcome), not a tool field
        timeout = config.get("timeout")
        cid = command_id or f"{self.state.execution_id}/{act.id}/{'-' if item.index is None else item.index}/" \
                            f"{item.call}.{item.attempt}"
        return Command(
            id=cid, execution_id=self.state.execution_id, step=step.step, activation=act.id, item=item.index,
            call=item.call, attempt=item.attempt, purpose=purpose, tool=config, deferred=deferred,  # type: ignore[arg-type]
            context={k: context[k] for k in needed if k in context}, args=call_args,
            auth=None if auth is None else str(auth), delay=delay,
            timeout=float(timeout) if isinstance(timeout, (int, float)) else None,
        )

    def _render_field(self, value: Any, context: dict[str, Any], where: str, path: str,
                      deferred: dict[str, str], needed: set[str]) -> Any:
        if isinstance(value, str):
            if not is_template(value):
                return value
            # Cheap substring test first: parsing a template for its names costs as much as compiling it.
            names = self.renderer.referenced_names(value) if _mentions_credentials(value) else frozenset()
            if names & CREDENTIAL_NAMES:
                deferred[path] = value
                needed.update(names - CREDENTIAL_NAMES)
                return None
            return self.renderer.render(value, context, where=where)
        if isinstance(value, dict):
            return {k: self._render_field(v, context, f"{where}.{k}", f"{path}.{k}", deferred, needed)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self._render_field(v, context, f"{where}[{i}]", f"{path}.{i}", deferred, needed)
                    for i, v in enumerate(value)]
        return value

    # -- call.done -------------------------------------------------------------------------------
    def _call_done(self, pending: Pending, event: Event) -> None:
        act = self.state.activations.get(pending.activation)
        if act is None:
            return
        if pending.purpose == "sink":
            act.sinks -= 1
            if event.error is not None:
                self._fail({**event.error, "step": act.step,
                            "message": f"sink of step '{act.step}' failed: {event.error.get('message')}"})
            self._maybe_close(act)
            return
        item = act.items[pending.item]
        self._item_outcome(act, item, event.response, event.error)

    def _item_outcome(self, act: Activation, item: Item, response: Any, error: dict[str, Any] | None) -> None:
        step = self.playbook.steps[act.step]
        context = self._item_context(act, item)
        context["event"] = self._event(EventName.CALL_DONE, act, item)
        if error is not None:
            context["error"] = error
        else:
            context["response"] = response
        outcome = self._apply_rules(step, act, item, context)
        if outcome.result_set:
            item.result, item.result_set = outcome.result, True
        if outcome.next_fired and error is not None:
            item.handled = True
        if outcome.failed:
            pass
        elif outcome.call is not None and not self._stopping:
            limit = int(step.tool.get("max_calls", DEFAULT_MAX_CALLS))
            if item.call >= limit:
                error = {"type": "MaxCallsExceeded", "status": None, "step": step.step,
                         "message": f"step '{step.step}': reached max_calls ({limit}) for one item; raise "
                                    "tool.max_calls or check the pagination condition"}
            else:
                item.overrides = deep_merge(item.overrides, outcome.call)
                item.call += 1
                item.attempt = 1
                self._issue_call(act, item)
                return
        elif outcome.retry is not None and not self._stopping and item.attempt < outcome.retry.max_attempts:
            delay = outcome.retry.delay_after(item.attempt)
            item.attempt += 1
            self._record(EventName.CALL_DONE, step=step.step, activation=act.id, item=item.index,
                         retry=item.attempt, delay=delay, error=error)
            self._issue_call(act, item, delay=delay)
            return
        self._complete_item(act, item, response, error)

    def _complete_item(self, act: Activation, item: Item, response: Any, error: dict[str, Any] | None) -> None:
        item.done = True
        item.error = error
        if error is None and not item.result_set:
            item.result = response
        if act.loop_values is None:
            if error is not None:
                self._exit(act, error=error, handled=item.handled)
            else:
                self._exit(act, result=item.result)
            return
        act.completed += 1
        stats = self.state.steps[act.step]
        stats.items_done = act.completed
        assert item.index is not None
        # A finished item keeps only its result: a 10,000-item loop must not keep 10,000 Items.
        del act.items[item.index]
        if error is not None:
            act.results[item.index] = {"error": error}
            act.failed += 1
            if not item.handled:
                act.unhandled_failures += 1
                if act.first_error is None:
                    act.first_error = error
        else:
            act.results[item.index] = item.result
        self._record(EventName.CALL_DONE, step=act.step, activation=act.id, item=item.index, item_done=True,
                     done=act.completed, total=len(act.loop_values), failed=error is not None)
        if act.completed < len(act.loop_values):
            self._fill_loop(act)
            return
        total = len(act.results)
        loop_result = {"results": act.results,
                       "stats": {"total": total, "succeeded": total - act.failed, "failed": act.failed}}
        act.results = []
        if act.unhandled_failures:
            message = f"step '{act.step}': {act.failed} of {total} loop items failed"
            first = act.first_error or {}
            message += f"; first error: {first.get('type')}: {first.get('message')}"
            err = {"type": "LoopItemFailed", "status": None, "step": act.step, "message": message}
            self._exit(act, error=err, result=loop_result)
        else:
            self._exit(act, result=loop_result)

    # -- step.exit -------------------------------------------------------------------------------
    def _exit(self, act: Activation, *, result: Any = None, error: dict[str, Any] | None = None,
              handled: bool = False, skipped: bool = False) -> None:
        step = self.playbook.steps[act.step]
        s = self.state
        context = self._base_context(act)
        context["event"] = self._event(EventName.STEP_EXIT, act)
        if error is not None:
            context["error"] = error
            if result is not None:
                context["result"] = result
        else:
            context["result"] = result
        if error is None or result is not None:
            context[act.step] = result  # a step's own name is bound in its step.exit rules too
        outcome = self._apply_rules(step, act, None, context)
        if outcome.result_set:
            result = outcome.result
            context[act.step] = result
        stats = s.steps[act.step]
        self._record(EventName.STEP_EXIT, step=act.step, activation=act.id, error=error)
        if error is None:
            s.results[act.step] = result
            s.last_result = result
            stats.result = result
            stats.status = "skipped" if skipped else "succeeded"
            if not outcome.next_fired and not outcome.failed:
                for t in step.next:
                    self._transition(t, context)
        else:
            stats.status = "failed"
            if result is not None:  # a failed loop's partial results, or a `result` action's value
                s.results[act.step] = result
                stats.result = result
            if not (handled or outcome.next_fired):
                self._fail({**{k: v for k, v in error.items() if k != "step"}, "step": act.step})
        if act.step == END:
            s.end_ran = True
            s.result = result
        act.items.clear()
        act.exited = True
        self._maybe_close(act)

    def _maybe_close(self, act: Activation) -> None:
        """Forget an activation once it has exited and its sinks have reported."""
        if act.exited and act.sinks == 0:
            self.state.activations.pop(act.id, None)

    # -- rules -----------------------------------------------------------------------------------
    def _apply_rules(self, step: Step, act: Activation, item: Item | None, context: dict[str, Any]) -> _Outcome:
        outcome = _Outcome()
        rule = self._match(step, context)
        if rule is None:
            return outcome
        for then in rule.then:
            self._apply_then(step, act, item, then, context, outcome)
        return outcome

    def _match(self, step: Step, context: dict[str, Any]) -> Any:
        for i, rule in enumerate(step.case):
            when = rule.when
            if when is None or when is True:
                return rule
            if when is False:
                continue
            try:
                if self.renderer.test(str(when), context, where=f"step '{step.step}': case[{i}].when"):
                    return rule
            except TemplateError as exc:
                msg = f"{exc} (event {context['event']['name']}); the condition counts as false"
                if msg not in self.state.warnings:
                    self.state.warnings.append(msg)
        return None

    def _apply_then(self, step: Step, act: Activation, item: Item | None, then: Then, context: dict[str, Any],
                    outcome: _Outcome) -> None:
        s = self.state
        name = context["event"]["name"]
        where = f"step '{step.step}': case.then"
        try:
            if then.set:
                values = self.renderer.render_value(then.set.get("ctx") or {}, context, where=f"{where}.set")
                s.ctx = deep_merge(s.ctx, values)
                self._refresh(context, act)
            for col in then.collect or []:
                value = self.renderer.evaluate(col.from_, context, where=f"{where}.collect.from")
                current = s.ctx.get(col.into)
                if col.mode == "replace":
                    new = value
                elif col.mode == "extend":
                    new = list(current or []) + (list(value) if isinstance(value, (list, tuple)) else [value])
                else:
                    new = list(current or []) + [value]
                s.ctx = {**s.ctx, col.into: new}
                self._refresh(context, act)
            if then.has_result:
                r = then.result
                if isinstance(r, dict) and set(r) == {"from"}:
                    outcome.result = self.renderer.evaluate(str(r["from"]), context, where=f"{where}.result.from")
                else:
                    outcome.result = self.renderer.render_value(r, context, where=f"{where}.result")
                outcome.result_set = True
                context["result"] = outcome.result
            if then.sink is not None and not self._stopping:
                self._sink(step, act, item, then, context)
            if then.call is not None:
                if name == str(EventName.CALL_DONE):
                    outcome.call = self.renderer.render_value(then.call, context, where=f"{where}.call")
                else:
                    self._warn(f"{where}: 'call' only applies on call.done events (ignored on {name})")
            if then.retry is not None:
                if name == str(EventName.CALL_DONE):
                    outcome.retry = then.retry
                else:
                    self._warn(f"{where}: 'retry' only applies on call.done events (ignored on {name})")
            if then.next:
                outcome.next_fired = True
                for t in then.next:
                    self._transition(t, context)
            if then.skip:
                if name == str(EventName.STEP_ENTER):
                    outcome.skip = True
                else:
                    self._warn(f"{where}: 'skip' only applies on step.enter events (ignored on {name})")
            if then.fail is not None:
                outcome.failed = True
                message = self.renderer.render_value(then.fail.message, context, where=f"{where}.fail.message")
                self._fail({"type": "Failed", "status": None, "step": step.step, "message": str(message)})
        except TemplateError as exc:
            outcome.failed = True
            self._fail(_template_error(exc, step.step))

    def _refresh(self, context: dict[str, Any], act: Activation) -> None:
        """After `set`/`collect`, names in the context must see the new ctx."""
        s = self.state
        for key, value in s.ctx.items():
            if key not in s.results and key not in _RESERVED:
                context[key] = value
        context["ctx"] = s.ctx

    def _warn(self, message: str) -> None:
        if message not in self.state.warnings:
            self.state.warnings.append(message)

    def _sink(self, step: Step, act: Activation, item: Item | None, then: Then, context: dict[str, Any]) -> None:
        assert then.sink is not None
        act.sinks += 1
        act.sink_seq += 1
        holder = item or Item(index=None)
        cid = f"{self.state.execution_id}/{act.id}/sink/{act.sink_seq}"
        sink_context = dict(context)
        sink_args = self.renderer.render_value(then.sink.args, context, where=f"step '{step.step}': sink.args")
        command = self._prepare(step, act, holder, then.sink.tool, sink_context, purpose="sink",
                                args=sink_args, command_id=cid)
        self._dispatch(command, Pending(activation=act.id, item=holder.index, purpose="sink"))

    def _transition(self, t: Transition, context: dict[str, Any]) -> None:
        if self._stopping:
            return
        source = context["event"]["step"]
        try:
            args = self.renderer.render_value(t.args, context, where=f"step '{source}': next '{t.step}' args") \
                if t.args else {}
        except TemplateError as exc:
            self._fail(_template_error(exc, source))
            return
        if t.step == END:
            if END in self.playbook.steps:
                self.state.end_requested = True
                self.state.end_args = {**self.state.end_args, **args}
            return
        target = self.playbook.steps[t.step]
        self._queue.append(lambda: self._enter(target, args))

    # -- completion ------------------------------------------------------------------------------
    def _maybe_finish(self) -> bool:
        """End the run when nothing is pending; returns True when it queued more work (the join)."""
        s = self.state
        if s.status != "running" or s.pending or self._queue:
            return False
        # After an unhandled failure nothing new starts, so open activations (a loop with items not
        # yet started) will never close: the run ends once every in-flight call has reported.
        if s.activations and not self._stopping:
            return False
        if s.end_requested and not s.end_ran and not self._stopping and END in self.playbook.steps:
            s.end_requested = False
            end = self.playbook.steps[END]
            self._queue.append(lambda: self._enter(end, s.end_args))
            return True
        self._finish()
        return False

    def _finish(self) -> None:
        s = self.state
        s.status = "failed" if s.error is not None else "succeeded"
        if not s.end_ran:
            s.result = s.last_result
        self._record(EventName.WORKFLOW_END, status=s.status)


_RESERVED = frozenset({"workload", "ctx", "args", "event", "response", "error", "result", "loop", "execution_id",
                       "job"})


def _mentions_credentials(text: str) -> bool:
    return any(name in text for name in CREDENTIAL_NAMES)


def _template_error(exc: TemplateError, step: str) -> dict[str, Any]:
    return {"type": "TemplateError", "status": None, "step": step, "message": str(exc)}
