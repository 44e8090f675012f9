"""The chart's crds/ are exact copies of the generated /crds (``noetl crds``).

Helm installs crds/ before the templates and never upgrades or deletes them; refresh the copies
with ``cp crds/*.yaml charts/noetl/crds/`` whenever the models change.
"""

from __future__ import annotations

from pathlib import Path

from tests.unit.chart.conftest import CHART, ROOT


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.yaml"))}


def test_chart_crds_are_identical_to_generated_crds() -> None:
    generated, chart = files(ROOT / "crds"), files(CHART / "crds")
    assert generated, "crds/ is empty: run `noetl crds --output-dir crds`"
    assert sorted(chart) == sorted(generated), "charts/noetl/crds/ and crds/ hold different files"
    stale = [name for name in generated if chart[name] != generated[name]]
    assert not stale, f"charts/noetl/crds/ is out of date for {stale}: cp crds/*.yaml charts/noetl/crds/"
