"""A watch as an async iterator, fed by one thread that reads the HTTP stream.

Why a thread per watch rather than the client's pool: a watch holds its thread for minutes, and
must not starve the short calls. The thread parses one JSON object per line and hands
``(type, object)`` pairs to the event loop through a queue. ``aclose()`` shuts the socket down
(which unblocks the thread's read at once), then joins the thread: nothing is left running or open.

The stream ends (``StopAsyncIteration``) when the server closes the watch (``timeoutSeconds``) or
it is closed; an ``ERROR`` event raises the matching ApiError (``Gone`` for an expired
resourceVersion: list again).
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, Callable

import urllib3

from noetl.k8s._errors import ApiError, api_error

__all__ = ["WatchStream"]

WatchEvent = tuple[str, dict[str, Any]]
#: Opens the HTTP response (runs in the watch thread); returns the urllib3 response.
OpenFn = Callable[[], Any]

_END = object()


class WatchStream:
    """``async for type, obj in stream`` -- ``type`` is ADDED, MODIFIED, DELETED (or BOOKMARK)."""

    def __init__(self, open_response: OpenFn, *, loop: asyncio.AbstractEventLoop, name: str,
                 on_close: Callable[["WatchStream"], None] | None = None) -> None:
        self._open = open_response
        self._loop = loop
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._lock = threading.Lock()
        self._response: Any = None
        self._stopping = False
        self._on_close = on_close
        self._thread = threading.Thread(target=self._run, name=f"noetl-watch-{name}", daemon=True)
        self._thread.start()

    def __aiter__(self) -> "WatchStream":
        return self

    async def __anext__(self) -> WatchEvent:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # stay ended for later calls
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._queue.put_nowait(_END)
            raise item
        return item  # type: ignore[return-value]

    async def __aenter__(self) -> "WatchStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the watch and wait for its thread (a few milliseconds: the socket is shut down)."""
        self.stop()
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, 10)

    def stop(self) -> None:
        """Ask the thread to stop; safe from any thread, any number of times."""
        with self._lock:
            self._stopping = True
            response = self._response
        if response is not None:
            try:
                response.shutdown()
            except (ValueError, RuntimeError, OSError):
                pass  # already released or closed: the thread is ending anyway
        if self._on_close is not None:
            self._on_close(self)
            self._on_close = None

    # -- the thread ----------------------------------------------------------------------------------
    def _emit(self, item: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:
            pass  # the loop is closed: nobody is listening any more

    def _run(self) -> None:
        response: Any = None
        try:
            response = self._open()
            with self._lock:
                if self._stopping:
                    return
                self._response = response
            buffer = b""
            for chunk in response.stream(65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip() and not self._line(line):
                        return
            if buffer.strip():
                self._line(buffer)
        except ApiError as exc:
            if not self._stopping:
                self._emit(exc)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if not self._stopping:
                self._emit(ApiError(0, type(exc).__name__, f"watch stream broke: {exc}"))
        finally:
            if response is not None:
                response.close()  # never back to the pool: the stream may be half read
            self._emit(_END)

    def _line(self, line: bytes) -> bool:
        """Hand one event over; False when the stream must end (an ERROR event)."""
        event = json.loads(line)
        kind = str(event.get("type") or "")
        obj = event.get("object") or {}
        if kind == "ERROR":
            self._emit(api_error(int(obj.get("code") or 0), str(obj.get("reason") or "Error"), obj))
            return False
        self._emit((kind, obj))
        return True
