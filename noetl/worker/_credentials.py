"""Credential sources: where ``auth: <name>`` is resolved, only where the tool runs (DESIGN §3.9).

Locally a credentials file (``noetl run --credentials F``) and the environment; in the cluster a
Kubernetes Secret source (in ``noetl.k8s``) implements the same protocol. The engine never sees a
credential; the worker resolves it, hands it to the tool and redacts it from what it reports.

Sources:

- ``MappingCredentials``: a dict ``{name: {field: value}}`` or ``{name: value}``; ``load_credentials_file``
  reads one from YAML.
- ``EnvironmentCredentials``: ``NOETL_CREDENTIAL_<NAME>`` (name upper-cased, every character that is
  not a letter or digit turned into ``_``); a value that parses as JSON is used parsed, else as text.
- ``ChainedCredentials``: the first source that has the name wins.

A missing credential raises ``ToolError`` of type ``CredentialNotFound`` saying where it looked and
how to provide it. Messages name credentials, never their values.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Awaitable, Mapping, Protocol, Sequence

import yaml

from noetl.dsl._yaml import load as load_yaml
from noetl.errors import NoetlError, ToolError

__all__ = [
    "ChainedCredentials",
    "CredentialSource",
    "CredentialsFileError",
    "EnvironmentCredentials",
    "MappingCredentials",
    "default_credentials",
    "env_var_name",
    "load_credentials_file",
]

ENV_PREFIX = "NOETL_CREDENTIAL_"


class CredentialsFileError(NoetlError):
    """The credentials file is missing or malformed (a usage error: fix the file)."""


class CredentialSource(Protocol):
    """Resolves a credential name to its value (a mapping or a scalar), sync or async."""

    def resolve(self, name: str) -> Any | Awaitable[Any]:
        """Return the credential, or raise ToolError(type="CredentialNotFound")."""
        ...

    def describe(self) -> str:
        """Where this source looks, for error messages (e.g. "credentials file creds.yaml")."""
        ...


def _not_found(name: str, looked: Sequence[str]) -> ToolError:
    return ToolError(
        "CredentialNotFound",
        f"credential '{name}' (from `auth:`) not found; looked in: {'; '.join(looked) or 'nowhere'}. "
        f"Add it to the credentials file (`noetl run --credentials FILE`, a YAML map `{name}: {{field: value}}`) "
        f"or set the environment variable {env_var_name(name)}",
        credential=name,
    )


class MappingCredentials:
    """Credentials held in memory: ``{name: {field: value}}`` or ``{name: value}``."""

    def __init__(self, values: Mapping[str, Any], *, origin: str = "credentials mapping") -> None:
        self._values = dict(values)
        self.origin = origin

    def resolve(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        raise _not_found(name, [self.describe()])

    def describe(self) -> str:
        names = sorted(self._values)
        shown = ", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")
        return f"{self.origin} (has: {shown or 'nothing'})"

    def __contains__(self, name: object) -> bool:
        return name in self._values


def env_var_name(name: str) -> str:
    """``pg_local`` -> ``NOETL_CREDENTIAL_PG_LOCAL``; ``a/b-c`` -> ``NOETL_CREDENTIAL_A_B_C``."""
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


class EnvironmentCredentials:
    """Credentials from ``NOETL_CREDENTIAL_<NAME>`` variables (JSON when the value parses as JSON)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ if environ is not None else os.environ

    def resolve(self, name: str) -> Any:
        var = env_var_name(name)
        raw = self._environ.get(var)
        if raw is None:
            raise _not_found(name, [self.describe_for(name)])
        # Only JSON objects and arrays are parsed: a token such as `1e5` or `true` must stay the
        # string it is, not become a number or a boolean.
        if raw.lstrip()[:1] in ("{", "["):
            try:
                return json.loads(raw)
            except ValueError:
                pass
        return raw

    def describe_for(self, name: str) -> str:
        return f"environment variable {env_var_name(name)} (not set)"

    def describe(self) -> str:
        return f"environment variables {ENV_PREFIX}<NAME>"


class ChainedCredentials:
    """Tries each source in order; the first that has the name wins."""

    def __init__(self, *sources: CredentialSource) -> None:
        self.sources = sources

    async def resolve(self, name: str) -> Any:
        looked: list[str] = []
        for source in self.sources:
            try:
                value = source.resolve(name)
                if hasattr(value, "__await__"):
                    value = await value
                return value
            except ToolError as exc:
                if exc.record.get("type") != "CredentialNotFound":
                    raise
                describe_for = getattr(source, "describe_for", None)
                looked.append(describe_for(name) if describe_for else source.describe())
        raise _not_found(name, looked)

    def describe(self) -> str:
        return "; ".join(s.describe() for s in self.sources)


def load_credentials_file(path: str | os.PathLike[str]) -> MappingCredentials:
    """Read a YAML credentials file: a map ``name: {field: value, ...}`` or ``name: value``."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise CredentialsFileError(f"{path}: credentials file not found; check the path given to --credentials") from None
    except OSError as exc:
        raise CredentialsFileError(f"{path}: cannot read credentials file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CredentialsFileError(f"{path}: credentials file is not UTF-8 text") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise CredentialsFileError(f"{where}: credentials file is not valid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CredentialsFileError(
            f"{path}: a credentials file must be a YAML map `name: {{field: value}}` (or `name: value`), "
            f"got a {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise CredentialsFileError(f"{path}: credential names must be strings, got {bad[0]!r}; quote it")
    return MappingCredentials(data, origin=f"credentials file {path}")


def default_credentials(path: str | os.PathLike[str] | None = None) -> CredentialSource:
    """The local default: the credentials file (when given), then the environment."""
    if path is None:
        return EnvironmentCredentials()
    return ChainedCredentials(load_credentials_file(path), EnvironmentCredentials())
