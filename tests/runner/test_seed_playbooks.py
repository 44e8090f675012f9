"""The three seed playbooks, read unchanged from shared/fixtures/seed, run end to end.

Public APIs are replaced by local stand-in servers (workload URLs via --set; the Amadeus chain's
hard-coded hosts are rewritten in a temp copy), Postgres steps hit the real test server, and the
assertions check real outcomes (rows in Postgres, records gathered, alerts raised).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import yaml

from tests.helpers.httpserver import LocalHTTPServer, Reply, Request
from tests.runner.conftest import noetl

CITY_TEMPS = {"37.7749": 35.5, "40.7128": 21.0, "51.5074": 12.25}  # SF above the 30 °C threshold


def _pg_credentials(tmp_path: Path, pg: Any, extra: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "credentials.yaml"
    path.write_text(yaml.safe_dump({"pg_local": pg.credential(), **(extra or {})}))
    return path


def test_weather_loop_alerts_above_threshold_and_stores_summary(seed_dir: Path, tmp_path: Path,
                                                                postgres_server: Any, http_server: LocalHTTPServer) -> None:
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute("""CREATE TABLE IF NOT EXISTS weather_monitoring_summary (
            execution_id TEXT, total_cities INT, alerts_triggered INT, summary_data JSONB, created_at TIMESTAMP)""")
        conn.execute(f"GRANT ALL ON weather_monitoring_summary TO {postgres_server.password_user}")
    flaky = {"count": 0}

    def forecast(req: Request) -> Reply:
        lat = req.query["latitude"][0]
        if lat == "40.7128" and flaky["count"] == 0:  # New York fails once: the 5xx retry rule must fire
            flaky["count"] += 1
            return Reply(status=503, json={"error": "busy"})
        assert req.query["current_weather"] == ["true"]
        return Reply(json={"current_weather": {"temperature": CITY_TEMPS[lat], "windspeed": 5.0}})

    http_server.route("/v1/forecast", handler=forecast)
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


def _paged(total: int) -> Any:
    def handler(req: Request) -> Reply:
        page, size = int(req.query["page"][0]), int(req.query["pageSize"][0])
        start = (page - 1) * size
        ids = list(range(start, min(start + size, total)))
        return Reply(json={"data": [{"id": f"{req.path}#{i}"} for i in ids],
                           "paging": {"page": page, "pageSize": size, "hasMore": start + size < total}})
    return handler


def test_http_pagination_gathers_every_record_of_every_page(seed_dir: Path, http_server: LocalHTTPServer) -> None:
    http_server.route("/api/v1/users", handler=_paged(250))   # 3 pages of 100
    orders = _paged(120)                                     # 3 pages of 50, page 2 fails once with 503
    failed = {"done": False}

    def flaky_orders(req: Request) -> Reply:
        if req.query["page"] == ["2"] and not failed["done"]:
            failed["done"] = True
            return Reply(status=503, json={})
        return orders(req)

    http_server.route("/api/v1/orders", handler=flaky_orders)
    out = noetl("run", str(seed_dir / "http_pagination_v2.yaml"), "--set", f"api_url={http_server.base_url}",
                "--output", "json")
    assert out.code == 0, out
    summary = out.json
    steps = summary["steps"]
    assert steps["fetch_all_endpoints"]["calls"] == 7  # 3 + 3 pages + 1 retry
    assert steps["validate_results"]["runs"] == 2
    assert steps["end"]["runs"] == 1
    gathered = steps["fetch_all_endpoints"]["result"]["results"][-1]
    expected = {f"/api/v1/users#{i}" for i in range(250)} | {f"/api/v1/orders#{i}" for i in range(120)}
    assert sorted(r["id"] for r in gathered) == sorted(expected)
    assert steps["validate_results"]["result"]["total_records"] == 370
    pages = [(r.path, r.query["page"][0]) for r in http_server.requests]
    assert pages.count(("/api/v1/orders", "2")) == 2 and len(pages) == 7


def test_amadeus_chain_stores_the_final_answer(seed_dir: Path, tmp_path: Path, postgres_server: Any,
                                               http_server: LocalHTTPServer) -> None:
    answer = "One nonstop United flight from San Francisco (SFO) to New York JFK at $199."
    offers = {"data": [{"id": "1", "price": {"total": "199.00"}}]}
    flaky = {"count": 0}

    def token(req: Request) -> Reply:
        form = req.form()
        assert form == {"grant_type": ["client_credentials"], "client_id": ["cid-123"],
                        "client_secret": ["canary-secret-987"]}
        return Reply(json={"access_token": "tok-abc", "expires_in": 1799})

    def chat(req: Request) -> Reply:
        assert req.headers["authorization"] == "Bearer sk-canary-openai"
        body = req.json()
        if "translator" in body["messages"][0]["content"]:
            content = '```json\n{"endpoint": "/v2/shopping/flight-offers", "params": {"originLocationCode": ' \
                      '"SFO", "destinationLocationCode": "JFK", "departureDate": "2026-03-15", "adults": 1, ' \
                      '"max": 3}}\n```'
        else:
            assert json.loads(body["messages"][1]["content"]) == offers
            content = answer
        return Reply(json={"choices": [{"message": {"role": "assistant", "content": content}}]})

    def flight_offers(req: Request) -> Reply:
        assert req.headers["authorization"] == "Bearer tok-abc"
        assert req.query["originLocationCode"] == ["SFO"] and req.query["max"] == ["3"]
        flaky["count"] += 1
        if flaky["count"] == 1:
            return Reply(status=502, json={"errors": ["upstream"]})
        return Reply(json=offers)

    http_server.route("/v1/security/oauth2/token", method="POST", handler=token)
    http_server.route("/v1/chat/completions", method="POST", handler=chat)
    http_server.route("/v2/shopping/flight-offers", handler=flight_offers)

    text = (seed_dir / "amadeus_ai_api_v2.yaml").read_text()
    text = text.replace("https://test.api.amadeus.com", http_server.base_url)
    text = text.replace("https://api.openai.com", http_server.base_url)
    playbook = tmp_path / "amadeus_ai_api_v2.yaml"
    playbook.write_text(text)
    creds = _pg_credentials(tmp_path, postgres_server, {
        "projects/1014428265962/secrets/api-key-test-api-amadeus-com/versions/1":
            {"amadeus": {"client_id": "cid-123", "client_secret": "canary-secret-987"}},
        "projects/1014428265962/secrets/openai-api-key/versions/1": {"openai": "sk-canary-openai"},
    })
    out = noetl("run", str(playbook), "--credentials", str(creds), "--output", "json",
                "--execution-id", "amadeus-e2e")
    assert out.code == 0, out
    summary = out.json
    assert summary["status"] == "succeeded"
    assert summary["result"] == {"status": "workflow_completed"}
    assert summary["steps"]["execute_amadeus_query"]["calls"] == 2  # 502 then success
    assert "canary-secret-987" not in out.stdout + out.stderr
    assert "sk-canary-openai" not in out.stdout + out.stderr
    with psycopg.connect(postgres_server.dsn) as conn:
        rows = conn.execute("SELECT source, result FROM api_results WHERE execution_id = 'amadeus-e2e'").fetchall()
    assert rows == [("amadeus_api", {"query": "I want a one-way flight from SFO to JFK on March 15, 2026 for 1 adult",
                                     "natural_language_result": answer, "execution_id": "amadeus-e2e"})]
