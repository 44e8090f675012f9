"""The three seed playbooks, read unchanged from shared/fixtures/seed, run end to end.

Public APIs are replaced by local stand-in servers (workload URLs via --set; the Amadeus chain's
hard-coded hosts are rewritten in a temp copy), Postgres steps hit the real test server, and the
assertions check real outcomes (rows in Postgres, records gathered, alerts raised).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import yaml

from tests.helpers import standins
from tests.helpers.httpserver import LocalHTTPServer
from tests.runner.conftest import noetl



def _pg_credentials(tmp_path: Path, pg: Any, extra: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "credentials.yaml"
    path.write_text(yaml.safe_dump({"pg_local": pg.credential(), **(extra or {})}))
    return path


def test_weather_loop_alerts_above_threshold_and_stores_summary(seed_dir: Path, tmp_path: Path,
                                                                postgres_server: Any, http_server: LocalHTTPServer) -> None:
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(standins.WEATHER_TABLE)
        conn.execute(f"GRANT ALL ON weather_monitoring_summary TO {postgres_server.password_user}")
    standins.weather(http_server)
    creds = _pg_credentials(tmp_path, postgres_server)
    out = noetl("run", str(seed_dir / "weather_loop_v2.yaml"), "--set",
                f"weather_api_url={http_server.url('/v1/forecast')}", "--credentials", str(creds),
                "--output", "json", "--execution-id", "weather-e2e")
    assert out.code == 0, out
    summary = out.json
    assert summary["status"] == "succeeded"
    steps = summary["steps"]
    assert steps["city_loop"]["runs"] == 1 and steps["city_loop"]["calls"] == 4  # 3 cities + 1 retry
    assert steps["evaluate_weather"]["runs"] == 3
    assert steps["send_alert"]["runs"] == 1
    assert steps["send_alert"]["result"] == {"alert_sent": True, "city": "San Francisco", "temperature": 35.5}
    assert steps["end"]["runs"] == 1
    assert summary["result"] == {"status": "completed", "workflow": "weather_monitoring"}
    with psycopg.connect(postgres_server.dsn) as conn:
        rows = conn.execute("SELECT alerts_triggered, summary_data FROM weather_monitoring_summary "
                            "WHERE execution_id = 'weather-e2e'").fetchall()
    assert len(rows) == 1
    alerts_triggered, data = rows[0]
    assert alerts_triggered == 1
    assert [a["city"] for a in data["alerts"]] == ["San Francisco"]
    assert data["alerts"][0]["temperature"] == 35.5


def test_http_pagination_gathers_every_record_of_every_page(seed_dir: Path, http_server: LocalHTTPServer) -> None:
    expected = standins.pagination(http_server)
    out = noetl("run", str(seed_dir / "http_pagination_v2.yaml"), "--set", f"api_url={http_server.base_url}",
                "--output", "json")
    assert out.code == 0, out
    summary = out.json
    steps = summary["steps"]
    assert steps["fetch_all_endpoints"]["calls"] == 7  # 3 + 3 pages + 1 retry
    assert steps["validate_results"]["runs"] == 2
    assert steps["end"]["runs"] == 1
    gathered = steps["fetch_all_endpoints"]["result"]["results"][-1]
    assert sorted(r["id"] for r in gathered) == sorted(expected)
    assert steps["validate_results"]["result"]["total_records"] == 370
    pages = [(r.path, r.query["page"][0]) for r in http_server.requests]
    assert pages.count(("/api/v1/orders", "2")) == 2 and len(pages) == 7


def test_amadeus_chain_stores_the_final_answer(seed_dir: Path, tmp_path: Path, postgres_server: Any,
                                               http_server: LocalHTTPServer) -> None:
    standins.amadeus(http_server)
    playbook = tmp_path / "amadeus_ai_api_v2.yaml"
    playbook.write_text(standins.rewrite_amadeus((seed_dir / "amadeus_ai_api_v2.yaml").read_text(),
                                                 http_server.base_url))
    creds = _pg_credentials(tmp_path, postgres_server, standins.AMADEUS_CREDENTIALS)
    out = noetl("run", str(playbook), "--credentials", str(creds), "--output", "json",
                "--execution-id", "amadeus-e2e")
    assert out.code == 0, out
    summary = out.json
    assert summary["status"] == "succeeded"
    assert summary["result"] == {"status": "workflow_completed"}
    assert summary["steps"]["execute_amadeus_query"]["calls"] == 2  # 502 then success
    assert standins.CLIENT_SECRET not in out.stdout + out.stderr
    assert standins.OPENAI_KEY not in out.stdout + out.stderr
    with psycopg.connect(postgres_server.dsn) as conn:
        rows = conn.execute("SELECT source, result FROM api_results WHERE execution_id = 'amadeus-e2e'").fetchall()
    assert rows == [("amadeus_api", {"query": "I want a one-way flight from SFO to JFK on March 15, 2026 for 1 adult",
                                     "natural_language_result": standins.AMADEUS_ANSWER,
                                     "execution_id": "amadeus-e2e"})]
