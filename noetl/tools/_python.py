"""The ``python`` tool: user code in a separate process, with a timeout, from a pool of reusable children.

Config: ``code`` (defines ``def main(...)``, called with the ``args`` it names, or sets a
module-level ``result``), optional ``timeout`` (seconds; else the call's timeout; else 300).

Why a separate process: user code must not block the event loop, crash the runner, or hold the GIL
while HTTP calls wait; and a runaway call must be killable. Why a pool: starting an interpreter
costs tens of milliseconds, more than most tool calls; a kept child answers in well under one.

Each child (``_python_child.py``) runs one call at a time; a call takes an idle child or starts a
new one, so parallel loop items really run in parallel. On timeout (or cancellation) the child is
killed and a fresh one replaces it; a child that dies is replaced the same way. Children are
recycled after ``MAX_CALLS_PER_CHILD`` calls so state leaked by user code (module globals,
``sys.modules`` changes, memory) does not live forever. Calls in one child share that child's
imported modules; each call runs the code in a fresh global namespace.

Replies are read by whichever event loop makes the call (a reader registered per call) and children
start on short-lived daemon threads, so the pool belongs to no event loop: it serves every
``asyncio.run`` of the process and is closed once, at exit or by ``close()``.
What user code prints to stdout is captured and logged (logger ``noetl.tools.python``), never mixed
into the protocol.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import subprocess
import sys
import threading
import weakref
from typing import Any, Callable, ClassVar, TypeVar

from noetl._redaction import redact, secret_strings
from noetl.errors import ToolError
from noetl.tools._base import ToolContext

__all__ = ["PythonProcessPool", "PythonTool", "shared_pool"]

T = TypeVar("T")
log = logging.getLogger("noetl.tools.python")

DEFAULT_TIMEOUT = 300.0
#: Calls served by one child before it is replaced (bounds leaks of user code). The replacement
#: starts in the background; at ~100-300 ms per interpreter start this costs well under 0.1 ms a call.
MAX_CALLS_PER_CHILD = 5000
_CHILD_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_python_child.py")


class _ChildDied(Exception):
    pass


def _in_thread(loop: asyncio.AbstractEventLoop, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run blocking ``fn`` on a new daemon thread; its outcome lands in a future of ``loop``.

    Daemon threads (not an executor): a thread blocked on a child's pipe must never keep the
    interpreter from exiting, and starting a thread (~0.1 ms) is small next to a call's round trip.
    """
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.cancelled():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def work() -> None:
        try:
            value, error = fn(*args), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            value, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more

    threading.Thread(target=work, name="noetl-python-call", daemon=True).start()
    return future


class _Child:
    """One child interpreter and its pipes. Used by one call at a time."""

    def __init__(self) -> None:
        # start_new_session: a Ctrl-C in the terminal reaches the runner, which then stops the
        # children itself, instead of tearing user code down mid-call in every child.
        self.proc = subprocess.Popen(
            [sys.executable, _CHILD_SCRIPT, str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
            start_new_session=True, close_fds=True,
        )
        self.calls = 0
        assert self.proc.stdout is not None
        self._out_fd = self.proc.stdout.fileno()  # read with os.read only, never through the buffer
        os.set_blocking(self._out_fd, False)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, loop: asyncio.AbstractEventLoop, payload: bytes) -> asyncio.Future[dict[str, Any]]:
        """Send one request; the future gets the reply (or ``_ChildDied``).

        The reply is read by the event loop itself (``add_reader`` on the non-blocking pipe), not by
        a thread: a round trip then costs about as much as the pipe, a tenth of a thread hand-off.
        The reader is registered per call, so the child still belongs to no particular loop.
        The request is written blocking: the child reads its whole line before doing anything.
        """
        assert self.proc.stdin is not None
        self.calls += 1
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        fd = self._out_fd
        received = bytearray()

        def settle(reply: dict[str, Any] | None, error: BaseException | None) -> None:
            loop.remove_reader(fd)
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(reply)  # type: ignore[arg-type]

        def readable() -> None:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError as exc:
                settle(None, _ChildDied(str(exc)))
                return
            if not chunk:
                settle(None, _ChildDied("no reply"))
                return
            received.extend(chunk)
            if received.endswith(b"\n"):  # the child writes exactly one line per request
                try:
                    settle(json.loads(received), None)
                except RecursionError:
                    settle(None, ToolError("NonJSONResult", "the result is nested too deeply to be JSON "
                                                            "(more than about 900 levels)"))
                except ValueError as exc:
                    settle(None, _ChildDied(f"unreadable reply: {exc}"))

        future.add_done_callback(lambda _: loop.remove_reader(fd))  # also on cancellation
        try:
            self.proc.stdin.write(payload)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            settle(None, _ChildDied(str(exc)))
            return future
        loop.add_reader(fd, readable)
        return future

    def close(self, *, kill: bool = False) -> None:
        """Stop the child and release its pipes; never raises."""
        proc = self.proc
        try:
            if kill:
                proc.kill()
            elif proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()  # EOF: the child's request loop ends
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        except OSError:
            pass
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except OSError:
                    pass


def _in_background(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Fire-and-forget on a daemon thread (starting or reaping a process takes milliseconds)."""
    threading.Thread(target=fn, args=args, kwargs=kwargs, name="noetl-python-bg", daemon=True).start()


def _exit_code(child: _Child) -> int | None:
    """The exit code of a child whose pipe just closed (it may need a moment to be reaped)."""
    try:
        return child.proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        return None


class PythonProcessPool:
    """Reusable child interpreters for the python tool; safe to share across threads and loops."""

    def __init__(self, *, max_idle: int | None = None, max_children: int | None = None) -> None:
        #: At most this many calls run at once (one child each); more wait for a free child. 16 is
        #: the default `max_in_flight` of a parallel loop. Without a cap a 64-wide loop started a
        #: new interpreter (~150 ms) for nearly every call and ran 8x slower than sequentially.
        self.max_children = max_children if max_children is not None else 16
        #: Idle children kept (~10 MiB each) so the next calls do not pay the start-up.
        self.max_idle = max_idle if max_idle is not None else self.max_children
        # one gate per event loop (a Semaphore belongs to the loop it was first used in)
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = \
            weakref.WeakKeyDictionary()
        self._idle: list[_Child] = []
        self._all: set[_Child] = set()
        self._lock = threading.Lock()
        self._closed = False

    # -- children ----------------------------------------------------------------------------
    def _take_idle(self) -> _Child | None:
        with self._lock:
            while self._idle:
                child = self._idle.pop()
                if child.alive:
                    return child
                self._all.discard(child)
                child.close()
        return None

    def _spawn(self) -> _Child:
        with self._lock:
            if self._closed:
                raise ToolError("PoolClosed", "cannot run: the python tool's process pool is closed; "
                                              "create a new runtime")
        child = _Child()
        with self._lock:
            self._all.add(child)
        return child

    def _give_back(self, child: _Child) -> None:
        with self._lock:
            worn_out = child.calls >= MAX_CALLS_PER_CHILD
            keep = not self._closed and child.alive and len(self._idle) < self.max_idle and not worn_out
            if keep:
                self._idle.append(child)
                return
            self._all.discard(child)
        _in_background(child.close)  # waiting for it to exit must not block the event loop
        if worn_out:
            self._replace_soon()

    def _discard(self, child: _Child) -> None:
        with self._lock:
            self._all.discard(child)
        _in_background(child.close, kill=True)

    def warm(self, count: int = 1) -> None:
        """Start ``count`` idle children now, so the first calls do not pay the start-up."""
        for _ in range(max(0, min(count, self.max_idle) - len(self._idle))):
            self._give_back(self._spawn())

    # -- calls -------------------------------------------------------------------------------
    async def run(self, request: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """Run one request in a child; returns the child's reply. Raises ToolError on timeout/death.

        Waits for a free child first when ``max_children`` calls are already running (the timeout
        counts from when a child takes the call).
        """
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(self.max_children)
        async with gate:
            return await self._run(loop, request, timeout=timeout)

    async def _run(self, loop: asyncio.AbstractEventLoop, request: dict[str, Any], *, timeout: float
                   ) -> dict[str, Any]:
        payload = json.dumps(request, default=str).encode("utf-8") + b"\n"
        child = self._take_idle()
        if child is None:
            child = await _in_thread(loop, self._spawn)
        future = child.request(loop, payload)
        try:
            done, _ = await asyncio.wait({future}, timeout=timeout)
        except asyncio.CancelledError:
            future.cancel()
            self._discard(child)
            self._replace_soon()
            raise
        if not done:
            future.cancel()
            self._discard(child)
            self._replace_soon()
            raise ToolError("Timeout", f"did not finish within {timeout:g}s; the process was killed. "
                                       "Raise the tool's `timeout:` or make the code faster")
        try:
            reply = future.result()
        except ToolError:
            self._discard(child)  # its reply was unusable; do not hand it to the next call
            raise
        except _ChildDied:
            code = await _in_thread(loop, _exit_code, child)
            self._discard(child)
            raise ToolError("ProcessDied", f"ended its process (exit code {code}) before replying; "
                                           "the code may call os._exit() or crash the interpreter "
                                           "(see stderr)") from None
        self._give_back(child)
        reply_dict: dict[str, Any] = reply
        return reply_dict

    def _replace_soon(self) -> None:
        """Start a replacement child in the background, keeping the pool warm after a kill."""
        if not self._closed:
            def spawn() -> None:
                try:
                    self._give_back(self._spawn())
                except Exception:  # noqa: BLE001 - best effort; the next call spawns on demand
                    pass
            _in_background(spawn)

    def close(self) -> None:
        """Stop every child (idle or busy) and the pool's threads. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            children, self._all, self._idle = list(self._all), set(), []
        for child in children:
            child.close(kill=True)

    @property
    def closed(self) -> bool:
        return self._closed


_shared: PythonProcessPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> PythonProcessPool:
    """The process-wide pool used by default; closed automatically at interpreter exit."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.closed:
            _shared = PythonProcessPool()
            atexit.register(_shared.close)
        return _shared


class PythonTool:
    """Runs ``tool: {kind: python}``."""

    kind: ClassVar[str] = "python"

    def __init__(self, pool: PythonProcessPool | None = None) -> None:
        self._pool = pool

    @property
    def pool(self) -> PythonProcessPool:
        return self._pool if self._pool is not None else shared_pool()

    async def __call__(self, config: dict[str, Any], args: dict[str, Any], ctx: ToolContext) -> Any:
        code = config.get("code")
        if not isinstance(code, str) or not code.strip():
            raise ToolError("ToolConfigError", f"step '{ctx.step}': python tool needs `code:` "
                                               "defining `def main(...)` or setting `result`")
        raw_timeout = config.get("timeout") if config.get("timeout") is not None else ctx.timeout
        try:
            timeout = float(raw_timeout) if raw_timeout is not None else DEFAULT_TIMEOUT
        except (TypeError, ValueError):
            raise ToolError("ToolConfigError", f"step '{ctx.step}': python `timeout` must be seconds, "
                                               f"got {raw_timeout!r}") from None
        call_args = dict(config.get("args") or {}) if isinstance(config.get("args"), dict) else {}
        call_args.update(args or {})
        label = f"step '{ctx.step}'"
        try:
            reply = await self.pool.run({"code": code, "args": call_args, "label": label,
                                         "filename": f"<python code of step '{ctx.step}'>"}, timeout=timeout)
        except ToolError as exc:  # timeout, dead process, closed pool: say which step it was
            record = exc.record
            raise ToolError(record["type"], f"{label}: python code {record['message']}") from None
        printed = reply.get("stdout")
        if printed:
            # what user code prints goes to logs: mask the credential like every reported value
            text = redact(printed.rstrip("\n"), secret_strings(ctx.credential)) if ctx.credential else printed
            log.info("%s printed:\n%s", label, text.rstrip("\n"))
        if reply.get("ok"):
            return reply.get("result")
        error = reply.get("error") or {}
        raise ToolError(str(error.get("type") or "PythonError"), str(error.get("message") or "python code failed"))
