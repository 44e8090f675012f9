"""The Kubernetes contract: names, labels and the shapes of Playbook and Execution (DESIGN §4).

Every part that talks to the API (operator, workers, Job pods, CLI, chart, CRD generator) takes
its names from here, so a renamed field breaks in one place. The pydantic models are the source of
the CRD schemas (``noetl crds``); they are not used to parse objects at run time (status is read
as plain dicts so that nothing we do not know is dropped).

Status of an Execution, and who writes which part::

    phase, conditions, startedAt, finishedAt, progress, steps, commands, state, result, resultRef,
    error, playbook, observedGeneration, eventsProcessed          <- operator only (guarded patch)
    inbox.<event id>                                               <- workers and Job pods (merge patch, add only)
"""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

GROUP = "noetl.io"
VERSION = "v2"
API_VERSION = f"{GROUP}/{VERSION}"
PLAYBOOKS = "playbooks"
EXECUTIONS = "executions"

# -- labels and annotations ---------------------------------------------------------------------------
LABEL_EXECUTION = "noetl.io/execution"  # on Jobs, ConfigMaps, Leases' commands: the Execution name
LABEL_COMPONENT = "app.kubernetes.io/component"  # operator | worker | job
LABEL_PART_OF = "app.kubernetes.io/part-of"  # "noetl"
LABEL_WORKER = "noetl.io/worker"  # "true" on worker Leases
LABEL_BLOB = "noetl.io/blob"  # kind of data a ConfigMap holds: state | result | command | event | playbook
ANNOTATION_CREDENTIAL = "noetl.io/credential"  # on Secrets: the credential name(s) they serve, comma-separated
ANNOTATION_COMMAND = "noetl.io/command-id"  # on Jobs: the command id it runs

#: How long a worker Lease is valid without renewal, and how often workers renew it.
LEASE_DURATION_SECONDS = 15
LEASE_RENEW_SECONDS = 5
#: Largest command or event kept inline in status; larger ones go to a ConfigMap and status holds a ref.
INLINE_LIMIT_BYTES = 32 * 1024
#: Largest workflow result kept inline in status.result; larger ones go to a ConfigMap (resultRef).
RESULT_INLINE_LIMIT_BYTES = 64 * 1024


class Phase(str, enum.Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED)


class Reason(str, enum.Enum):
    """Reasons of conditions and Kubernetes Events."""

    STARTED = "Started"
    STEP_FAILED = "StepFailed"
    RETRYING = "Retrying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    SUSPENDED = "Suspended"
    RESUMED = "Resumed"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    PLAYBOOK_NOT_FOUND = "PlaybookNotFound"
    PLAYBOOK_INVALID = "PlaybookInvalid"
    VALID = "Valid"

    def __str__(self) -> str:
        return self.value


_OPEN = ConfigDict(extra="allow")


# -- Playbook ------------------------------------------------------------------------------------------
class PlaybookSpec(BaseModel):
    """The playbook body (the file form's top-level fields)."""

    model_config = _OPEN
    workload: dict[str, Any] | None = Field(default=None, description="Input values of the playbook; "
                                            "an Execution's spec.workload is deep-merged over them.")
    workbook: list[dict[str, Any]] | None = Field(default=None, description="Named tool configs used by "
                                                  "steps with tool.kind workbook.")
    workflow: list[dict[str, Any]] = Field(description="The steps. The run begins at the step named start.")
    keychain: Any = Field(default=None, description="Accepted for compatibility; ignored.")


class PlaybookStatus(BaseModel):
    phase: Literal["Ready", "Invalid"] | None = Field(default=None, description="Ready when the playbook "
                                                       "validates, Invalid otherwise (see messages).")
    messages: list[str] | None = Field(default=None, description="Validation problems, one per line, "
                                       "'step NAME: FIELD: message'.")
    observedGeneration: int | None = Field(default=None, description="metadata.generation last validated.")
    steps: int | None = Field(default=None, description="Number of steps (for printer columns).")
    conditions: list[dict[str, Any]] | None = Field(default=None, description="Standard conditions (Ready).")


# -- Execution -----------------------------------------------------------------------------------------
class PlaybookRef(BaseModel):
    name: str = Field(description="Name of a Playbook in the Execution's namespace.")


class ExecutionSpec(BaseModel):
    playbookRef: PlaybookRef | None = Field(default=None, description="The Playbook to run (exactly one of "
                                            "playbookRef and playbook).")
    playbook: dict[str, Any] | None = Field(default=None, description="An inline playbook body (same fields "
                                            "as a Playbook's spec).")
    workload: dict[str, Any] | None = Field(default=None, description="Overrides deep-merged over the "
                                            "playbook's workload.")
    executor: Literal["worker", "job"] | None = Field(default=None, description="Where commands run: "
                                                      "'worker' (the worker Deployment) or 'job' (one Job per "
                                                      "command). Default: the operator's setting.")
    suspend: bool | None = Field(default=None, description="True: dispatch no new commands until set back "
                                 "to false; running calls finish.")
    cancel: bool | None = Field(default=None, description="True: stop the execution (phase Cancelled); "
                                "its Jobs are deleted and queued worker commands dropped.")
    timeoutSeconds: int | None = Field(default=None, ge=1, description="Fail with reason DeadlineExceeded "
                                       "this many seconds after the start.")
    ttlSecondsAfterFinished: int | None = Field(default=None, ge=0, description="Delete the Execution this "
                                                "many seconds after it finished.")


class ExecutionStatus(BaseModel):
    model_config = _OPEN
    phase: Literal["Pending", "Running", "Suspended", "Succeeded", "Failed", "Cancelled"] | None = Field(
        default=None, description="Where the execution is in its life.")
    conditions: list[dict[str, Any]] | None = Field(default=None, description="Standard conditions.")
    observedGeneration: int | None = None
    playbook: dict[str, Any] | None = Field(default=None, description="The playbook version pinned at the "
                                            "start: {name, uid, generation, configMap}.")
    startedAt: str | None = Field(default=None, description="RFC 3339 time the execution started.")
    finishedAt: str | None = Field(default=None, description="RFC 3339 time the execution finished.")
    duration: str | None = Field(default=None, description="Run time once finished, e.g. '12s'.")
    progress: str | None = Field(default=None, description="'done/total' steps, for kubectl get.")
    steps: dict[str, dict[str, Any]] | None = Field(default=None, description="Per step: status, runs, calls, "
                                                    "items done/total.")
    commands: dict[str, dict[str, Any]] | None = Field(default=None, description="Outstanding commands by id: "
                                                       "{worker|job, command or commandRef, assignedAt}.")
    inbox: dict[str, dict[str, Any]] | None = Field(default=None, description="Events reported by workers, by "
                                                    "event id, not yet applied by the operator.")
    state: dict[str, Any] | None = Field(default=None, description="The engine state: {seq, encoding, data} "
                                         "or {seq, configMap}.")
    result: Any = Field(default=None, description="The workflow result (when small enough).")
    resultRef: dict[str, Any] | None = Field(default=None, description="ConfigMap holding a large result.")
    error: dict[str, Any] | None = Field(default=None, description="{type, message, step} when failed.")
    eventsProcessed: int | None = Field(default=None, description="call.done events applied so far.")
    warnings: list[str] | None = Field(default=None, description="Runtime warnings (e.g. errors in when).")
