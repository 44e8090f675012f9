"""The NoETL Kubernetes operator (kopf): Playbook validation and Execution reconciliation.

Only the operator runs the engine and writes engine state and commands into Execution status;
workers and Job pods only add events to ``status.inbox`` (DESIGN §4.1). It never runs user code:
Python steps run in worker or Job pods. Started by ``noetl operator``.
"""

from noetl_operator._executions import ExecutionController
from noetl_operator._operator import Operator, build_registry, run
from noetl_operator._settings import Settings

__all__ = ["ExecutionController", "Operator", "Settings", "build_registry", "run"]
