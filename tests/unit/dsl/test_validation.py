"""Validation: every rejection names file, line, step and field, with a fix hint (DESIGN §3.1)."""

from __future__ import annotations

import textwrap

import pytest

from noetl.dsl import load_playbook, parse_playbook, to_manifest
from noetl.errors import PlaybookError, PlaybookSyntaxError
from tests.helpers.seeds import seed_dir

HEAD = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: t}\n"


def problems(body: str) -> list[str]:
    with pytest.raises(PlaybookError) as info:
        parse_playbook(HEAD + textwrap.dedent(body).lstrip("\n"), file="pb.yaml")
    return [str(p) for p in info.value.problems if p.severity == "error"]  # type: ignore[attr-defined]


def test_seed_playbooks_are_valid() -> None:
    seeds = sorted(seed_dir().glob("*.yaml"))
    assert len(seeds) == 3
    for seed in seeds:
        parsed = load_playbook(seed)
        assert parsed.warnings == []
        assert parsed.playbook.workflow[0].step == "start"


def test_malformed_yaml_names_the_line() -> None:
    with pytest.raises(PlaybookSyntaxError) as info:
        parse_playbook(HEAD + "workflow:\n- step: start\n  tool: {kind: noop\n", file="pb.yaml")
    assert str(info.value).startswith("pb.yaml:")
    assert "malformed YAML" in str(info.value)


def test_missing_start_step() -> None:
    assert problems("""
        workflow:
        - step: begin
        """) == ["pb.yaml:4: workflow: no step named 'start': the workflow begins at the step named 'start'"]


def test_duplicate_step_names() -> None:
    out = problems("""
        workflow:
        - step: start
        - step: start
        """)
    assert out == ["pb.yaml:6: step 'start': step: duplicate step name 'start' (first defined as step #1); "
                   "step names must be unique"]


def test_unknown_next_target_with_suggestion() -> None:
    out = problems("""
        workflow:
        - step: start
          next: fetch_dat
        - step: fetch_data
        """)
    assert out == ["pb.yaml:6: step 'start': next[0]: next target 'fetch_dat' is not a step; "
                   "did you mean 'fetch_data'?"]


def test_unknown_then_next_target() -> None:
    out = problems("""
        workflow:
        - step: start
          case:
          - when: "{{ true }}"
            then: {next: [{step: nowhere}]}
        """)
    assert len(out) == 1 and "next target 'nowhere' is not a step" in out[0] and out[0].startswith("pb.yaml:8:")


def test_end_is_always_a_valid_target() -> None:
    parse_playbook(HEAD + "workflow:\n- step: start\n  next: end\n")


def test_unknown_tool_kind() -> None:
    out = problems("""
        workflow:
        - step: start
          tool: {kind: ftp}
        """)
    assert out == ["pb.yaml:6: step 'start': tool.kind: unknown tool kind 'ftp'; use one of: "
                   "http, noop, playbook, postgres, python, workbook"]


def test_call_and_retry_in_one_then_map() -> None:
    out = problems("""
        workflow:
        - step: start
          case:
          - when: "{{ true }}"
            then: {call: {}, retry: {}}
        """)
    assert len(out) == 1 and "'call' and 'retry' cannot be in the same 'then' map" in out[0]


def test_malformed_loop() -> None:
    out = problems("""
        workflow:
        - step: start
          loop: {iterator: x}
        """)
    assert out == ["pb.yaml:6: step 'start': loop: malformed loop: write loop: {in: '{{ <list> }}', "
                   "iterator: <name>}"]


def test_template_syntax_error_names_the_field() -> None:
    out = problems("""
        workflow:
        - step: start
          args: {x: "{{ a b }}"}
        """)
    assert len(out) == 1 and out[0].startswith("pb.yaml:6: step 'start': args.x: template syntax error")


def test_when_without_braces_is_syntax_checked() -> None:
    out = problems("""
        workflow:
        - step: start
          case:
          - when: "a ==="
            then: {set: {x: 1}}
        """)
    assert len(out) == 1 and "case[0].when" in out[0]


@pytest.mark.parametrize("snippet,hint", [
    ("  type: http\n", "write tool: {kind: http}"),
    ("  next: [{when: '{{ x }}', then: [{step: end}]}]\n", "move the condition into 'case:"),
    ("  with: {a: 1}\n", "pass data with 'args'"),
], ids=["type", "conditional-next", "with"])
def test_dsl_v1_constructs_are_rejected_with_a_migration_hint(snippet: str, hint: str) -> None:
    out = problems("workflow:\n- step: start\n" + snippet)
    assert len(out) == 1 and hint in out[0]


def test_workbook_with_stays_valid() -> None:
    parse_playbook(HEAD + textwrap.dedent("""
        workbook:
        - name: t
          tool: {kind: noop}
        workflow:
        - step: start
          tool: {kind: workbook, task: t, with: {a: 1}}
        """))


def test_unknown_workbook_task() -> None:
    out = problems("""
        workflow:
        - step: start
          tool: {kind: workbook, task: missing}
        """)
    assert len(out) == 1 and "workbook task 'missing' is not defined" in out[0]


def test_unknown_keys_are_warnings_not_errors() -> None:
    parsed = parse_playbook(HEAD + "future_key: 1\nworkflow:\n- step: start\n  retries: 3\n", file="pb.yaml")
    assert [str(w) for w in parsed.warnings] == [
        "pb.yaml:4: warning: unknown top-level key 'future_key' is ignored",
        "pb.yaml:7: step 'start': retries: warning: unknown key 'retries' is ignored",
    ]


def test_schema_errors_are_located() -> None:
    out = problems("""
        workflow:
        - step: start
          loop: {in: "{{ [1] }}", mode: sideways}
        """)
    assert len(out) == 1 and out[0].startswith("pb.yaml:6: step 'start': loop.mode:")


def test_every_problem_is_reported_at_once() -> None:
    out = problems("""
        workflow:
        - step: start
          next: nowhere
        - step: start
          tool: {kind: ftp}
        """)
    assert len(out) == 3


def test_resource_form_parses_to_the_same_playbook() -> None:
    seed = seed_dir() / "weather_loop_v2.yaml"
    parsed = load_playbook(seed)
    manifest = to_manifest(parsed)
    assert manifest["metadata"]["name"] == "weather-loop-v2"
    assert manifest["metadata"]["annotations"]["noetl.io/path"] == "examples/weather_loop_v2"
    import yaml

    again = parse_playbook(yaml.safe_dump(manifest))
    assert again.form == "resource"
    assert again.playbook == parsed.playbook


def test_schema_errors_do_not_hide_reference_errors() -> None:
    # Regression: a schema error used to stop validation before the cross-reference checks, so a
    # user fixed one kind of problem per run.
    out = problems("""
        workflow:
        - step: start
          type: http
          next: fetc
        - step: fetch
          loop: {in: "{{ [1] }}", mode: sideways}
          tool: {kind: workbook, task: t2}
        workbook:
        - name: t1
          tool: {kind: noop}
        """)
    assert [o.split(": ", 1)[0] for o in out] == ["pb.yaml:6", "pb.yaml:7", "pb.yaml:9", "pb.yaml:10"]
    assert "did you mean 'fetch'" in out[1] and "known tasks: t1" in out[3]


def test_a_workbook_entry_cannot_be_a_workbook_task() -> None:
    out = problems("""
        workbook:
        - name: a
          tool: {kind: workbook, task: a}
        workflow:
        - step: start
          tool: {kind: workbook, task: a}
        """)
    assert len(out) == 1 and "cannot itself be a workbook task" in out[0]


def test_manifest_quotes_keys_that_yaml_1_1_reads_as_booleans() -> None:
    # Regression: `n: 3` in a workload reached the cluster as `"false": 3` (kubectl reads YAML 1.1).
    from noetl.dsl._yaml import dump_all

    parsed = parse_playbook(HEAD + "workload: {n: 3, y: yes, 'on': x}\nworkflow:\n- step: start\n")
    text = dump_all([to_manifest(parsed)])
    assert '"n": 3' in text and '"y": true' in text and '"on": x' in text
