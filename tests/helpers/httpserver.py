"""A tiny real HTTP server on loopback for tests: routes registered per test, requests recorded.

Why not a mock transport: the tools and the runner must be proven against real sockets (connection
pooling, timeouts, refused connections). Why not a framework: the standard library is enough and
starts in a millisecond.

Usage::

    with LocalHTTPServer() as server:
        server.route("/items", json={"items": [1, 2]})
        server.route("/slow", json={}, delay=5)
        server.route("/echo", method="POST", handler=lambda req: Reply(json=req.json()))
        url = server.url("/items")
        ...
        assert server.requests[0].query == {"page": ["1"]}

A handler may return a ``Reply``; ``delay`` sleeps before answering but wakes up as soon as the
server stops, so a test never waits for a sleeping handler.
"""

from __future__ import annotations

import dataclasses
import json as jsonlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

__all__ = ["LocalHTTPServer", "Reply", "Request", "free_port", "refused_url"]


@dataclasses.dataclass(frozen=True)
class Request:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.body or b"null")

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())


@dataclasses.dataclass
class Reply:
    """What a route answers. ``json`` wins over ``text``, ``text`` over ``body``."""

    status: int = 200
    json: Any = None
    text: str | None = None
    body: bytes | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay: float = 0.0

    def encode(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if self.json is not None:
            headers.setdefault("Content-Type", "application/json")
            return jsonlib.dumps(self.json).encode(), headers
        if self.text is not None:
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.text.encode(), headers
        return self.body or b"", headers


HandlerFn = Callable[[Request], Reply]


class LocalHTTPServer:
    """Threaded HTTP/1.1 server on 127.0.0.1 with a random free port."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], HandlerFn] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[Request] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- routes ------------------------------------------------------------------------------
    def route(self, path: str, *, method: str = "GET", status: int = 200, json: Any = None,
              text: str | None = None, body: bytes | None = None, headers: dict[str, str] | None = None,
              delay: float = 0.0, handler: HandlerFn | None = None) -> None:
        """Register what ``method path`` answers (a fixed reply, or ``handler(request)``)."""
        if handler is None:
            reply = Reply(status=status, json=json, text=text, body=body, headers=headers or {}, delay=delay)

            def handler(_: Request, _reply: Reply = reply) -> Reply:
                return _reply

        with self._lock:
            self._routes[(method.upper(), path)] = handler

    def url(self, path: str = "/") -> str:
        return f"{self.base_url}{path}"

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> "LocalHTTPServer":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
                pass  # keep test output clean

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(method=self.command, path=parts.path, query=parse_qs(parts.query),
                              headers={k.lower(): v for k, v in self.headers.items()},
                              body=self.rfile.read(length) if length else b"")
                with owner._lock:
                    owner.requests.append(req)
                    handler = owner._routes.get((self.command, parts.path))
                if handler is None:
                    reply = Reply(status=404, json={"error": f"no route for {self.command} {parts.path}"})
                else:
                    try:
                        reply = handler(req)
                    except Exception as exc:  # noqa: BLE001 - a broken test handler answers 500
                        reply = Reply(status=500, text=f"test handler failed: {exc!r}")
                if reply.delay and owner._stopping.wait(reply.delay):
                    return  # server is stopping: drop the request
                payload, headers = reply.encode()
                try:
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (e.g. its timeout); nothing to answer

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="test-http-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> "LocalHTTPServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A loopback port nothing listens on right now (racy by nature; fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refused_url(path: str = "/") -> str:
    """A URL whose connection is refused (nothing listens on the port)."""
    return f"http://127.0.0.1:{free_port()}{path}"
