"""Where the engine state of an Execution lives between reconciles.

Small states are kept in ``status.state`` (JSON, zlib-compressed, base64) so a restart needs one
read. Large ones go to two alternating ConfigMaps (``<name>-state-0`` / ``-1``): the one named
in status stays valid until the status patch that points at the other one has landed, so a crash
between the two writes never leaves status pointing at a half-written state.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from noetl.k8s import get_blob, put_blob

ENCODING = "zlib+base64+json"


def encode(snapshot: dict[str, Any]) -> str:
    raw = json.dumps(snapshot, separators=(",", ":"), default=str).encode()
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def decode(data: str) -> dict[str, Any]:
    value = json.loads(zlib.decompress(base64.b64decode(data)))
    assert isinstance(value, dict)
    return value


async def save(client: Any, body: dict[str, Any], snapshot: dict[str, Any], *, seq: int,
               inline_limit: int) -> dict[str, Any]:
    """Return the ``status.state`` value for ``snapshot`` (writing a ConfigMap when it is large)."""
    data = encode(snapshot)
    if len(data) <= inline_limit:
        return {"seq": seq, "encoding": ENCODING, "data": data}
    meta = body["metadata"]
    ref = await put_blob(client, meta["namespace"], f"{meta['name']}-state-{seq % 2}", snapshot,
                         owner=body, kind_label="state")
    return {"seq": seq, "blob": ref}


async def load(client: Any, body: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    if "data" in state:
        return decode(state["data"])
    value = await get_blob(client, body["metadata"]["namespace"], state["blob"])
    assert isinstance(value, dict)
    return value
