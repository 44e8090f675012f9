"""Tunable numbers of the worker processes, apart so the CLI can show them without loading the client."""

#: Commands a worker pod runs at the same time.
DEFAULT_CONCURRENCY = 8
#: Seconds running commands get to finish after SIGTERM (Kubernetes' default grace is 30 s).
GRACE_SECONDS = 25.0
#: Seconds between full lists of Executions besides the watch (the watch ends and restarts then),
#: so a command is never missed for longer than this after a broken watch.
RELIST_SECONDS = 30
#: How long reporting one event keeps retrying transient API errors before giving up on it.
REPORT_DEADLINE = 300.0
