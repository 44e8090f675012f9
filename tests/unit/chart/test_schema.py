"""values.schema.json rejects mistyped, misspelled and out-of-range values with a message that
names the value and says what is wrong."""

from __future__ import annotations

import json

import pytest

from tests.unit.chart.conftest import CHART, run_helm

REJECTED = {
    "string-for-integer": (["--set", "worker.replicas=two"], "/worker/replicas", "got string, want integer"),
    "string-for-boolean": (["--set-string", "watch.clusterWide=yes"], "/watch/clusterWide",
                           "got string, want boolean"),
    "unknown-executor": (["--set", "executor=fast"], "/executor", "'worker', 'job'"),
    "misspelled-top-level-key": (["--set", "operater.replicas=1"], "additional properties 'operater' not allowed", ""),
    "misspelled-nested-key": (["--set", "worker.replica=3"], "additional properties 'replica' not allowed", ""),
    "bad-quantity": (["--set", "operator.resources.limits.cpu=lots"], "/operator/resources/limits/cpu", "lots"),
    "zero-concurrency": (["--set", "worker.concurrency=0"], "/worker/concurrency", "minimum"),
    "bad-log-level": (["--set", "logLevel=verbose"], "/logLevel", "'DEBUG', 'INFO', 'WARNING', 'ERROR'"),
    "bad-pull-policy": (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy", "IfNotPresent"),
    "postgres-without-secret": (["--set", "resultStore.type=postgres"], "/resultStore/postgres/existingSecret",
                                "minLength"),
    "bad-namespace-name": (["--set", "watch.clusterWide=true", "--set", "job.extraNamespaces[0]=Not_A_Name"],
                           "/job/extraNamespaces/0", "does not match pattern"),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_wrong_values_are_rejected_with_a_readable_message(helm: str, case: str) -> None:
    args, where, what = REJECTED[case]
    proc = run_helm(helm, "template", "demo", str(CHART), *args)
    assert proc.returncode != 0, f"{args} was accepted"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert where in proc.stderr and what in proc.stderr, proc.stderr


def test_extra_namespaces_need_cluster_wide_mode(helm: str) -> None:
    proc = run_helm(helm, "template", "demo", str(CHART), "--set", "job.extraNamespaces[0]=analytics")
    assert proc.returncode != 0
    assert "job.extraNamespaces needs watch.clusterWide=true" in proc.stderr, proc.stderr


def test_schema_closes_every_object() -> None:
    """Every object in the schema lists its properties and forbids others (a typo fails the install)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    open_objects: list[str] = []

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            closed = node.get("additionalProperties") is False
            if node.get("type") == "object" and "properties" in node and path not in OPEN_ON_PURPOSE and not closed:
                open_objects.append(path)
            for key, child in node.items():
                walk(child, f"{path}/{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, f"{path}/{i}")

    walk(schema, "")
    assert open_objects == []


# Kubernetes' own structures: their fields are Kubernetes' business, not the chart's.
OPEN_ON_PURPOSE = {"/properties/podSecurityContext", "/properties/containerSecurityContext",
                   "/$defs/envList/items"}
