"""The CRD generator: committed files match it, schemas are structural and documented.

The apiserver checks the same things on `kubectl apply` (tests/integration/test_crds.py); these
run without a cluster so a schema mistake fails fast, with the regenerate command in the message.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from noetl.k8s import _resources as res
from noetl.k8s._cli import cmd_crds
from noetl.k8s._crds import PRESERVE, build_crds, crd_filename, render_crd

ROOT = Path(__file__).resolve().parents[3]
REGENERATE = "noetl crds --output-dir crds"


def _schemas() -> dict[str, dict[str, Any]]:
    return {c["spec"]["names"]["kind"]: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for c in build_crds()}


def _nodes(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its dotted path (``[]`` for array items, ``*`` for map values)."""
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}.*")


@pytest.mark.parametrize("crd", build_crds(), ids=crd_filename)
def test_committed_file_matches_the_generator(crd: dict[str, Any]) -> None:
    path = ROOT / "crds" / crd_filename(crd)
    expected = render_crd(crd)
    committed = path.read_text(encoding="utf-8") if path.exists() else "<missing>"
    assert committed == expected, f"{path.relative_to(ROOT)} is out of date: run `{REGENERATE}` and commit the result"


def test_no_stray_files_in_crds_dir() -> None:
    names = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert names == sorted(crd_filename(c) for c in build_crds()), f"run `{REGENERATE}`; remove files it does not write"


@pytest.mark.parametrize("kind", ["Playbook", "Execution"])
def test_schema_is_structural(kind: str) -> None:
    bad = []
    for path, node in _nodes(_schemas()[kind], kind):
        if not node.get("type") and not node.get(PRESERVE):
            bad.append(f"{path}: no type and not preserve-unknown")
        bad += [f"{path}: has {key}" for key in ("$ref", "anyOf", "oneOf", "allOf", "title", "default") if key in node]
        if node.get("properties") and "additionalProperties" in node:
            bad.append(f"{path}: properties and additionalProperties together")
    assert bad == []


@pytest.mark.parametrize("kind", ["Playbook", "Execution"])
def test_every_field_has_a_description(kind: str) -> None:
    missing = [path for path, node in _nodes(_schemas()[kind], kind) if not node.get("description")
               and not path.endswith(("[]", ".*"))]
    assert missing == []


def test_every_contract_status_field_is_in_the_schema() -> None:
    """A status field missing from the schema would be pruned by the apiserver (DESIGN §4.1)."""
    status = _schemas()["Execution"]["properties"]["status"]
    assert set(res.ExecutionStatus.model_fields) <= set(status["properties"])
    assert status[PRESERVE] is True  # fields added to the operator before regeneration survive too
    pb_status = _schemas()["Playbook"]["properties"]["status"]
    assert set(res.PlaybookStatus.model_fields) <= set(pb_status["properties"])
    assert pb_status[PRESERVE] is True  # kopf keeps handler progress in status.kopf


@pytest.mark.parametrize("field", ["steps", "commands", "inbox"])
def test_status_maps_keep_arbitrary_keys_and_content(field: str) -> None:
    node = _schemas()["Execution"]["properties"]["status"]["properties"][field]
    assert node["type"] == "object"
    assert node["additionalProperties"] == {"type": "object", PRESERVE: True}


@pytest.mark.parametrize("field", ["state", "error", "playbook", "resultRef"])
def test_free_form_status_objects_are_preserved(field: str) -> None:
    node = _schemas()["Execution"]["properties"]["status"]["properties"][field]
    assert node["type"] == "object" and node[PRESERVE] is True


def test_result_accepts_any_json_value() -> None:
    node = _schemas()["Execution"]["properties"]["status"]["properties"]["result"]
    assert "type" not in node and node[PRESERVE] is True


def test_spec_fields_are_typed() -> None:
    spec = _schemas()["Execution"]["properties"]["spec"]["properties"]
    assert spec["timeoutSeconds"] == {**spec["timeoutSeconds"], "type": "integer", "minimum": 1}
    assert spec["executor"]["enum"] == ["worker", "job"]
    assert spec["suspend"]["type"] == spec["cancel"]["type"] == "boolean"
    assert spec["playbookRef"]["required"] == ["name"]


def test_inline_playbook_has_the_playbook_spec_shape() -> None:
    schemas = _schemas()
    inline = schemas["Execution"]["properties"]["spec"]["properties"]["playbook"]
    body = schemas["Playbook"]["properties"]["spec"]
    assert inline["properties"] == body["properties"]


def test_step_schema() -> None:
    step = _schemas()["Playbook"]["properties"]["spec"]["properties"]["workflow"]["items"]
    props = step["properties"]
    assert step["required"] == ["step"] and step[PRESERVE] is True
    assert props["tool"]["properties"]["kind"]["type"] == "string"
    assert props["loop"]["properties"]["mode"]["enum"] == ["sequential", "parallel"]
    assert props["loop"]["properties"]["max_in_flight"]["type"] == "integer"
    assert "type" not in props["loop"]["properties"]["in"]  # a template string or a list
    assert "type" not in props["next"]  # a name, a map or a list
    assert props["case"]["items"]["type"] == "object"


@pytest.mark.parametrize(("kind", "short", "columns"), [
    ("Playbook", "pb", ["Phase", "Steps", "Age"]),
    ("Execution", "nex", ["Playbook", "Phase", "Progress", "Age", "Duration"]),
])
def test_names_and_printer_columns(kind: str, short: str, columns: list[str]) -> None:
    crd = next(c for c in build_crds() if c["spec"]["names"]["kind"] == kind)
    names, version = crd["spec"]["names"], crd["spec"]["versions"][0]
    assert crd["spec"]["group"] == res.GROUP and version["name"] == res.VERSION
    assert names["shortNames"] == [short] and names["categories"] == ["noetl"]
    assert version["served"] and version["storage"] and version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == columns


def test_crds_command_prints_multi_document_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_crds(argparse.Namespace(output_dir=None)) == 0
    assert list(yaml.safe_load_all(capsys.readouterr().out)) == build_crds()


def test_crds_command_writes_files(tmp_path: Path) -> None:
    assert cmd_crds(argparse.Namespace(output_dir=str(tmp_path / "out"))) == 0
    for crd in build_crds():
        assert (tmp_path / "out" / crd_filename(crd)).read_text() == render_crd(crd)


def test_output_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOETL_OUTPUT_DIR", str(tmp_path))
    assert cmd_crds(argparse.Namespace(output_dir=None)) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(crd_filename(c) for c in build_crds())
