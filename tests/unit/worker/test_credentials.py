"""Credential sources: file, environment, chain (DESIGN §3.9)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import noetl.worker
from noetl.errors import ToolError
from noetl.worker import (
    ChainedCredentials,
    CredentialsFileError,
    EnvironmentCredentials,
    MappingCredentials,
    default_credentials,
    env_var_name,
    load_credentials_file,
    redact,
    secret_strings,
)


def _resolve(source: Any, name: str) -> Any:
    value = source.resolve(name)
    return asyncio.run(value) if asyncio.iscoroutine(value) else value


def test_file_with_maps_and_scalars(tmp_path: Path) -> None:
    path = tmp_path / "creds.yaml"
    path.write_text("pg_local:\n  host: 127.0.0.1\n  port: 5432\n  password: s3cret\nopenai_key: sk-123\n")
    creds = load_credentials_file(path)
    assert creds.resolve("pg_local") == {"host": "127.0.0.1", "port": 5432, "password": "s3cret"}
    assert creds.resolve("openai_key") == "sk-123"


def test_file_missing_name_lists_what_it_has(tmp_path: Path) -> None:
    path = tmp_path / "creds.yaml"
    path.write_text("a: 1\nb: 2\n")
    with pytest.raises(ToolError) as info:
        load_credentials_file(path).resolve("c")
    record = info.value.record
    assert record["type"] == "CredentialNotFound" and record["credential"] == "c"
    assert str(path) in record["message"] and "has: a, b" in record["message"]


def test_empty_file_is_an_empty_source(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(ToolError):
        load_credentials_file(path).resolve("x")


BAD_FILES = {
    "not-a-map": ("- a\n- b\n", "must be a YAML map"),
    "bad-yaml": ("a: [1, 2\n", "not valid YAML"),
    "non-string-name": ("1: x\n", "must be strings"),
}


@pytest.mark.parametrize("text, message", list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_bad_files_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "creds.yaml"
    path.write_text(text)
    with pytest.raises(CredentialsFileError) as info:
        load_credentials_file(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialsFileError, match="not found"):
        load_credentials_file(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name, var", [
    ("pg_local", "NOETL_CREDENTIAL_PG_LOCAL"),
    ("projects/1/secrets/openai-api-key/versions/1", "NOETL_CREDENTIAL_PROJECTS_1_SECRETS_OPENAI_API_KEY_VERSIONS_1"),
], ids=["simple", "path-like"])
def test_env_var_name(name: str, var: str) -> None:
    assert env_var_name(name) == var


def test_environment_values_parse_as_json_when_they_can() -> None:
    env = EnvironmentCredentials({"NOETL_CREDENTIAL_PG": '{"dsn": "postgresql://x"}', "NOETL_CREDENTIAL_KEY": "plain text"})
    assert env.resolve("pg") == {"dsn": "postgresql://x"}
    assert env.resolve("key") == "plain text"
    with pytest.raises(ToolError, match="NOETL_CREDENTIAL_NOPE"):
        env.resolve("nope")


def test_chain_takes_the_first_source_that_has_the_name() -> None:
    chain = ChainedCredentials(MappingCredentials({"a": "from-map"}),
                               EnvironmentCredentials({"NOETL_CREDENTIAL_A": "from-env", "NOETL_CREDENTIAL_B": "env-b"}))
    assert _resolve(chain, "a") == "from-map"
    assert _resolve(chain, "b") == "env-b"
    with pytest.raises(ToolError) as info:
        _resolve(chain, "c")
    assert "credentials mapping" in info.value.record["message"]
    assert "NOETL_CREDENTIAL_C" in info.value.record["message"]


def test_default_credentials_reads_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: file\n")
    monkeypatch.setenv("NOETL_CREDENTIAL_B", "env")
    source = default_credentials(path)
    assert _resolve(source, "a") == "file" and _resolve(source, "b") == "env"
    assert _resolve(default_credentials(), "b") == "env"


def test_secret_strings_include_dsn_passwords_and_skip_short_values() -> None:
    cred = {"dsn": "postgresql://u:p%40ssw0rd@db:5432/x", "port": 5432, "user": "abc",
            "extra": "host=db password='q w' user=u", "list": ["tok-1234"]}
    secrets = secret_strings(cred)
    assert "p@ssw0rd" in secrets and "p%40ssw0rd" in secrets and "tok-1234" in secrets
    assert "abc" not in secrets
    assert secrets == sorted(secrets, key=len, reverse=True)


def test_redact_masks_everywhere() -> None:
    value = {"a": "x-secret1-y", "secret1": ["secret1", 5, None, ("secret1",)]}
    assert redact(value, ["secret1"]) == {"a": "x-***-y", "***": ["***", 5, None, ("***",)]}
    assert redact(value, []) is value


def test_public_names_are_exported() -> None:
    public = {n for n in vars(noetl.worker) if not n.startswith("_")}
    assert public == set(noetl.worker.__all__)


def test_connection_locating_fields_are_not_masked_but_secrets_are() -> None:
    # Regression: masking every credential value turned the user name `noetl` into *** in every
    # query result that mentioned it.
    cred = {"host": "db.internal", "port": 5432, "user": "noetl", "dbname": "warehouse",
            "password": "pw-s3cret", "api_key": "key-123456"}
    secrets = secret_strings(cred)
    assert sorted(secrets) == ["key-123456", "pw-s3cret"]
    assert redact({"row": "noetl@db.internal/warehouse pw-s3cret"}, secrets) == {"row": "noetl@db.internal/warehouse ***"}


def test_numbers_and_url_encoded_forms_of_secrets_are_masked() -> None:
    # Regression: a numeric PIN and `p@ss word` sent in a query string (p%40ss+word) leaked.
    secrets = secret_strings({"pin": 98765432, "token": "p@ss word/+&="})
    masked = redact({"url": "http://h/x?q=p%40ss+word%2F%2B%26%3D&pin=98765432",
                     "path": "/p%40ss%20word%2F%2B%26%3D"}, secrets)
    assert masked == {"url": "http://h/x?q=***&pin=***", "path": "/***"}
