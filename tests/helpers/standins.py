"""Local stand-ins for the public APIs the seed playbooks call, shared by the embedded-runner and
the cluster tests. Each installs routes on a ``LocalHTTPServer`` and counts what it served."""

from __future__ import annotations

import json
from typing import Any

from tests.helpers.httpserver import LocalHTTPServer, Reply, Request

CITY_TEMPS = {"37.7749": 35.5, "40.7128": 21.0, "51.5074": 12.25}  # SF above the 30 °C threshold
WEATHER_TABLE = """CREATE TABLE IF NOT EXISTS weather_monitoring_summary (
    execution_id TEXT, total_cities INT, alerts_triggered INT, summary_data JSONB, created_at TIMESTAMP)"""

AMADEUS_ANSWER = "One nonstop United flight from San Francisco (SFO) to New York JFK at $199."
AMADEUS_OFFERS = {"data": [{"id": "1", "price": {"total": "199.00"}}]}
CLIENT_SECRET = "canary-secret-987"
OPENAI_KEY = "sk-canary-openai"
AMADEUS_CREDENTIALS = {
    "projects/1014428265962/secrets/api-key-test-api-amadeus-com/versions/1":
        {"amadeus": {"client_id": "cid-123", "client_secret": CLIENT_SECRET}},
    "projects/1014428265962/secrets/openai-api-key/versions/1": {"openai": OPENAI_KEY},
}


def weather(server: LocalHTTPServer) -> None:
    """Open-Meteo stand-in at /v1/forecast; New York answers 503 once (the retry rule must fire)."""
    failed = {"done": False}

    def forecast(req: Request) -> Reply:
        lat = req.query["latitude"][0]
        if lat == "40.7128" and not failed["done"]:
            failed["done"] = True
            return Reply(status=503, json={"error": "busy"})
        assert req.query["current_weather"] == ["true"]
        return Reply(json={"current_weather": {"temperature": CITY_TEMPS[lat], "windspeed": 5.0}})

    server.route("/v1/forecast", handler=forecast)


def _paged(total: int, *, fail_page: str | None = None) -> Any:
    failed = {"done": False}

    def handler(req: Request) -> Reply:
        if fail_page and req.query["page"] == [fail_page] and not failed["done"]:
            failed["done"] = True
            return Reply(status=503, json={})
        page, size = int(req.query["page"][0]), int(req.query["pageSize"][0])
        start = (page - 1) * size
        ids = list(range(start, min(start + size, total)))
        return Reply(json={"data": [{"id": f"{req.path}#{i}"} for i in ids],
                           "paging": {"page": page, "pageSize": size, "hasMore": start + size < total}})
    return handler


def pagination(server: LocalHTTPServer) -> set[str]:
    """Users (250 = 3 pages of 100) and orders (120 = 3 pages of 50, page 2 fails once with 503);
    returns every record id the playbook must gather."""
    server.route("/api/v1/users", handler=_paged(250))
    server.route("/api/v1/orders", handler=_paged(120, fail_page="2"))
    return {f"/api/v1/users#{i}" for i in range(250)} | {f"/api/v1/orders#{i}" for i in range(120)}


def amadeus(server: LocalHTTPServer) -> None:
    """OAuth token, two OpenAI chat calls and the flight-offers API (which answers 502 once)."""
    flaky = {"count": 0}

    def token(req: Request) -> Reply:
        assert req.form() == {"grant_type": ["client_credentials"], "client_id": ["cid-123"],
                              "client_secret": [CLIENT_SECRET]}
        return Reply(json={"access_token": "tok-abc", "expires_in": 1799})

    def chat(req: Request) -> Reply:
        assert req.headers["authorization"] == f"Bearer {OPENAI_KEY}"
        body = req.json()
        if "translator" in body["messages"][0]["content"]:
            content = '```json\n{"endpoint": "/v2/shopping/flight-offers", "params": {"originLocationCode": ' \
                      '"SFO", "destinationLocationCode": "JFK", "departureDate": "2026-03-15", "adults": 1, ' \
                      '"max": 3}}\n```'
        else:
            assert json.loads(body["messages"][1]["content"]) == AMADEUS_OFFERS
            content = AMADEUS_ANSWER
        return Reply(json={"choices": [{"message": {"role": "assistant", "content": content}}]})

    def flight_offers(req: Request) -> Reply:
        assert req.headers["authorization"] == "Bearer tok-abc"
        assert req.query["originLocationCode"] == ["SFO"] and req.query["max"] == ["3"]
        flaky["count"] += 1
        if flaky["count"] == 1:
            return Reply(status=502, json={"errors": ["upstream"]})
        return Reply(json=AMADEUS_OFFERS)

    server.route("/v1/security/oauth2/token", method="POST", handler=token)
    server.route("/v1/chat/completions", method="POST", handler=chat)
    server.route("/v2/shopping/flight-offers", handler=flight_offers)


def rewrite_amadeus(text: str, base_url: str) -> str:
    """The seed with its hard-coded API hosts pointed at the stand-in (nothing else changed)."""
    return text.replace("https://test.api.amadeus.com", base_url).replace("https://api.openai.com", base_url)
