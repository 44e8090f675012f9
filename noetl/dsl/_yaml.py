"""The YAML dialect of playbooks and option files: safe, JSON-typed, bounded.

- Timestamps stay strings: PyYAML would turn an unquoted `2024-02-02` into a `date`, which is
  not a JSON value and broke steps that passed it on.
- libyaml's parser when PyYAML has it (about 10x faster on large workloads).
- ``load`` turns every way a document can break the loader (recursive aliases, absurd nesting,
  bytes that are not UTF-8) into ``YAMLError`` with a readable message.
"""

from __future__ import annotations

from typing import Any

import yaml

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Loader(_Base):  # type: ignore[misc,valid-type]
    """Safe loader without the timestamp resolver."""


Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(text: str | bytes) -> Any:
    """Parse one YAML document (a bytes input must be UTF-8)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise yaml.YAMLError(f"not UTF-8 text (byte {exc.start}): is this a YAML file?") from None
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - Loader is a SafeLoader
    except RecursionError:
        raise yaml.YAMLError("nested too deeply (or a recursive alias such as `x: &a [*a]`)") from None


#: Plain scalars that YAML 1.1 parsers (kubectl's among them) read as booleans, though YAML 1.2
#: and PyYAML read `y`/`n` as strings: always quoted when we write YAML.
_AMBIGUOUS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false"})


class Dumper(yaml.SafeDumper):
    """Safe dumper that quotes strings other YAML readers would take for booleans (`n: 3` became
    `"false": 3` once kubectl had read a manifest), and keeps block style for multi-line code."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if value.lower() in _AMBIGUOUS:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


Dumper.add_representer(str, _represent_str)


def dump_all(documents: list[Any]) -> str:
    return yaml.dump_all(documents, Dumper=Dumper, sort_keys=False, allow_unicode=True)
