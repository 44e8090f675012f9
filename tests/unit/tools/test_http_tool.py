"""The http tool against a real local HTTP server (DESIGN §3.8)."""

from __future__ import annotations

import json

import pytest

from noetl.tools import HttpTool
from tests.helpers.httpserver import LocalHTTPServer, Reply, Request, refused_url
from tests.helpers.tools import call_tool, call_tool_error


def test_get_json_returns_parsed_data_and_metadata(http_server: LocalHTTPServer) -> None:
    http_server.route("/items", json={"items": [1, 2, 3]}, headers={"X-Trace": "abc"})
    result = call_tool(HttpTool(), {"method": "GET", "endpoint": http_server.url("/items")})
    assert result["status"] == 200 and result["status_code"] == 200
    assert result["data"] == {"items": [1, 2, 3]}
    assert result["headers"]["x-trace"] == "abc"
    assert result["url"] == http_server.url("/items")
    assert isinstance(result["elapsed"], float) and result["elapsed"] >= 0
    json.dumps(result)  # the result is JSON as it is


def test_text_response_is_returned_as_text(http_server: LocalHTTPServer) -> None:
    http_server.route("/hello", text="hello, world")
    assert call_tool(HttpTool(), {"endpoint": http_server.url("/hello")})["data"] == "hello, world"


def test_json_body_without_json_content_type_is_parsed(http_server: LocalHTTPServer) -> None:
    http_server.route("/raw", body=b'{"a": 1}', headers={"Content-Type": "text/plain"})
    assert call_tool(HttpTool(), {"endpoint": http_server.url("/raw")})["data"] == {"a": 1}


def test_params_drop_none_render_bools_and_repeat_lists(http_server: LocalHTTPServer) -> None:
    http_server.route("/q", json={})
    call_tool(HttpTool(), {"url": http_server.url("/q"),
                           "params": {"current_weather": True, "off": False, "skip": None, "lat": 37.77,
                                      "ids": [1, 2], "page": 1}})
    query = http_server.requests_to("/q")[0].query
    assert query == {"current_weather": ["true"], "off": ["false"], "lat": ["37.77"], "ids": ["1", "2"], "page": ["1"]}


def test_headers_are_sent(http_server: LocalHTTPServer) -> None:
    http_server.route("/h", json={})
    call_tool(HttpTool(), {"endpoint": http_server.url("/h"), "headers": {"Authorization": "Bearer t0k", "X-N": 5}})
    headers = http_server.requests_to("/h")[0].headers
    assert headers["authorization"] == "Bearer t0k" and headers["x-n"] == "5"


BODIES = {
    "payload-json": ({"payload": {"a": 1, "b": [True]}}, "application/json", {"a": 1, "b": [True]}),
    "json-field": ({"json": [1, 2]}, "application/json", [1, 2]),
    "data-form-by-header": ({"data": {"grant_type": "client_credentials", "client_id": "id1"},
                             "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
                            "application/x-www-form-urlencoded",
                            {"grant_type": ["client_credentials"], "client_id": ["id1"]}),
    "data-form-default": ({"data": {"x": "1"}}, "application/x-www-form-urlencoded", {"x": ["1"]}),
    "data-json-by-header": ({"data": {"x": 1}, "headers": {"Content-Type": "application/json"}},
                            "application/json", {"x": 1}),
    "payload-form-by-header": ({"payload": {"x": "y"}, "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
                               "application/x-www-form-urlencoded", {"x": ["y"]}),
}


@pytest.mark.parametrize("config, content_type, expected", list(BODIES.values()), ids=list(BODIES))
def test_request_bodies(http_server: LocalHTTPServer, config: dict, content_type: str, expected: object) -> None:
    http_server.route("/b", method="POST", json={"ok": True})
    call_tool(HttpTool(), {"method": "post", "endpoint": http_server.url("/b"), **config})
    req = http_server.requests_to("/b")[0]
    assert req.headers["content-type"].startswith(content_type)
    assert (req.json() if "json" in content_type else req.form()) == expected


def test_raw_string_data_is_sent_as_is(http_server: LocalHTTPServer) -> None:
    http_server.route("/raw", method="PUT", handler=lambda r: Reply(text=r.body.decode()))
    result = call_tool(HttpTool(), {"method": "PUT", "endpoint": http_server.url("/raw"), "data": "a=1&b=2",
                                    "headers": {"Content-Type": "text/plain"}})
    assert result["data"] == "a=1&b=2"


def test_503_is_an_http_status_error_with_status_and_body(http_server: LocalHTTPServer) -> None:
    http_server.route("/down", status=503, json={"error": "maintenance"})
    error = call_tool_error(HttpTool(), {"endpoint": http_server.url("/down")})
    assert error["type"] == "HTTPStatusError"
    assert error["status"] == 503
    assert error["data"] == {"error": "maintenance"}
    assert "GET" in error["message"] and http_server.url("/down") in error["message"] and "503" in error["message"]


def test_error_body_is_capped(http_server: LocalHTTPServer) -> None:
    http_server.route("/big", status=500, text="x" * 100_000)
    error = call_tool_error(HttpTool(), {"endpoint": http_server.url("/big")})
    assert error["status"] == 500
    assert len(error["data"]) < 5000 and "chars cut" in error["data"]


def test_refused_connection_is_connect_error() -> None:
    url = refused_url("/nothing")
    error = call_tool_error(HttpTool(), {"endpoint": url})
    assert error["type"] == "ConnectError"
    assert error["status"] is None
    assert url in error["message"]


def test_slow_server_is_timeout(http_server: LocalHTTPServer) -> None:
    http_server.route("/slow", json={}, delay=5)
    error = call_tool_error(HttpTool(), {"endpoint": http_server.url("/slow"), "timeout": 0.3})
    assert error["type"] == "Timeout" and error["status"] is None
    assert "0.3s" in error["message"]


def test_call_timeout_applies_when_tool_has_none(http_server: LocalHTTPServer) -> None:
    http_server.route("/slow", json={}, delay=5)
    error = call_tool_error(HttpTool(), {"endpoint": http_server.url("/slow")}, timeout=0.2)
    assert error["type"] == "Timeout"


def test_missing_endpoint_is_a_config_error() -> None:
    error = call_tool_error(HttpTool(), {"method": "GET"}, step="fetch")
    assert error["type"] == "ToolConfigError"
    assert "fetch" in error["message"] and "endpoint" in error["message"]


def test_invalid_url_names_the_problem() -> None:
    error = call_tool_error(HttpTool(), {"endpoint": "ftp://example.invalid/x"})
    assert error["type"] == "InvalidURL"


def test_redirects_are_followed(http_server: LocalHTTPServer) -> None:
    http_server.route("/old", status=302, headers={"Location": "/new"})
    http_server.route("/new", json={"moved": True})
    result = call_tool(HttpTool(), {"endpoint": http_server.url("/old")})
    assert result["data"] == {"moved": True} and result["url"].endswith("/new")


def test_echo_handler_sees_method_and_body(http_server: LocalHTTPServer) -> None:
    def echo(req: Request) -> Reply:
        return Reply(json={"method": req.method, "body": req.json()})

    http_server.route("/echo", method="PATCH", handler=echo)
    result = call_tool(HttpTool(), {"method": "PATCH", "endpoint": http_server.url("/echo"), "payload": {"n": 1}})
    assert result["data"] == {"method": "PATCH", "body": {"n": 1}}


def test_get_data_mapping_becomes_query_params(http_server: LocalHTTPServer) -> None:
    http_server.route("/g", json={})
    call_tool(HttpTool(), {"endpoint": http_server.url("/g"), "data": {"q": "x", "page": 1}, "params": {"page": 2}})
    req = http_server.requests_to("/g")[0]
    assert req.query == {"q": ["x"], "page": ["2"]} and req.body == b""



def test_a_body_over_max_response_bytes_fails_instead_of_filling_memory(http_server: LocalHTTPServer) -> None:
    # Regression: a 300 MB body was read whole (2.2 GB peak RSS) and its timeout never fired.
    http_server.route("/big", text="x" * 5000)
    error = call_tool_error(HttpTool(), {"endpoint": http_server.url("/big"), "max_response_bytes": 1000})
    assert error["type"] == "ResponseTooLarge" and "1000 bytes" in error["message"]


def test_follow_redirects_accepts_the_string_false(http_server: LocalHTTPServer) -> None:
    http_server.route("/moved", status=302, headers={"Location": "/target"}, text="")
    http_server.route("/target", json={"ok": True})
    error = call_tool_error(HttpTool(), {"endpoint": http_server.url("/moved"), "follow_redirects": "false"})
    assert error["status"] == 302
    assert call_tool(HttpTool(), {"endpoint": http_server.url("/moved")})["data"] == {"ok": True}
