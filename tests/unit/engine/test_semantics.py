"""DSL v2 semantics, one rule per test (DESIGN §3). The engine is driven without any I/O."""

from __future__ import annotations

from typing import Any

import pytest

from noetl.engine import Engine, Event
from tests.unit.engine.conftest import Fail, drive, playbook


# -- §3.6 loops --------------------------------------------------------------------------------------
def test_step_after_loop_runs_once_after_all_items() -> None:
    order: list[str] = []

    def respond(c: Any) -> Any:
        order.append(f"{c.step}:{c.item}")
        return c.args

    run = drive("""
        workload: {xs: [1, 2, 3]}
        workflow:
        - step: start
          loop: {in: "{{ workload.xs }}", iterator: x}
          args: {v: "{{ x }}"}
          next: after
        - step: after
        """, respond)
    assert run.status == "succeeded"
    assert order == ["start:0", "start:1", "start:2", "after:None"]
    assert run.summary["steps"]["after"]["runs"] == 1


def test_loop_completes_once_when_item_events_are_delivered_twice() -> None:
    run = drive("""
        workflow:
        - step: start
          loop: {in: "{{ [1, 2, 3] }}", iterator: x, mode: parallel}
          next: after
        - step: after
        """, duplicate=True)
    assert run.summary["steps"]["start"]["runs"] == 1
    assert run.summary["steps"]["after"]["runs"] == 1
    assert run.summary["steps"]["start"]["result"]["stats"] == {"total": 3, "succeeded": 3, "failed": 0}


def test_reentering_a_loop_step_starts_fresh_counters() -> None:
    run = drive("""
        workflow:
        - step: start
          next: {step: loop, args: {n: 2}}
        - step: loop
          loop: {in: "{{ range(args.n) | list }}", iterator: i}
          case:
          - when: "{{ event.name == 'step.exit' and args.n == 2 }}"
            then: {next: {step: loop, args: {n: 3}}}
        """)
    assert run.status == "succeeded"
    assert run.summary["steps"]["loop"]["runs"] == 2
    assert run.summary["steps"]["loop"]["result"]["stats"] == {"total": 3, "succeeded": 3, "failed": 0}
    assert len(run.calls("loop")) == 5


def test_empty_loop_completes_at_once() -> None:
    run = drive("""
        workflow:
        - step: start
          loop: {in: "{{ [] }}", iterator: x}
          tool: {kind: http, endpoint: http://nowhere}
          next: after
        - step: after
        """)
    assert run.status == "succeeded"
    assert run.calls("start") == []
    assert run.summary["steps"]["start"]["result"] == {"results": [], "stats": {"total": 0, "succeeded": 0,
                                                                               "failed": 0}}
    assert run.summary["steps"]["after"]["runs"] == 1


def test_null_loop_input_is_empty_and_non_list_is_an_error() -> None:
    assert drive("""
        workflow:
        - step: start
          loop: {in: "{{ none }}", iterator: x}
        """).status == "succeeded"
    run = drive("""
        workflow:
        - step: start
          loop: {in: "{{ 5 }}", iterator: x}
        """)
    assert run.status == "failed"
    assert "loop.in must give a list" in run.summary["error"]["message"]


def test_parallel_loop_never_exceeds_max_in_flight() -> None:
    run = drive("""
        workflow:
        - step: start
          loop: {in: "{{ range(50) | list }}", iterator: x, mode: parallel, max_in_flight: 4}
        """, order="lifo")
    assert run.status == "succeeded"
    assert run.max_outstanding["start"] == 4
    assert len(run.calls("start")) == 50


def test_sequential_loop_runs_one_item_at_a_time_in_order() -> None:
    run = drive("""
        workflow:
        - step: start
          loop: {in: "{{ [3, 1, 2] }}", iterator: x}
          args: {v: "{{ x }}"}
        """)
    assert run.max_outstanding["start"] == 1
    assert [c.args["v"] for c in run.calls("start")] == [3, 1, 2]
    assert run.summary["result"]["results"] == [{"v": 3}, {"v": 1}, {"v": 2}]


def test_loop_variables_are_bound_in_item_events() -> None:
    run = drive("""
        workflow:
        - step: start
          loop: {in: "{{ ['a', 'b'] }}", iterator: letter}
          args: {v: "{{ letter }}-{{ loop.index }}-{{ loop.first }}-{{ loop.last }}-{{ loop.length }}"}
        """)
    assert [c.args["v"] for c in run.calls("start")] == ["a-0-True-False-2", "b-1-False-True-2"]


def test_failed_loop_items_are_counted_and_fail_the_step() -> None:
    def respond(c: Any) -> Any:
        if c.item == 1:
            raise Fail("Boom")
        return "ok"

    run = drive("""
        workflow:
        - step: start
          loop: {in: "{{ [0, 1, 2] }}", iterator: x}
          next: after
        - step: after
        """, respond)
    assert run.status == "failed"
    assert run.summary["steps"]["start"]["status"] == "failed"
    assert run.summary["steps"]["after"]["runs"] == 0
    assert run.summary["error"]["type"] == "LoopItemFailed"
    assert "1 of 3" in run.summary["error"]["message"]


def test_failed_loop_routed_by_step_exit_rule_is_handled() -> None:
    run = drive("""
        workflow:
        - step: start
          loop: {in: "{{ [0, 1] }}", iterator: x}
          case:
          - when: "{{ event.name == 'step.exit' and error is defined }}"
            then: {next: {step: recover, args: {failed: "{{ result.stats.failed }}"}}}
        - step: recover
        """, lambda c: (_ for _ in ()).throw(Fail()) if c.step == "start" else c.args)
    assert run.status == "succeeded"
    assert run.summary["result"] == {"failed": 2}


# -- §3.3 events -------------------------------------------------------------------------------------
def test_duplicate_event_changes_nothing() -> None:
    engine = Engine(playbook("""
        workflow:
        - step: start
          loop: {in: "{{ [1, 2] }}", iterator: x, mode: parallel}
        """), execution_id="ex")
    commands = engine.start()
    event = Event.done(commands[0], response=1)
    engine.handle(event)
    before = engine.snapshot()
    assert engine.handle(event) == []
    assert engine.snapshot() == before


def test_replaying_the_same_events_gives_the_same_state() -> None:
    body = """
        workflow:
        - step: start
          loop: {in: "{{ [1, 2, 3] }}", iterator: x, mode: parallel}
          case:
          - when: "{{ event.name == 'call.done' }}"
            then: {collect: {from: "x", into: seen}}
          next: end
        - step: end
        """
    first = drive(body, order="lifo")
    log = [Event.done(c, response=c.args or None) for c in first.commands]
    # replay in the order the first run saw the events
    replay = Engine(playbook(body), execution_id="ex")
    replay.start()
    answered = {c.id for c in first.commands}
    events = [e for e in _events_in_order(first)]
    for e in events:
        replay.handle(e)
    assert answered == {e.command_id for e in events}
    assert replay.snapshot() == first.engine.snapshot()
    assert len(log) == len(first.commands)


def _events_in_order(run: Any) -> list[Event]:
    """Re-derive the order `drive(order='lifo')` answered commands in."""
    engine = Engine(run.engine.playbook, execution_id="ex")
    queue = list(engine.start())
    out = []
    while queue:
        c = queue.pop()
        e = Event.done(c, response=c.args or None)
        out.append(e)
        queue.extend(engine.handle(e))
    return out


def test_command_ids_are_deterministic() -> None:
    body = """
        workflow:
        - step: start
          loop: {in: "{{ [1, 2] }}", iterator: x}
        """
    a = [c.id for c in drive(body).commands]
    b = [c.id for c in drive(body).commands]
    assert a == b == ["ex/start#1/0/1.1", "ex/start#1/1/1.1"]


# -- §3.4 rules ---------------------------------------------------------------------------------------
def test_first_matching_case_wins() -> None:
    run = drive("""
        workflow:
        - step: start
          case:
          - when: "{{ event.name == 'call.done' }}"
            then: {set: {first: true}}
          - when: "{{ event.name == 'call.done' }}"
            then: {set: {second: true}}
        """)
    ctx = run.engine.state.ctx
    assert ctx.get("first") is True and "second" not in ctx


def test_when_without_braces_and_undefined_names_are_falsy() -> None:
    run = drive("""
        workflow:
        - step: start
          case:
          - when: "nothing.here.at_all == 1"
            then: {set: {wrong: true}}
          - when: "event.name == 'call.done'"
            then: {set: {right: true}}
        """)
    assert run.engine.state.ctx == {"right": True}
    assert run.engine.state.warnings == []


def test_runtime_error_in_when_is_a_warning_and_false() -> None:
    run = drive("""
        workflow:
        - step: start
          case:
          - when: "{{ 1 / 0 }}"
            then: {fail: {message: should not happen}}
        """)
    assert run.status == "succeeded"
    assert any("ZeroDivisionError" in w for w in run.summary["warnings"])


def test_all_actions_in_one_then_map_run_in_documented_order() -> None:
    run = drive("""
        workflow:
        - step: start
          case:
          - when: "{{ event.name == 'call.done' }}"
            then:
              next: {step: target, args: {seen_set: "{{ ctx.a }}", seen_collect: "{{ ctx.bag }}",
                                          seen_result: "{{ result }}"}}
              result: {from: "ctx.bag"}
              collect: {from: "ctx.a * 10", into: bag}
              set: {a: 1}
        - step: target
          args: {copy: "{{ args }}"}
        """)
    assert run.status == "succeeded"
    assert run.summary["steps"]["start"]["result"] == [10]
    assert run.calls("target")[0].args["copy"] == {"seen_set": 1, "seen_collect": [10], "seen_result": [10]}


def test_then_may_be_a_list_of_maps() -> None:
    run = drive("""
        workflow:
        - step: start
          case:
          - when: "{{ event.name == 'call.done' }}"
            then:
            - set: {a: 1}
            - set: {b: "{{ ctx.a + 1 }}"}
        """)
    assert run.engine.state.ctx == {"a": 1, "b": 2}


def test_set_deep_merges_into_ctx_with_and_without_ctx_key() -> None:
    run = drive("""
        workload: {conf: {x: 1, y: 2}}
        workflow:
        - step: start
          case:
          - when: "{{ event.name == 'step.enter' }}"
            then: {set: {ctx: {conf: {y: 3}}, other: 4}}
        """)
    assert run.engine.state.ctx == {"conf": {"x": 1, "y": 3}, "other": 4}
    assert run.engine.state.workload == {"conf": {"x": 1, "y": 2}}


@pytest.mark.parametrize("mode,expected", [("append", [[1, 2], [1, 2]]), ("extend", [1, 2, 1, 2]),
                                           ("replace", [1, 2])])
def test_collect_modes(mode: str, expected: list[Any]) -> None:
    run = drive(f"""
        workflow:
        - step: start
          loop: {{in: "{{{{ [0, 1] }}}}", iterator: i}}
          case:
          - when: "{{{{ event.name == 'call.done' }}}}"
            then: {{collect: {{from: "[1, 2]", into: bag, mode: {mode}}}}}
        """)
    assert run.engine.state.ctx["bag"] == expected


def test_skip_on_step_enter_does_not_call_the_tool() -> None:
    run = drive("""
        workflow:
        - step: start
          tool: {kind: http, endpoint: http://nowhere}
          case:
          - when: "{{ event.name == 'step.enter' }}"
            then: {skip: true}
          next: after
        - step: after
        """)
    assert run.calls("start") == []
    assert run.summary["steps"]["start"] == {"status": "skipped", "runs": 1, "calls": 0, "result": None}
    assert run.summary["steps"]["after"]["runs"] == 1


def test_fail_action_fails_the_workflow_with_its_message() -> None:
    run = drive("""
        workflow:
        - step: start
          case:
          - when: "{{ event.name == 'step.exit' }}"
            then: {fail: {message: "bad value {{ result }}"}}
          next: after
        - step: after
        """, lambda c: 7)
    assert run.status == "failed"
    assert run.summary["error"] == {"type": "Failed", "status": None, "step": "start", "message": "bad value 7"}
    assert run.summary["steps"]["after"]["runs"] == 0


def test_sink_runs_as_a_side_command() -> None:
    run = drive("""
        workflow:
        - step: start
          args: {v: 5}
          case:
          - when: "{{ event.name == 'step.exit' }}"
            then:
              sink: {tool: {kind: noop}, args: {stored: "{{ result.v }}"}}
        """)
    sinks = [c for c in run.commands if c.purpose == "sink"]
    assert [s.args for s in sinks] == [{"stored": 5}]
    assert run.status == "succeeded"


def test_failed_sink_is_an_unhandled_failure() -> None:
    def respond(c: Any) -> Any:
        if c.purpose == "sink":
            raise Fail("PostgresError", message="table missing")
        return 1

    run = drive("""
        workflow:
        - step: start
          case:
          - when: "{{ event.name == 'step.exit' }}"
            then: {sink: {tool: {kind: noop}}}
        """, respond)
    assert run.status == "failed"
    assert "table missing" in run.summary["error"]["message"]


# -- call / retry -------------------------------------------------------------------------------------
def test_call_reinvokes_the_tool_with_merged_overrides() -> None:
    pages = {1: {"more": True}, 2: {"more": True}, 3: {"more": False}}

    def respond(c: Any) -> Any:
        return {"page": c.tool["params"]["page"], **pages[c.tool["params"]["page"]]}

    run = drive("""
        workflow:
        - step: start
          tool: {kind: http, endpoint: "http://api/x", params: {page: 1, size: 10}}
          case:
          - when: "{{ event.name == 'call.done' and response.more }}"
            then:
              collect: {from: response.page, into: seen}
              call: {params: {page: "{{ response.page + 1 }}"}}
          - when: "{{ event.name == 'call.done' }}"
            then: {collect: {from: response.page, into: seen}}
        """, respond)
    assert run.engine.state.ctx["seen"] == [1, 2, 3]
    assert [c.tool["params"] for c in run.calls("start")] == [{"page": 1, "size": 10}, {"page": 2, "size": 10},
                                                              {"page": 3, "size": 10}]
    assert [c.call for c in run.calls("start")] == [1, 2, 3]


def test_call_is_capped_by_max_calls() -> None:
    run = drive("""
        workflow:
        - step: start
          tool: {kind: noop, max_calls: 5}
          case:
          - when: "{{ event.name == 'call.done' }}"
            then: {call: {}}
        """)
    assert len(run.calls("start")) == 5
    assert run.summary["error"]["type"] == "MaxCallsExceeded"


def test_retry_makes_exactly_max_attempts_calls_with_attempt_visible() -> None:
    def respond(c: Any) -> Any:
        raise Fail("HTTPStatusError", 503)

    run = drive("""
        workflow:
        - step: start
          case:
          - when: "{{ event.name == 'call.done' and error.status == 503 }}"
            then:
              set: {last_attempt: "{{ event.attempt }}"}
              retry: {max_attempts: 4, initial_delay: 1, backoff_multiplier: 2, max_delay: 3}
        """, respond)
    calls = run.calls("start")
    assert len(calls) == 4
    assert [c.attempt for c in calls] == [1, 2, 3, 4]
    assert [c.delay for c in calls] == [0, 1, 2, 3]  # capped by max_delay, none after the last
    assert run.engine.state.ctx["last_attempt"] == 4
    assert run.status == "failed"
    assert run.summary["error"]["status"] == 503


def test_transport_error_can_be_retried_until_success() -> None:
    def respond(c: Any) -> Any:
        if c.attempt < 3:
            raise Fail("ConnectError", None, "connection refused")
        return {"ok": True}

    run = drive("""
        workflow:
        - step: start
          tool: {kind: http, endpoint: "http://x"}
          case:
          - when: "{{ event.name == 'call.done' and error is defined and error.type == 'ConnectError' }}"
            then: {retry: {max_attempts: 5, initial_delay: 0}}
        """, respond)
    assert run.status == "succeeded"
    assert len(run.calls("start")) == 3
    assert run.summary["result"] == {"ok": True}


# -- §3.5 transitions and completion ----------------------------------------------------------------
def test_dead_end_finishes_the_workflow() -> None:
    run = drive("""
        workflow:
        - step: start
          case:
          - when: "{{ event.name == 'step.exit' and result == 'never' }}"
            then: {next: other}
        - step: other
        """, lambda c: "x")
    assert run.status == "succeeded"
    assert run.summary["result"] == "x"
    assert run.summary["steps"]["other"]["runs"] == 0


def test_fan_out_to_two_branches_runs_end_once_after_both() -> None:
    finished: list[str] = []

    def respond(c: Any) -> Any:
        finished.append(c.step)
        return c.args if c.step == "end" else c.step

    run = drive("""
        workflow:
        - step: start
          next: [a, b]
        - step: a
          next: a2
        - step: a2
          next: end
        - step: b
          next: end
        - step: end
          args: {r: "{{ [a2, b] }}"}
        """, respond)
    assert run.summary["steps"]["end"]["runs"] == 1
    assert finished[-1] == "end"
    assert run.summary["result"] == {"r": ["a2", "b"]}


def test_next_end_without_an_end_step_ends_the_branch() -> None:
    run = drive("""
        workflow:
        - step: start
          next: end
        """, lambda c: 42)
    assert run.status == "succeeded"
    assert run.summary["result"] == 42


def test_rule_next_suppresses_structural_next_on_step_exit() -> None:
    run = drive("""
        workflow:
        - step: start
          case:
          - when: "{{ event.name == 'step.exit' }}"
            then: {next: routed}
          next: structural
        - step: routed
        - step: structural
        """)
    assert run.summary["steps"]["routed"]["runs"] == 1
    assert run.summary["steps"]["structural"]["runs"] == 0


def test_next_from_call_done_does_not_suppress_structural_next() -> None:
    run = drive("""
        workflow:
        - step: start
          case:
          - when: "{{ event.name == 'call.done' }}"
            then: {next: branch}
          next: structural
        - step: branch
        - step: structural
        """)
    assert run.summary["steps"]["branch"]["runs"] == 1
    assert run.summary["steps"]["structural"]["runs"] == 1


def test_transition_args_render_in_source_and_target_args_render_with_them() -> None:
    run = drive("""
        workload: {base: 10}
        workflow:
        - step: start
          next: {step: target, args: {n: "{{ start.v + 1 }}", keep: source}}
        - step: target
          args: {doubled: "{{ args.n * 2 }}", keep: own}
        """, lambda c: {"v": 1} if c.step == "start" else c.args)
    assert run.calls("target")[0].args == {"n": 2, "keep": "own", "doubled": 4}


def test_failure_routed_by_next_is_handled() -> None:
    def respond(c: Any) -> Any:
        if c.step == "start":
            raise Fail("HTTPStatusError", 404)
        return c.args

    run = drive("""
        workflow:
        - step: start
          case:
          - when: "{{ event.name == 'call.done' and error is defined and error.status == 404 }}"
            then: {next: {step: fallback, args: {why: "{{ error.status }}"}}}
          next: happy
        - step: fallback
        - step: happy
        """, respond)
    assert run.status == "succeeded"
    assert run.summary["steps"]["start"]["status"] == "failed"
    assert run.summary["steps"]["happy"]["runs"] == 0
    assert run.summary["result"] == {"why": 404}


def test_unhandled_failure_stops_new_steps_but_lets_inflight_calls_finish() -> None:
    def respond(c: Any) -> Any:
        if c.step == "bad":
            raise Fail("Boom")
        return c.step

    run = drive("""
        workflow:
        - step: start
          next: [bad, slow]
        - step: bad
          next: never
        - step: slow
          next: never
        - step: never
        """, respond)
    assert run.status == "failed"
    assert run.summary["error"]["step"] == "bad"
    assert run.summary["steps"]["slow"]["status"] == "succeeded"  # was in flight, recorded
    assert run.summary["steps"]["never"]["runs"] == 0


def test_workflow_result_is_end_result_else_last_completed() -> None:
    assert drive("""
        workflow:
        - step: start
          next: end
        - step: end
          args: {done: true}
        """).summary["result"] == {"done": True}
    assert drive("""
        workflow:
        - step: start
          next: two
        - step: two
          args: {last: 2}
        """).summary["result"] == {"last": 2}


# -- §3.7 templates -------------------------------------------------------------------------------------
def test_step_name_binds_to_its_result_in_every_context() -> None:
    run = drive("""
        workflow:
        - step: start
          next: use
        - step: use
          tool: {kind: http, endpoint: "http://h/{{ start.id }}"}
          args: {in_args: "{{ start.id }}"}
          case:
          - when: "{{ event.name == 'call.done' and start.id == 7 }}"
            then:
              set: {in_set: "{{ start.id }}"}
              collect: {from: start.id, into: in_collect}
              result: {from: start}
        """, lambda c: {"id": 7} if c.step == "start" else "r")
    c = run.calls("use")[0]
    assert c.tool["endpoint"] == "http://h/7" and c.args["in_args"] == 7
    assert run.engine.state.ctx == {"in_set": 7, "in_collect": [7]}
    assert run.summary["steps"]["use"]["result"] == {"id": 7}


def test_single_expression_templates_keep_native_types() -> None:
    run = drive("""
        workload: {xs: [1, 2], n: 3}
        workflow:
        - step: start
          args: {list: "{{ workload.xs }}", num: "{{ workload.n + 1 }}", text: "n={{ workload.n }}"}
        """)
    assert run.calls("start")[0].args == {"list": [1, 2], "num": 4, "text": "n=3"}


def test_workload_templates_render_once_and_ctx_starts_as_its_copy() -> None:
    run = drive("""
        workload: {id: "{{ job.uuid }}", n: 1}
        workflow:
        - step: start
          args: {id: "{{ workload.id }}", top: "{{ n }}"}
        """, workload={"n": 5})
    assert run.engine.state.workload == {"id": "ex", "n": 5}
    assert run.calls("start")[0].args == {"id": "ex", "top": 5}


def test_undefined_name_in_args_names_step_field_and_name() -> None:
    run = drive("""
        workflow:
        - step: start
          args: {x: "{{ missing_thing }}"}
        """)
    assert run.status == "failed"
    err = run.summary["error"]
    assert err["type"] == "TemplateError" and err["step"] == "start"
    assert "args.x" in err["message"] and "missing_thing" in err["message"]


def test_undefined_name_in_tool_field_is_a_failed_call_rules_can_see() -> None:
    run = drive("""
        workflow:
        - step: start
          tool: {kind: http, endpoint: "{{ nope.url }}"}
          case:
          - when: "{{ event.name == 'call.done' and error.type == 'TemplateError' }}"
            then: {next: handled}
        - step: handled
        """)
    assert run.status == "succeeded"
    assert run.summary["steps"]["handled"]["runs"] == 1
    assert run.calls("start") == []


def test_sandbox_escape_is_refused() -> None:
    run = drive("""
        workflow:
        - step: start
          args: {x: "{{ ''.__class__.__mro__ }}"}
        """)
    assert run.status == "failed"
    assert "sandbox" in run.summary["error"]["message"]


def test_credential_templates_are_deferred_to_the_worker() -> None:
    run = drive("""
        workload: {cred: my_api}
        workflow:
        - step: start
          tool:
            kind: http
            auth: "{{ workload.cred }}"
            endpoint: "http://h/{{ workload.cred }}"
            headers: {Authorization: "Bearer {{ secret.token }} for {{ workload.cred }}"}
        """)
    c = run.calls("start")[0]
    assert c.auth == "my_api"
    assert c.tool["endpoint"] == "http://h/my_api"
    assert c.deferred == {"headers.Authorization": "Bearer {{ secret.token }} for {{ workload.cred }}"}
    assert c.context == {"workload": {"cred": "my_api"}}
    assert "auth" not in c.tool


def test_workbook_task_resolves_to_the_entry_tool_with_its_args() -> None:
    run = drive("""
        workbook:
        - name: double
          tool: {kind: python, code: "def main(n): return n * 2"}
        workflow:
        - step: start
          tool: {kind: workbook, task: double, with: {n: "{{ 21 }}"}}
        """)
    c = run.calls("start")[0]
    assert c.tool == {"kind": "python", "code": "def main(n): return n * 2"}
    assert c.args == {"n": 21}


def test_restoring_a_snapshot_continues_exactly_where_it_stopped() -> None:
    import json

    body = """
        workflow:
        - step: start
          loop: {in: "{{ range(6) | list }}", iterator: x, mode: parallel, max_in_flight: 2}
          args: {v: "{{ x }}"}
          case:
          - when: "{{ event.name == 'call.done' }}"
            then: {collect: {from: "response.v", into: seen}}
          next: end
        - step: end
          args: {n: "{{ ctx.seen | length }}"}
        """
    straight = drive(body)
    engine = Engine(playbook(body), execution_id="ex", keep_commands=True)
    queue = engine.start()
    for _ in range(3):  # answer three commands, then "crash"
        c = queue.pop(0)
        queue.extend(engine.handle(Event.done(c, response=c.args)))
    snapshot = json.loads(json.dumps(engine.snapshot()))
    revived = Engine.restore(engine.playbook, snapshot, keep_commands=True)
    assert [c.id for c in revived.pending_commands()] == [c.id for c in queue]
    queue = revived.pending_commands()
    while queue:
        c = queue.pop(0)
        queue.extend(revived.handle(Event.done(c, response=c.args)))
    assert revived.summary()["result"] == straight.summary["result"] == {"n": 6}
    assert revived.summary()["steps"] == straight.summary["steps"]


def test_tool_args_that_use_credentials_are_deferred_too() -> None:
    # Regression: python tools could not receive a credential through their args.
    run = drive("""
        workflow:
        - step: start
          tool:
            kind: python
            auth: api
            code: "def main(token, plain): return token"
            args: {token: "{{ secret.token }}", plain: "{{ 1 + 1 }}"}
        """)
    c = run.calls("start")[0]
    assert c.args == {} and c.tool["args"] == {"token": None, "plain": 2}
    assert c.deferred == {"args.token": "{{ secret.token }}"}


def test_a_handled_failed_loop_keeps_its_result_under_its_name() -> None:
    # Regression: after an error route, `{{ step }}` of the failed loop was undefined.
    run = drive("""
        workflow:
        - step: start
          loop: {in: "{{ [0, 1] }}", iterator: x}
          case:
          - when: "{{ event.name == 'step.exit' and error is defined }}"
            then: {next: report}
        - step: report
          args: {failed: "{{ start.stats.failed }}"}
        """, lambda c: (_ for _ in ()).throw(Fail()) if c.step == "start" and c.item == 1 else c.args)
    assert run.status == "succeeded"
    assert run.summary["result"] == {"failed": 1}
    assert run.summary["steps"]["start"]["status"] == "failed"


@pytest.mark.parametrize("template", ["{{ 9 ** 999999999 }}", "{{ 'a' * 10**9 }}", "{{ [1] * 10**9 }}",
                                      "{{ (10 ** 9000) ** 9000 }}", "{{ lipsum(n=10**6) }}"])
def test_resource_exhausting_templates_are_refused_quickly(template: str) -> None:
    # Regression: constant folding at compile time and unbounded * / ** hung validate and run.
    from noetl.dsl import parse_playbook

    parse_playbook("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: t}\n"
                   f"workflow:\n- step: start\n  args: {{v: \"{template}\"}}\n")
    run = drive(f"""
        workflow:
        - step: start
          args: {{v: "{template}"}}
        """)
    assert run.status == "failed" and run.summary["error"]["type"] == "TemplateError"


def test_workload_overrides_are_data_not_templates() -> None:
    # Regression: a child playbook's args (possibly a tool's response) were rendered as templates.
    run = drive("""
        workload: {own: "{{ job.uuid }}"}
        workflow:
        - step: start
          args: {given: "{{ workload.given }}", own: "{{ workload.own }}"}
        """, workload={"given": "{{ 7 * 7 }}"})
    assert run.calls("start")[0].args == {"given": "{{ 7 * 7 }}", "own": "ex"}


def test_undefined_name_in_structural_next_args_fails_the_workflow_cleanly() -> None:
    # Regression: the TemplateError escaped the engine instead of failing the run.
    run = drive("""
        workflow:
        - step: start
          next: [{step: b, args: {x: "{{ nope }}"}}]
        - step: b
        """)
    assert run.status == "failed"
    assert run.summary["error"]["step"] == "start" and "nope" in run.summary["error"]["message"]
