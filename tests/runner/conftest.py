"""Helpers to run `noetl` as a user would: a subprocess of the installed CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"


def noetl(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> CliResult:
    """Run the CLI in a subprocess (``python -m noetl.cli`` so no PATH set-up is assumed)."""
    import os

    proc = subprocess.run([sys.executable, "-m", "noetl.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})
    return CliResult(proc)


@pytest.fixture
def seed_dir() -> Path:
    from tests.helpers.seeds import seed_dir as find

    return find()
