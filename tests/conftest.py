"""Fixtures shared by every test: a real throwaway PostgreSQL server and a local HTTP server.

Both are real servers on loopback, never mocks: the tools must be proven against real protocols.

PostgreSQL: ``initdb`` + ``pg_ctl`` from the Debian ``postgresql`` package (PATH or
``/usr/lib/postgresql/*/bin``), a data directory and a socket directory in a temp dir, a random
loopback port. ``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` OS
user (or a ``noetl-pg`` system user created for the purpose) through ``runuser``. The superuser
``noetl`` logs in without a password (trust on loopback); the role ``noetl_pw`` must give its
password, so the password path of credentials is exercised too. Missing binaries fail the run with
the fix (we never skip).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from typing import Iterator

import pytest

from tests.helpers.cluster import control_plane, kube, namespace  # noqa: F401 - fixtures for every folder
from tests.helpers.httpserver import LocalHTTPServer, free_port

_PG_SUPERUSER = "noetl"
_PG_PASSWORD_USER = "noetl_pw"
_PG_DB = "noetl_test"


@dataclasses.dataclass(frozen=True)
class PostgresServer:
    """Where the test server listens and how to log in."""

    host: str
    port: int
    dbname: str
    superuser: str  # trust auth, no password
    password_user: str  # must authenticate with `password`
    password: str
    socket_dir: str

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.superuser}@{self.host}:{self.port}/{self.dbname}"

    def credential(self) -> dict[str, object]:
        """A credential dict (libpq fields) for the password user, as a credentials file holds it."""
        return {"host": self.host, "port": self.port, "user": self.password_user,
                "password": self.password, "dbname": self.dbname}


def _find_pg_bin() -> str:
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(initdb))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if candidates:
        return os.path.dirname(candidates[-1])
    pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
                "/usr/lib/postgresql/*/bin. Install them: `apt-get install -y postgresql` "
                "(the tests start their own throwaway server; no service needs to run).", pytrace=False)


def _server_user() -> str | None:
    """The OS user to run the server as; None when we are not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "noetl-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "noetl-pg"],
                   check=True, capture_output=True)
    return "noetl-pg"


def _run(cmd: list[str], *, user: str | None, cwd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    return proc


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole test session, removed afterwards."""
    bindir = _find_pg_bin()
    user = _server_user()
    root = tempfile.mkdtemp(prefix="noetl-pg-")
    data, sockets, log = os.path.join(root, "data"), os.path.join(root, "sock"), os.path.join(root, "server.log")
    os.makedirs(sockets)
    os.chmod(root, 0o755)  # runuser'd processes must traverse it
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (root, sockets):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    password = secrets.token_urlsafe(12)
    started = False
    try:
        _run([f"{bindir}/initdb", "-D", data, "-U", _PG_SUPERUSER, "--auth=trust", "-E", "UTF8",
              "--no-locale", "--no-sync"], user=user, cwd=root)
        # First match wins in pg_hba.conf: the password user must authenticate, everyone else is trusted.
        with open(os.path.join(data, "pg_hba.conf"), "w") as hba:
            hba.write(f"host all {_PG_PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n"
                      "local all all trust\n"
                      "host all all 127.0.0.1/32 trust\n")
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(os.path.join(data, "pg_hba.conf"), entry.pw_uid, entry.pw_gid)
        for attempt in range(3):
            port = free_port()
            opts = (f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
            proc = _run([f"{bindir}/pg_ctl", "-D", data, "-l", log, "-o", opts, "-w", "-t", "60", "start"],
                        user=user, cwd=root, check=False)
            if proc.returncode == 0:
                started = True
                break
            time.sleep(0.2)
        if not started:
            with open(log) as fh:
                pytest.fail(f"PostgreSQL did not start (see {log}):\n{fh.read()[-3000:]}", pytrace=False)
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={port} user={_PG_SUPERUSER} dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {_PG_DB}")
            # token_urlsafe yields [A-Za-z0-9_-] only, so quoting it literally is safe (DDL takes no parameters).
            conn.execute(f"CREATE ROLE {_PG_PASSWORD_USER} LOGIN PASSWORD '{password}'")
            conn.execute(f"GRANT ALL PRIVILEGES ON DATABASE {_PG_DB} TO {_PG_PASSWORD_USER}")
        with psycopg.connect(f"host=127.0.0.1 port={port} user={_PG_SUPERUSER} dbname={_PG_DB}",
                             autocommit=True) as conn:
            conn.execute(f"GRANT ALL ON SCHEMA public TO {_PG_PASSWORD_USER}")
        yield PostgresServer(host="127.0.0.1", port=port, dbname=_PG_DB, superuser=_PG_SUPERUSER,
                             password_user=_PG_PASSWORD_USER, password=password, socket_dir=sockets)
    finally:
        if started:
            _run([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], user=user, cwd=root, check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """libpq URI of the test server's database for the (trusted) superuser."""
    return postgres_server.dsn


@pytest.fixture
def http_server() -> Iterator[LocalHTTPServer]:
    """A fresh local HTTP server per test; register routes with ``http_server.route(...)``."""
    with LocalHTTPServer() as server:
        yield server
