"""Human progress for `noetl run`: one line per step event on stderr, loop counters, retries.

Fed with the records the engine keeps (``Engine.drain_records``). Loop progress is throttled so a
10,000-item loop prints a handful of lines, not ten thousand.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """Writes progress lines. ``quiet`` turns it off (JSON output, library use)."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False, prefix: str = "") -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.prefix = prefix
        self._last_loop_print: dict[str, float] = {}
        self._t0 = time.monotonic()

    def _write(self, text: str) -> None:
        if not self.quiet:
            elapsed = time.monotonic() - self._t0
            self.stream.write(f"[{elapsed:7.2f}s] {self.prefix}{text}\n")
            self.stream.flush()

    def show(self, records: list[dict[str, Any]]) -> None:
        for r in records:
            name = r["name"]
            if name == "step.enter":
                self._write(f"▶ {r['step']} ({r['activation']})")
            elif name == "step.exit":
                if r.get("error"):
                    err = r["error"]
                    self._write(f"✖ {r['step']} failed: {describe_error(err)}")
                else:
                    self._write(f"✔ {r['step']}")
            elif name == "call.done" and "retry" in r:
                err = r.get("error") or {}
                self._write(f"↻ {r['step']} retry attempt {r['retry']} in {r['delay']:.2f}s"
                            f" after {describe_error(err) if err else 'a rule asked for it'}")
            elif name == "call.done" and r.get("item_done"):
                done, total = r["done"], r["total"]
                now = time.monotonic()
                last = self._last_loop_print.get(r["activation"], 0.0)
                if done == total or now - last >= 1.0 or done == 1:
                    self._last_loop_print[r["activation"]] = now
                    pct = 100 * done // total if total else 100
                    self._write(f"  {r['step']}: {done}/{total} items ({pct}%)")
            elif name == "workflow.end":
                self._write(f"■ workflow {r['status']}")


def _first_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0] if lines else ""


def describe_error(error: dict[str, Any]) -> str:
    """``Type: first line of the message``, without repeating a type the message already starts with."""
    kind, message = str(error.get("type") or "Error"), _first_line(error.get("message"))
    return message if message.startswith(f"{kind}:") else f"{kind}: {message}"
