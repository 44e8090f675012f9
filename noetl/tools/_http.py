"""The ``http`` tool: one HTTP request on the runtime's shared, pooled ``httpx.AsyncClient``.

Config (DESIGN §3.8, upstream NoETL semantics):

- ``method`` (default ``GET``), ``endpoint`` (or ``url``), ``params``, ``headers``, ``timeout``
  (seconds; else the call's timeout; else 30), ``follow_redirects`` (default true).
- ``GET``/``HEAD``/``DELETE``/``OPTIONS`` with a ``data`` mapping (and no ``payload``/``json``): the
  mapping is sent as query parameters (upstream behaviour), under any explicit ``params``.
- Otherwise the body, first that is present: ``json`` or ``payload`` -> JSON body (a ``payload`` mapping is sent
  form-encoded when ``Content-Type`` says ``application/x-www-form-urlencoded``); ``data`` -> a
  mapping is form-encoded unless ``Content-Type`` says JSON, a string or bytes is sent as is.
- ``params`` values that are None are dropped; booleans are sent as ``true``/``false``; lists repeat
  the parameter; mappings are sent as JSON text.

Result: ``{status, status_code, headers, data, url, elapsed}``; ``data`` is the parsed JSON when the
response is JSON (or its text parses as a JSON object or array), else the text.

Errors: a non-2xx status raises ``ToolError("HTTPStatusError", status=..., data=<body, capped>)``;
transport problems raise ``ConnectError``, ``Timeout``, ``ReadError``... with ``status: None``.
The tool never creates or closes the client: the runtime owns it (one pool for every call).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, ClassVar, Mapping

import httpx

from noetl.errors import ToolError, cap
from noetl.tools._base import ToolContext

__all__ = ["HttpTool"]

DEFAULT_TIMEOUT = 30.0
#: Largest response body read (64 MiB): beyond it the call fails instead of exhausting memory.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024

#: The part of an error body kept in the error record: enough for an API's error object, small
#: enough that a server returning a whole HTML page cannot bloat events and status objects.
MAX_ERROR_BODY_CHARS = 4000

_NO_BODY_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})

_TIMEOUTS: dict[type[Exception], str] = {
    httpx.ConnectTimeout: "connecting",
    httpx.ReadTimeout: "waiting for the response",
    httpx.WriteTimeout: "sending the request",
    httpx.PoolTimeout: "waiting for a free connection in the pool",
}


class HttpTool:
    """Runs ``tool: {kind: http}``."""

    kind: ClassVar[str] = "http"

    async def __call__(self, config: dict[str, Any], args: dict[str, Any], ctx: ToolContext) -> Any:
        method = str(config.get("method") or "GET").upper()
        url = config.get("endpoint") or config.get("url")
        if not url or not isinstance(url, str):
            raise ToolError("ToolConfigError",
                            f"step '{ctx.step}': http tool has no URL; set `endpoint: https://...` (or `url:`)")
        timeout = _number(config.get("timeout"), ctx.timeout, DEFAULT_TIMEOUT)
        raw_headers = config.get("headers") or {}
        if not isinstance(raw_headers, Mapping):
            raise ToolError("ToolConfigError", f"step '{ctx.step}': http `headers` must be a mapping "
                                               f"(name: value), got {type(raw_headers).__name__}")
        headers = {str(k): str(v) for k, v in raw_headers.items() if v is not None}
        request: dict[str, Any] = {
            "params": _params(config.get("params"), step=ctx.step),
            "headers": headers,
            "timeout": httpx.Timeout(timeout),
            "follow_redirects": _flag(config.get("follow_redirects", True)),
        }
        data = config.get("data")
        if method in _NO_BODY_METHODS and isinstance(data, Mapping) and config.get("payload") is None \
                and config.get("json") is None:
            # Upstream NoETL sends a GET's `data` as the query string; explicit `params` win.
            explicit = request["params"]
            if not isinstance(explicit, str):  # a pre-built query string cannot be merged into
                from_data = _params(data, step=ctx.step)
                request["params"] = {**(from_data if isinstance(from_data, dict) else {}), **(explicit or {})}
        else:
            request.update(_body(config, headers))

        max_bytes = int(_number(config.get("max_response_bytes"), None, DEFAULT_MAX_RESPONSE_BYTES))
        started = time.monotonic()
        try:
            # The timeout bounds the whole exchange (httpx's bounds each read, so a server trickling
            # a huge body would never time out), and the body is read up to max_bytes.
            async with asyncio.timeout(timeout):
                async with ctx.http.stream(method, url, **request) as streamed:
                    body = bytearray()
                    async for chunk in streamed.aiter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise ToolError("ResponseTooLarge",
                                            f"{method} {url}: the response body exceeds {max_bytes} bytes; "
                                            "raise the tool's `max_response_bytes` or fetch less")
            response = httpx.Response(streamed.status_code, headers=streamed.headers, content=bytes(body),
                                      request=streamed.request, extensions=streamed.extensions)
        except TimeoutError:
            raise ToolError("Timeout", f"{method} {url}: no complete response within {timeout:g}s; "
                                       "raise the tool's `timeout:` or add a retry rule") from None
        except httpx.TimeoutException as exc:
            phase = next((p for t, p in _TIMEOUTS.items() if isinstance(exc, t)), "waiting")
            raise ToolError("Timeout", f"{method} {url}: timed out after {timeout:g}s while {phase}; "
                                       "raise the tool's `timeout:` or add a retry rule") from exc
        except httpx.ConnectError as exc:
            raise ToolError("ConnectError", f"{method} {url}: could not connect: {exc or 'connection failed'}") from exc
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise ToolError("InvalidURL", f"{method} {url}: invalid URL: {exc}; check the tool's `endpoint`") from exc
        except httpx.TransportError as exc:
            raise ToolError(type(exc).__name__, f"{method} {url}: {exc or type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise ToolError(type(exc).__name__, f"{method} {url}: {exc}") from exc

        data = _decode(response)
        if not response.is_success:
            raise ToolError(
                "HTTPStatusError",
                f"{method} {response.url} returned HTTP {response.status_code} {response.reason_phrase}".rstrip(),
                status=response.status_code,
                data=_capped(data),
                url=str(response.url),
            )
        return {
            "status": response.status_code,
            "status_code": response.status_code,
            "headers": dict(response.headers),
            "data": data,
            "url": str(response.url),
            "elapsed": round(time.monotonic() - started, 6),
        }


def _number(*candidates: Any) -> float:
    for value in candidates:
        if value is not None:
            try:
                return float(value)
            except (TypeError, ValueError):
                raise ToolError("ToolConfigError", f"http tool: timeout must be a number of seconds, got {value!r}") from None
    return DEFAULT_TIMEOUT


def _param_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict,)):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, (list, tuple)):
        return [_param_value(v) for v in value if v is not None]
    return value


def _params(params: Any, *, step: str) -> dict[str, Any] | str | None:
    if params is None:
        return None
    if isinstance(params, str):
        return params  # a pre-built query string
    if not isinstance(params, Mapping):
        raise ToolError("ToolConfigError",
                        f"step '{step}': http `params` must be a mapping, got {type(params).__name__}")
    return {str(k): _param_value(v) for k, v in params.items() if v is not None}


def _content_type(headers: Mapping[str, str]) -> str:
    for name, value in headers.items():
        if name.lower() == "content-type":
            return value.lower()
    return ""


def _body(config: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    ctype = _content_type(headers)
    form = "application/x-www-form-urlencoded" in ctype
    if config.get("json") is not None:
        return {"json": config["json"]}
    payload = config.get("payload")
    if payload is not None:
        if form and isinstance(payload, Mapping):
            return {"data": _form(payload)}
        if isinstance(payload, (str, bytes)) and ctype and "json" not in ctype:
            return {"content": payload}
        return {"json": payload}
    data = config.get("data")
    if data is None:
        return {}
    if isinstance(data, (str, bytes)):
        return {"content": data}
    if isinstance(data, Mapping) and not ("json" in ctype):
        return {"data": _form(data)}
    return {"json": data}


def _form(values: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _param_value(v) for k, v in values.items() if v is not None}


def _decode(response: httpx.Response) -> Any:
    """Parsed JSON when the response is (or plainly looks like) JSON; otherwise its text."""
    ctype = response.headers.get("content-type", "").lower()
    text = response.text
    if not text.strip():
        return None if "json" in ctype else text
    if "json" in ctype or text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _capped(data: Any) -> Any:
    """The error body, kept as an object when small, else as cut text."""
    text = data if isinstance(data, str) else json.dumps(data, default=str)
    if len(text) <= MAX_ERROR_BODY_CHARS:
        return data
    return cap(text, MAX_ERROR_BODY_CHARS)


def _flag(value: Any) -> bool:
    """A boolean option that may arrive as a string from a template (`"false"` means False)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "off", "none", "null")
    return bool(value)
