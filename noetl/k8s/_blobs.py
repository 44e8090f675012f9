"""Big JSON values kept in ConfigMaps owned by their Execution (the default result store, DESIGN §4.1).

Who calls it: the operator (engine state, results, large commands, pinned playbooks) and the
workers (large events). Status then holds only the small reference ``put_blob`` returns.

Format: the value as compact JSON, zlib-compressed, in ``binaryData["value"]`` (the API carries it
as base64). Compression first because JSON results shrink 5-10x, which keeps most values in one
ConfigMap and one round trip. A ConfigMap holds at most 1 MiB, so a compressed payload above
``PART_BYTES`` is cut into parts ``<name>-1`` .. ``<name>-n``, one ConfigMap each. The reference::

    {"configMap": NAME, "sha256": "<16 hex>"}                 one ConfigMap named NAME
    {"configMap": NAME, "sha256": "<16 hex>", "parts": n}     ConfigMaps NAME-1 .. NAME-n

The digest of the compressed payload lets ``get_blob`` refuse a mix of parts from two different
writes of the same name (``BlobError``) instead of returning garbage.

Names are deterministic (the caller derives them from the Execution name and a suffix), made
DNS-1123 and short enough here: a name that is too long keeps its head and gets a hash tail.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import zlib
from typing import Any, Mapping

from noetl.errors import NoetlError
from noetl.k8s._client import KubeClient
from noetl.k8s._resources import LABEL_BLOB, LABEL_EXECUTION, LABEL_PART_OF

__all__ = ["BlobError", "PART_BYTES", "blob_name", "get_blob", "label_value", "put_blob"]

#: Compressed bytes per ConfigMap: below the API's 1 MiB limit on data with room for metadata.
PART_BYTES = 900 * 1024
#: Longest base name: ConfigMap names may have 253 characters, parts add ``-NNN``.
NAME_CHARS = 240
ENCODING = "json+zlib"
ANNOTATION_ENCODING = "noetl.io/blob-encoding"
ANNOTATION_PART = "noetl.io/blob-part"
ANNOTATION_DIGEST = "noetl.io/blob-sha256"


class BlobError(NoetlError):
    """A stored value cannot be read back (parts of different writes, or not a noetl blob)."""


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    tail = hashlib.sha256(text.encode()).hexdigest()[:10]
    return text[: limit - 11].rstrip("-.") + "-" + tail


def blob_name(name: str, suffix: str | None = None) -> str:
    """A valid ConfigMap name for ``name`` (+ ``-suffix``): lower case, DNS-1123, at most 240 chars."""
    raw = f"{name}-{suffix}" if suffix else name
    clean = re.sub(r"[^a-z0-9.-]+", "-", raw.lower()).strip("-.") or "blob"
    if clean != raw.lower():  # keep distinct inputs distinct after cleaning
        clean = f"{clean}-{hashlib.sha256(raw.encode()).hexdigest()[:6]}"
    return _shorten(clean, NAME_CHARS)


def label_value(text: str) -> str:
    """``text`` as a valid label value (at most 63 chars; long ones keep a head and a hash)."""
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")
    return _shorten(clean, 63)


def _labels(owner: Mapping[str, Any] | None, kind_label: str) -> dict[str, str]:
    labels = {LABEL_BLOB: label_value(kind_label), LABEL_PART_OF: "noetl"}
    if owner is not None:
        meta = owner.get("metadata") or {}
        name = meta.get("name") if "metadata" in owner else owner.get("name")
        if owner.get("kind") == "Execution" and name:
            labels[LABEL_EXECUTION] = label_value(str(name))
    return labels


async def put_blob(client: KubeClient, ns: str, name: str, value: Any, *, owner: Mapping[str, Any] | None,
                   kind_label: str) -> dict[str, Any]:
    """Store ``value`` (JSON-serialisable) under ``name``; the reference to keep in status.

    ``owner`` is the owning object (usually the Execution): deleting it deletes the ConfigMaps.
    ``kind_label`` says what the value is (state, result, command, event, playbook) in the
    ``noetl.io/blob`` label. Writing the same name again replaces the value.
    """
    base = blob_name(name)
    payload = zlib.compress(json.dumps(value, separators=(",", ":")).encode(), 6)
    digest = hashlib.sha256(payload).hexdigest()[:16]
    chunks = [payload[i:i + PART_BYTES] for i in range(0, len(payload), PART_BYTES)] or [b""]
    labels = _labels(owner, kind_label)
    names = [base] if len(chunks) == 1 else [f"{base}-{i}" for i in range(1, len(chunks) + 1)]

    async def write(i: int, part_name: str, chunk: bytes) -> None:
        annotations = {ANNOTATION_ENCODING: ENCODING, ANNOTATION_DIGEST: digest,
                       ANNOTATION_PART: f"{i}/{len(chunks)}"}
        await client.put_configmap(ns, part_name, binary_data={"value": base64.b64encode(chunk).decode()},
                                   labels=labels, annotations=annotations, owner=owner)

    await asyncio.gather(*(write(i, n, c) for i, (n, c) in enumerate(zip(names, chunks), start=1)))
    ref: dict[str, Any] = {"configMap": base, "sha256": digest}
    if len(chunks) > 1:
        ref["parts"] = len(chunks)
    return ref


async def get_blob(client: KubeClient, ns: str, ref: Mapping[str, Any]) -> Any:
    """The value a ``put_blob`` reference points to. NotFound when a ConfigMap is gone."""
    base = str(ref["configMap"])
    parts = int(ref.get("parts") or 1)
    names = [base] if parts == 1 and "parts" not in ref else [f"{base}-{i}" for i in range(1, parts + 1)]
    maps = await asyncio.gather(*(client.get_configmap(ns, n) for n in names))
    chunks = []
    for cm in maps:
        data = (cm.get("binaryData") or {}).get("value")
        if data is None:
            raise BlobError(f"ConfigMap {ns}/{cm['metadata']['name']} holds no noetl blob (no binaryData.value)")
        chunks.append(base64.b64decode(data))
    payload = b"".join(chunks)
    wanted = ref.get("sha256")
    if wanted and hashlib.sha256(payload).hexdigest()[:16] != wanted:
        raise BlobError(f"blob {ns}/{base} does not match its reference (sha256 {wanted}): it was rewritten "
                        "while being read; read the reference again")
    return json.loads(zlib.decompress(payload))
