"""Redaction of credential values from everything a worker reports (DESIGN §3.9).

Every string (or number) leaf of the resolved credential of 4 characters or more is a secret, as
are its URL-encoded forms, except the values
of fields that only say *where* to connect (``host``, ``port``, ``user``, ``dbname``, ... see
``PUBLIC_FIELDS``); the password inside a DSN (URI ``user:password@`` or ``password=...`` conninfo)
is a secret wherever it appears. Every occurrence of a secret in a reported value -- inside longer
strings, in dict keys, in error messages -- becomes ``***``.

Why 4: shorter values (``on``, ``yes``) would match too much ordinary text to be worth hiding.
Why the public fields: masking a user name such as ``noetl`` would garble every query result that
mentions it, and those values are not secret. Any other field (``token``, ``client_id``, ``api_key``,
names we cannot know) is masked: over-redaction is the safe side.
"""

from __future__ import annotations

import re
from typing import Any, Iterable
from urllib.parse import quote, quote_plus, unquote, urlsplit

__all__ = ["MASK", "MIN_SECRET_CHARS", "PUBLIC_FIELDS", "redact", "secret_strings"]

MASK = "***"
MIN_SECRET_CHARS = 4

_CONNINFO_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


#: Credential fields whose values locate a service rather than unlock it; they are not masked.
PUBLIC_FIELDS = frozenset({"host", "hostname", "port", "user", "username", "dbname", "database", "db",
                           "sslmode", "region", "schema"})


def _leaves(value: Any) -> Iterable[str]:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):  # a PIN or numeric key is as secret as a string
        yield str(value)
    elif isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and key.lower() in PUBLIC_FIELDS and not isinstance(item, (dict, list)):
                continue
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)


def _embedded_passwords(text: str) -> Iterable[str]:
    if "://" in text:
        try:
            password = urlsplit(text).password
        except ValueError:
            password = None
        if password:
            yield password
            yield unquote(password)
    for match in _CONNINFO_PASSWORD.finditer(text):
        raw = match.group(1)
        if raw.startswith("'"):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        yield raw


def secret_strings(credential: Any) -> list[str]:
    """The strings to hide for ``credential``, longest first (so overlapping secrets mask fully)."""
    found: set[str] = set()
    for leaf in _leaves(credential):
        candidates = [leaf, *_embedded_passwords(leaf)]
        for secret in candidates:
            if len(secret) >= MIN_SECRET_CHARS:
                # as sent in a URL query or path, where `p@ss word` travels as `p%40ss+word`
                found.update({secret, quote(secret, safe=""), quote_plus(secret, safe="")})
    return sorted(found, key=len, reverse=True)


def _mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact(value: Any, secrets: list[str]) -> Any:
    """A copy of ``value`` with every occurrence of every secret replaced by ``***`` (deep)."""
    if not secrets:
        return value
    if isinstance(value, str):
        return _mask(value, secrets)
    if isinstance(value, dict):
        return {(_mask(k, secrets) if isinstance(k, str) else k): redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v, secrets) for v in value)
    return value
