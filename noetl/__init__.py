"""NoETL DSL v2 playbooks: parse, validate and run them embedded or on Kubernetes.

Layers (DESIGN §2), each importing only those to its left::

    templating <- dsl <- engine <- tools/worker <- local <- k8s/operator

(``templating`` sits below ``dsl`` because validation checks template syntax.)
"""

from noetl.dsl import ParsedPlaybook, Playbook, load_playbook, parse_playbook
from noetl.errors import NoetlError, PlaybookError, PlaybookInvalid, PlaybookSyntaxError, TemplateError, ToolError

__version__ = "0.1.0"


def run(playbook, workload=None, credentials=None, **kwargs):  # type: ignore[no-untyped-def]
    """Run a playbook with the embedded runner; see ``noetl.local.run``."""
    from noetl.local import run as _run

    return _run(playbook, workload, credentials, **kwargs)


__all__ = [
    "NoetlError", "ParsedPlaybook", "Playbook", "PlaybookError", "PlaybookInvalid", "PlaybookSyntaxError",
    "TemplateError", "ToolError", "__version__", "load_playbook", "parse_playbook", "run",
]
