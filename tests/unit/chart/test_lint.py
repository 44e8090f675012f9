"""``helm lint --strict`` passes for the defaults and every install scenario in ci/."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.chart.conftest import CHART, run_helm

SCENARIOS = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))


def test_ci_scenarios_exist() -> None:
    assert {"default-values.yaml", "cluster-wide-values.yaml", "job-executor-values.yaml"} <= set(SCENARIOS)


def test_lint_strict_defaults(helm: str) -> None:
    proc = run_helm(helm, "lint", "--strict", str(CHART))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_strict_scenario(helm: str, scenario: str) -> None:
    proc = run_helm(helm, "lint", "--strict", str(CHART), "--values", str(CHART / "ci" / scenario))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_chart_packages(helm: str, tmp_path: Path) -> None:
    proc = run_helm(helm, "package", str(CHART), "--destination", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["noetl-0.1.0.tgz"]
