"""Every value is commented, docs/operator.md's table is generated from those comments, and the
chart's appVersion is the package version."""

from __future__ import annotations

import tomllib

import yaml

from tests.unit.chart.conftest import CHART, ROOT
from tests.unit.chart.values_docs import DOCS, VALUES, documented_keys, with_table


def test_every_value_has_a_comment() -> None:
    missing = [key for key, comment in documented_keys(VALUES.read_text()) if not comment]
    assert missing == [], "values.yaml keys without a `# --` comment above them"


def test_comment_parser_sees_every_key() -> None:
    def flatten(node: object, prefix: str = "") -> set[str]:
        keys: set[str] = set()
        if isinstance(node, dict):
            for k, v in node.items():
                keys.add(prefix + k)
                keys |= flatten(v, prefix + k + ".")
        return keys

    text = VALUES.read_text()
    assert {k for k, _ in documented_keys(text)} == flatten(yaml.safe_load(text))


def test_docs_values_table_is_generated() -> None:
    doc = DOCS.read_text()
    assert doc == with_table(doc, VALUES.read_text()), \
        "docs/operator.md's values table is stale: run python -m tests.unit.chart.values_docs"


def test_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert chart["appVersion"] == version
