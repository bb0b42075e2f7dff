"""A throwaway PostgreSQL + PostGIS cluster on a temporary directory and a free port.

Used by the test suite and the benchmarks. Runs the server as the ``postgres`` system
user when we are root (``initdb`` refuses to run as root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("ESTATES_PG_BIN", "/usr/lib/postgresql/15/bin"))
POSTGIS_CONTROL = Path("/usr/share/postgresql/15/extension/postgis.control")


def unavailable_reason() -> str | None:
    """Why a throwaway PostGIS cluster cannot start here, or None if it can."""
    if not (PG_BIN / "initdb").exists():
        return (
            f"PostgreSQL 15 server binaries not found in {PG_BIN} (apt-get install postgresql-15)"
        )
    if not POSTGIS_CONTROL.exists():
        return "PostGIS is not installed (apt-get install postgresql-15-postgis-3)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="estates-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = [str(a) for a in args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> Cluster:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            PG_BIN / "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        self._run(
            PG_BIN / "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-w",
            "-l",
            str(self.root / "log"),
            "start",
        )
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(PG_BIN / "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"


def create_database(admin_url: str, name: str) -> str:
    """Create an empty database with PostGIS enabled; return its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name)
    with psycopg.connect(
        url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
    ) as conn:
        for _ in range(3):
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
                break
            except psycopg.errors.UniqueViolation:  # concurrent first CREATE EXTENSION
                time.sleep(0.2)
    return url.render_as_string(hide_password=False)
