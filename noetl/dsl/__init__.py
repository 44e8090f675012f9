"""DSL v2: models, YAML reading with line numbers, validation (DESIGN §3.1).

Both document forms (file form, Kubernetes resource form) parse to ``Playbook``.
"""

from noetl.dsl._models import (
    ACTION_ORDER,
    END,
    START,
    TOOL_KINDS,
    CaseRule,
    Collect,
    Fail,
    Loop,
    Metadata,
    Playbook,
    Retry,
    Sink,
    Step,
    Then,
    Transition,
    WorkbookEntry,
)
from noetl.dsl._manifest import k8s_name, to_manifest
from noetl.dsl._parsing import NAME_ANNOTATION, PATH_ANNOTATION, ParsedPlaybook, load_playbook, parse_playbook, validate_document

__all__ = [
    "ACTION_ORDER", "END", "NAME_ANNOTATION", "k8s_name", "to_manifest", "START", "TOOL_KINDS", "PATH_ANNOTATION",
    "CaseRule", "Collect", "Fail", "Loop", "Metadata", "ParsedPlaybook", "Playbook", "Retry", "Sink", "Step",
    "Then", "Transition", "WorkbookEntry", "load_playbook", "parse_playbook", "validate_document",
]
