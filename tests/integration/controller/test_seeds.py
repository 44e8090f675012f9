"""The three seed playbooks as Playbook resources, run through Executions in both executor modes:
each must give what the embedded runner (`noetl run`) gives for the same input.

Stand-in servers are fresh for each side (their one-time failures, which exercise the retry rules,
must happen for both). Credentials come from Secrets annotated `noetl.io/credential: NAME`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import psycopg
import pytest

import noetl
from tests.helpers import standins
from tests.helpers.httpserver import LocalHTTPServer
from tests.helpers.seeds import seed_dir
from tests.integration.controller.conftest import (
    apply_playbook,
    create_execution,
    summary_of,
    wait_execution,
    worker_deployment,
)
from tools.testenv.kube import Kube

pytestmark = pytest.mark.k8s


def secret(kube: Kube, namespace: str, credential: str, value: dict[str, Any]) -> None:
    name = "cred-" + str(abs(hash(credential)))[:12]
    data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
    kube.core.create_namespaced_secret(namespace, {
        "metadata": {"name": name, "annotations": {"noetl.io/credential": credential}}, "stringData": data})


def run_both(kube: Kube, namespace: str, executor: str, tmp_path: Path, *, name: str,
             setup: Callable[[LocalHTTPServer], dict[str, Any]], text: Callable[[str], str],
             credentials: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the seed locally and in the cluster, each against its own fresh stand-in server."""
    with LocalHTTPServer() as local_server:
        workload = setup(local_server)
        path = tmp_path / f"{name}.yaml"
        path.write_text(text(local_server.base_url))
        local = noetl.run(path, workload=workload, credentials=credentials)
    with LocalHTTPServer() as cluster_server:
        workload = setup(cluster_server)
        path.write_text(text(cluster_server.base_url))
        resource = apply_playbook(kube, namespace, path)
        create_execution(kube, namespace, f"{resource}-run", resource, executor=executor, workload=workload or None)
        obj = wait_execution(kube, namespace, f"{resource}-run", timeout=300)
    expected = {"status": local["status"], "result": local["result"],
                "steps": {k: {"status": v["status"], "runs": v["runs"], "calls": v["calls"]}
                          for k, v in local["steps"].items()}}
    return summary_of(obj), expected


@pytest.fixture
def cluster(kube: Kube, noetl_ns: str, operator_factory: Any, request: pytest.FixtureRequest) -> str:
    executor = request.param
    operator_factory(noetl_ns, executor)
    if executor == "worker":
        kube.apply(worker_deployment(), namespace=noetl_ns)
    return executor


@pytest.mark.parametrize("cluster", ["worker", "job"], indirect=True)
def test_http_pagination_seed(kube: Kube, noetl_ns: str, cluster: str, tmp_path: Path) -> None:
    source = (seed_dir() / "http_pagination_v2.yaml").read_text()
    got, expected = run_both(kube, noetl_ns, cluster, tmp_path, name="pagination", text=lambda _: source,
                             setup=lambda s: (standins.pagination(s), {"api_url": s.base_url})[1], credentials={})
    assert got == expected
    assert expected["status"] == "succeeded" and expected["steps"]["fetch_all_endpoints"]["calls"] == 7


@pytest.mark.parametrize("cluster", ["worker", "job"], indirect=True)
def test_weather_seed(kube: Kube, noetl_ns: str, cluster: str, tmp_path: Path, postgres_server: Any) -> None:
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(standins.WEATHER_TABLE)
        conn.execute(f"GRANT ALL ON weather_monitoring_summary TO {postgres_server.password_user}")
        before = conn.execute("SELECT count(*) FROM weather_monitoring_summary").fetchone()[0]  # type: ignore[index]
    secret(kube, noetl_ns, "pg_local", postgres_server.credential())
    source = (seed_dir() / "weather_loop_v2.yaml").read_text()
    got, expected = run_both(kube, noetl_ns, cluster, tmp_path, name="weather", text=lambda _: source,
                             setup=lambda s: (standins.weather(s), {"weather_api_url": s.url("/v1/forecast")})[1],
                             credentials={"pg_local": postgres_server.credential()})
    assert got == expected
    assert expected["steps"]["send_alert"]["runs"] == 1
    with psycopg.connect(postgres_server.dsn) as conn:
        after = conn.execute("SELECT count(*) FROM weather_monitoring_summary").fetchone()[0]  # type: ignore[index]
    assert after == before + 2  # one summary row from each side


@pytest.mark.parametrize("cluster", ["worker", "job"], indirect=True)
def test_amadeus_seed(kube: Kube, noetl_ns: str, cluster: str, tmp_path: Path, postgres_server: Any) -> None:
    secret(kube, noetl_ns, "pg_local", postgres_server.credential())
    for name, value in standins.AMADEUS_CREDENTIALS.items():
        secret(kube, noetl_ns, name, value)
    source = (seed_dir() / "amadeus_ai_api_v2.yaml").read_text()
    got, expected = run_both(kube, noetl_ns, cluster, tmp_path, name="amadeus",
                             text=lambda base: standins.rewrite_amadeus(source, base),
                             setup=lambda s: (standins.amadeus(s), {})[1],
                             credentials={"pg_local": postgres_server.credential(), **standins.AMADEUS_CREDENTIALS})
    assert got == expected
    assert expected["result"] == {"status": "workflow_completed"}
