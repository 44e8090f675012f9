"""Everything that talks to the Kubernetes API (DESIGN §2, §4): the contract, the client, the
result store, Secret credentials and the worker processes.

Who uses it: the operator (``noetl_operator``), ``noetl worker`` (worker and Job pods) and the CLI.
Nothing else in ``noetl`` imports ``kubernetes``; this package never runs the engine (only the
operator does) and workers only ever add to ``status.inbox``.

Errors::

    NoetlError
    └── ApiError (status, reason, message; .retriable)
        ├── Forbidden (403)   ├── NotFound (404)   ├── Conflict (409)   └── Gone (410)
    BlobError                 a stored value cannot be read back

The contract (``_resources``) and ``add_worker_command`` load at once; the rest (which imports
the ``kubernetes`` client, about a second) on first use, so ``noetl run`` never pays for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from noetl.k8s._worker_cli import add_worker_command
from noetl.k8s._resources import (
    ANNOTATION_COMMAND,
    ANNOTATION_CREDENTIAL,
    API_VERSION,
    EXECUTIONS,
    GROUP,
    INLINE_LIMIT_BYTES,
    LABEL_BLOB,
    LABEL_COMPONENT,
    LABEL_EXECUTION,
    LABEL_PART_OF,
    LABEL_WORKER,
    LEASE_DURATION_SECONDS,
    LEASE_RENEW_SECONDS,
    PLAYBOOKS,
    RESULT_INLINE_LIMIT_BYTES,
    VERSION,
    ExecutionSpec,
    ExecutionStatus,
    Phase,
    PlaybookRef,
    PlaybookSpec,
    PlaybookStatus,
    Reason,
)

if TYPE_CHECKING:
    from noetl.k8s._blobs import (
        BlobError,
        blob_name,
        get_blob,
        label_value,
        put_blob,
    )
    from noetl.k8s._client import (
        KubeClient,
        json_pointer,
        micro_time,
        owner_reference,
        rfc3339,
    )
    from noetl.k8s._credentials import (
        SecretCredentials,
        secret_value,
    )
    from noetl.k8s._errors import (
        ApiError,
        Conflict,
        Forbidden,
        Gone,
        NotFound,
    )
    from noetl.k8s._watching import (
        WatchStream,
    )
    from noetl.k8s._worker import (
        InboxWriter,
        Worker,
        inbox_entry,
        lease_name,
        report_event,
        run_job_command,
        run_worker,
    )

#: Name -> module for the names loaded on first use.
_LAZY = {
    "BlobError": "noetl.k8s._blobs",
    "blob_name": "noetl.k8s._blobs",
    "get_blob": "noetl.k8s._blobs",
    "label_value": "noetl.k8s._blobs",
    "put_blob": "noetl.k8s._blobs",
    "KubeClient": "noetl.k8s._client",
    "json_pointer": "noetl.k8s._client",
    "micro_time": "noetl.k8s._client",
    "owner_reference": "noetl.k8s._client",
    "rfc3339": "noetl.k8s._client",
    "SecretCredentials": "noetl.k8s._credentials",
    "secret_value": "noetl.k8s._credentials",
    "ApiError": "noetl.k8s._errors",
    "Conflict": "noetl.k8s._errors",
    "Forbidden": "noetl.k8s._errors",
    "Gone": "noetl.k8s._errors",
    "NotFound": "noetl.k8s._errors",
    "WatchStream": "noetl.k8s._watching",
    "InboxWriter": "noetl.k8s._worker",
    "Worker": "noetl.k8s._worker",
    "inbox_entry": "noetl.k8s._worker",
    "lease_name": "noetl.k8s._worker",
    "report_event": "noetl.k8s._worker",
    "run_job_command": "noetl.k8s._worker",
    "run_worker": "noetl.k8s._worker",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'noetl.k8s' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    # the contract (_resources)
    "ANNOTATION_COMMAND", "ANNOTATION_CREDENTIAL", "API_VERSION", "EXECUTIONS", "GROUP", "INLINE_LIMIT_BYTES",
    "LABEL_BLOB", "LABEL_COMPONENT", "LABEL_EXECUTION", "LABEL_PART_OF", "LABEL_WORKER", "LEASE_DURATION_SECONDS",
    "LEASE_RENEW_SECONDS", "PLAYBOOKS", "RESULT_INLINE_LIMIT_BYTES", "VERSION", "ExecutionSpec", "ExecutionStatus",
    "Phase", "PlaybookRef", "PlaybookSpec", "PlaybookStatus", "Reason",
    # client and errors
    "ApiError", "Conflict", "Forbidden", "Gone", "KubeClient", "NotFound", "WatchStream", "json_pointer", "micro_time",
    "owner_reference", "rfc3339",
    # result store
    "BlobError", "blob_name", "get_blob", "label_value", "put_blob",
    # credentials and workers
    "InboxWriter", "SecretCredentials", "Worker", "add_worker_command", "inbox_entry", "lease_name", "report_event",
    "run_job_command", "run_worker", "secret_value",
]
