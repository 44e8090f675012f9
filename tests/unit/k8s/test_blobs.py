"""Blob naming and encoding (the API seam faked; round trips against the API are integration tests)."""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any

import pytest

from noetl.k8s import BlobError, blob_name, get_blob, label_value, put_blob
from noetl.k8s._blobs import PART_BYTES
from tests.unit.k8s.fakes import FakeClient

DNS = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
OWNER = {"apiVersion": "noetl.io/v2", "kind": "Execution", "metadata": {"name": "run-1", "uid": "u1"}}


@pytest.mark.parametrize("name", ["run-state-0", "Run/Step#1:call.2", "x" * 400, "--a--", "ünïcode"],
                         ids=["plain", "odd-chars", "long", "dashes", "unicode"])
def test_blob_names_are_valid_and_deterministic(name: str) -> None:
    made = blob_name(name)
    assert DNS.match(made) and len(made) <= 240
    assert made == blob_name(name)


def test_blob_names_keep_distinct_inputs_distinct() -> None:
    assert blob_name("a/b") != blob_name("a:b") != blob_name("a-b")
    assert blob_name("x" * 300 + "1") != blob_name("x" * 300 + "2")
    assert blob_name("run", "event-1") == "run-event-1"


def test_label_values_fit() -> None:
    assert label_value("run") == "run"
    long = label_value("r" * 100)
    assert len(long) <= 63 and long != label_value("r" * 99)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_small_value_is_one_configmap_with_labels() -> None:
    client = FakeClient()
    ref = run(put_blob(client, "ns", "run-1-result", {"a": [1, None]}, owner=OWNER, kind_label="result"))  # type: ignore[arg-type]
    assert set(ref) == {"configMap", "sha256"} and ref["configMap"] == "run-1-result"
    cm = client.configmaps[("ns", "run-1-result")]
    assert cm["metadata"]["labels"] == {"noetl.io/blob": "result", "app.kubernetes.io/part-of": "noetl",
                                        "noetl.io/execution": "run-1"}
    assert run(get_blob(client, "ns", ref)) == {"a": [1, None]}  # type: ignore[arg-type]


def test_large_value_is_split_and_reassembled() -> None:
    client = FakeClient()
    value = {"noise": os.urandom(int(PART_BYTES * 2.5)).hex()}
    ref = run(put_blob(client, "ns", "big", value, owner=None, kind_label="state"))  # type: ignore[arg-type]
    assert ref["parts"] >= 3
    assert sorted(n for _, n in client.configmaps) == [f"big-{i}" for i in range(1, ref["parts"] + 1)]
    assert run(get_blob(client, "ns", ref)) == value  # type: ignore[arg-type]


def test_parts_of_different_writes_are_refused() -> None:
    client = FakeClient()
    first = run(put_blob(client, "ns", "v", {"n": 1}, owner=None, kind_label="state"))  # type: ignore[arg-type]
    run(put_blob(client, "ns", "v", {"n": 2}, owner=None, kind_label="state"))  # type: ignore[arg-type]
    with pytest.raises(BlobError, match="rewritten"):
        run(get_blob(client, "ns", first))  # type: ignore[arg-type]
