"""Command-line option helpers shared by every `noetl` command (usage errors, --set, YAML maps)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import yaml

from noetl.dsl._yaml import load as load_yaml
from noetl.errors import NoetlError


class UsageError(NoetlError):
    """Wrong options or option values."""


def _env(name: str, default: Any = None) -> Any:
    return os.environ.get(f"NOETL_{name.upper().replace('-', '_')}", default)


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``--set a.b=3`` -> ``{"a": {"b": 3}}``; values are parsed as YAML."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects KEY=VALUE, got '{item}'")
        try:
            value = load_yaml(raw) if raw.strip() != "" else ""
        except yaml.YAMLError as exc:
            raise UsageError(f"--set {key}: value is not valid YAML: {exc}") from None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return out


def _load_yaml_map(path: str, what: str) -> dict[str, Any]:
    try:
        data = load_yaml(Path(path).read_bytes())
    except OSError as exc:
        raise UsageError(f"{what} {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{what} {path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{what} {path}: must be a YAML mapping, got {type(data).__name__}")
    return data
