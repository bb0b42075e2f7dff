"""Open a database by URL: engines, per-connection setup, and Alembic migrations."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError

from estates.db import bulk, geopackage
from estates.errors import DatabaseBusyError, DatabaseError
from estates.settings import busy_timeout_seconds, display_url, redact

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def is_geopackage(engine_or_url: Engine | Connection | str) -> bool:
    if isinstance(engine_or_url, str):
        return make_url(engine_or_url).get_backend_name() == "sqlite"
    return engine_or_url.dialect.name == "sqlite"


def make_engine(url: str) -> Engine:
    """An engine for a GeoPackage path URL (``sqlite:///...``) or a PostGIS URL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _geopackage_engine(url)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True)
    raise DatabaseError(
        f"unsupported database {display_url(url)!r}: use a .gpkg path or a postgresql:// URL"
    )


#: Page cache of each GeoPackage connection (negative: KiB, so 64 MiB at most).
PAGE_CACHE_KIB = -65536


def _geopackage_engine(url: str) -> Engine:
    timeout = busy_timeout_seconds()
    database = make_url(url).database
    if database and database != ":memory:":
        folder = Path(database).parent
        if not folder.is_dir():
            raise DatabaseError(
                f"cannot create the GeoPackage {database}: folder {folder} does not exist"
            )
    engine = create_engine(url, connect_args={"timeout": timeout})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's BEGIN below be the only transaction control (pysqlite recipe).
        dbapi_connection.isolation_level = None
        geopackage.register_sql_functions(dbapi_connection)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        # SQLite's default 2 MB page cache re-reads index pages from the OS on every
        # insert into a national table's R-tree or indexes (measured: 10,000 new sites
        # into a 437,000-entry R-tree in 2.1 s; 1.3 s with 256 MB). Pages only as used.
        cursor.execute(f"PRAGMA cache_size = {PAGE_CACHE_KIB}")
        # Rows built in the read-ahead worker are read from here (bulk.staged); SQLite
        # allows no ATTACH inside the load's transaction, so it is attached now, empty.
        cursor.execute(f"ATTACH DATABASE ':memory:' AS {bulk.STAGING_SCHEMA}")
        if cursor.execute("PRAGMA application_id").fetchone()[0] != geopackage.GPKG_APPLICATION_ID:
            geopackage.ensure_core(cursor)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so a second writer waits (busy_timeout)
        # instead of failing half-way through with a lock upgrade error.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def geopackage_reader(path: str) -> Engine:
    """A read-only engine on a GeoPackage that never takes the write lock.

    For a second process reading while this one writes (the read-ahead worker): each
    statement holds SQLite's shared lock only while it runs, so the writer's commit
    waits at most for one short query (and a query during a commit waits busy_timeout).
    """
    timeout = busy_timeout_seconds()
    uri = Path(path).resolve().as_uri()
    engine = create_engine(
        "sqlite://", creator=lambda: sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=timeout)
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no BEGIN: no lock held between statements
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")

    return engine


def translate_operational_error(error: OperationalError, url: str) -> DatabaseError:
    """Turn a driver error into one clear line (no password, no SQL)."""
    text = str(error.orig) if error.orig is not None else str(error)
    if "locked" in text or "busy" in text:
        return DatabaseBusyError(
            f"database is busy: another process is writing to {display_url(url)}; "
            f"waited {busy_timeout_seconds():.0f} s (set ESTATES_BUSY_TIMEOUT to wait longer)"
        )
    return DatabaseError(
        f"cannot use database {display_url(url)}: {redact(text.strip().splitlines()[0])}"
    )


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (Alembic is the only thing that creates tables)."""
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)
