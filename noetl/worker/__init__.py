"""Executes engine Commands with the tools and reports ``call.done`` Events; transport-agnostic.

Who calls it: the local runner, worker pods and Job pods. It resolves credentials (only here, DESIGN
§3.9), renders templates that need them, runs the tool and redacts credential values from what it
reports. It never touches engine state, never waits for a command's delay, and never raises for a
failed call: failures travel as error records inside the event.
"""

from noetl.worker._credentials import (
    ChainedCredentials,
    CredentialSource,
    CredentialsFileError,
    EnvironmentCredentials,
    MappingCredentials,
    default_credentials,
    env_var_name,
    load_credentials_file,
)
from noetl.worker._executing import WorkerRuntime, create_http_client, execute
from noetl._redaction import redact, secret_strings

__all__ = [
    "ChainedCredentials",
    "CredentialSource",
    "CredentialsFileError",
    "EnvironmentCredentials",
    "MappingCredentials",
    "WorkerRuntime",
    "create_http_client",
    "default_credentials",
    "env_var_name",
    "execute",
    "load_credentials_file",
    "redact",
    "secret_strings",
]
