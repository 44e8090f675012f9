"""The layer contract of DESIGN §2, checked on the source: who may import whom.

    templating <- dsl <- engine <- tools / worker <- local <- k8s / operator

The engine must stay pure: no I/O clients, no clock, no randomness, no tools.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "noetl"

FORBIDDEN = {
    "templating": {"noetl.dsl", "noetl.engine", "noetl.tools", "noetl.worker", "noetl.local", "noetl.k8s"},
    "dsl": {"noetl.engine", "noetl.tools", "noetl.worker", "noetl.local", "noetl.k8s"},
    "engine": {"noetl.tools", "noetl.worker", "noetl.local", "noetl.k8s", "httpx", "psycopg", "kubernetes",
               "kopf", "time", "datetime", "random", "uuid", "asyncio", "subprocess", "socket", "os"},
    "tools": {"noetl.engine", "noetl.worker", "noetl.local", "noetl.k8s", "kubernetes", "kopf"},
    "worker": {"noetl.local", "noetl.k8s", "kubernetes", "kopf"},
    "local": {"noetl.k8s", "kubernetes", "kopf"},
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    bad = []
    for path in sorted((PKG / layer).rglob("*.py")):
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[layer]):
                bad.append(f"{path.relative_to(PKG.parent)} imports {name}")
    assert bad == []


def test_tool_modules_do_not_import_each_other() -> None:
    modules = {p.stem for p in (PKG / "tools").glob("_*.py")} - {"__init__", "_base"}
    bad = []
    for path in (PKG / "tools").glob("_*.py"):
        if path.stem == "__init__":
            continue
        for name in imports_of(path):
            other = name.rsplit(".", 1)[-1]
            if name.startswith("noetl.tools.") and other in modules and other != path.stem and \
                    not (path.stem == "_python" and other == "_python_child"):
                bad.append(f"{path.name} imports {name}")
    assert bad == []


def test_package_type_checks_strictly() -> None:
    out = subprocess.run([sys.executable, "-m", "mypy", "noetl"], capture_output=True, text=True,
                         cwd=PKG.parent, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
