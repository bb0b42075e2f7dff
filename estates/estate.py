"""The ``Estate``: one open database and the operations every stage shares."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from estates.db import engine as db_engine
from estates.db import maintenance, store
from estates.errors import DatabaseError
from estates.settings import display_url, resolve_database_url

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """A load in progress: its id, its open transaction and its counters."""

    id: int
    connection: Connection
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (
                "rows_read",
                "inserted",
                "updated",
                "unchanged",
                "rejected",
                "located",
                "unlocated",
                "non_geographic",
            ),
            0,
        )
    )

    def reject(self, rows: list[dict[str, Any]]) -> None:
        """Keep rejected rows: dicts with ``row_number``, ``reason``, ``column_name``, ``raw``."""
        if not rows:
            return
        self.connection.execute(
            text(
                "INSERT INTO rejected_row (batch_id, row_number, column_name, reason, raw) "
                "VALUES (:batch_id, :row_number, :column_name, :reason, :raw)"
            ),
            [
                {
                    "batch_id": self.id,
                    "row_number": int(r["row_number"]),
                    "column_name": r.get("column_name"),
                    "reason": r["reason"],
                    "raw": store.json_text(r.get("raw")),
                }
                for r in rows
            ],
        )
        self.counts["rejected"] += len(rows)


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256_or_empty(path: str | os.PathLike[str]) -> str:
    """What a load batch records as its file's hash: empty for what is not a plain file."""
    return file_sha256(path) if Path(path).is_file() else ""


class Estate:
    """An open estate database (GeoPackage file or PostGIS).

    Examples
    --------
    >>> import estates
    >>> estate = estates.connect("/tmp/doctest-estate.gpkg")
    >>> estate.sites().crs.to_epsg()
    27700
    """

    def __init__(self, url: str | os.PathLike[str] | None = None, *, upgrade: bool = True) -> None:
        self.url = resolve_database_url(url)
        self.engine: Engine = db_engine.make_engine(self.url)
        if upgrade:
            self._upgrade_if_new()

    def __repr__(self) -> str:
        return f"Estate({display_url(self.url)!r})"

    @property
    def is_geopackage(self) -> bool:
        return db_engine.is_geopackage(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Estate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ------------------------------------------------------------------------

    def _upgrade_if_new(self) -> None:
        current = self.revision()
        if current is None:
            log.info("new database %s: creating the schema", display_url(self.url))
            self.upgrade()
        elif current != db_engine.head_revision():
            raise DatabaseError(
                f"database {display_url(self.url)} is at schema revision {current}, this version "
                f"needs {db_engine.head_revision()}: run `estates db upgrade`"
            )

    def revision(self) -> str | None:
        with self._errors():
            return db_engine.current_revision(self.engine)

    def upgrade(self, revision: str = "head") -> None:
        with self._errors():
            db_engine.upgrade(self.engine, revision)

    def downgrade(self, revision: str) -> None:
        with self._errors():
            db_engine.downgrade(self.engine, revision)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as error:
            raise db_engine.translate_operational_error(error, self.url) from None

    # -- transactions ------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction, holding the estate's single-writer lock."""
        with self._errors(), self.engine.begin() as connection:
            store.take_write_lock(connection)
            yield connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._errors(), self.engine.connect() as connection:
            yield connection

    @contextmanager
    def batch(
        self,
        loader: str,
        path: str | os.PathLike[str],
        options: dict[str, Any] | None = None,
        *,
        sha256: str | None = None,
    ) -> Iterator[Batch]:
        """A load batch in one transaction: all of it lands, or none of it (row included).

        ``sha256``: the file's hash if already known (:func:`file_sha256`, taken where the
        file was read); otherwise it is hashed here.
        """
        sha = sha256 if sha256 is not None else file_sha256_or_empty(path)
        with self.write() as connection:
            batch_id = connection.execute(
                text(
                    "INSERT INTO load_batch (loader, file_name, file_sha256, options, status, started_at, "
                    "rows_read, inserted, updated, unchanged, rejected, located, unlocated, non_geographic) "
                    "VALUES (:loader, :file, :sha, :options, 'running', :now, 0, 0, 0, 0, 0, 0, 0, 0) "
                    "RETURNING id"
                ),
                {
                    "loader": loader,
                    "file": os.fspath(path),
                    "sha": sha,
                    "options": store.json_text(options or {}),
                    "now": datetime.now(UTC),
                },
            ).scalar_one()
            batch = Batch(batch_id, connection)
            yield batch
            connection.execute(
                text(
                    "UPDATE load_batch SET status = 'complete', finished_at = :now, rows_read = :rows_read, "
                    "inserted = :inserted, updated = :updated, unchanged = :unchanged, rejected = :rejected, "
                    "located = :located, unlocated = :unlocated, non_geographic = :non_geographic "
                    "WHERE id = :id"
                ),
                {"now": datetime.now(UTC), "id": batch_id, **batch.counts},
            )

    # -- sites -------------------------------------------------------------------------

    def sites(
        self,
        *,
        footprint: str | None = None,
        sector: str | None = None,
        located: bool | None = None,
        include_non_geographic: bool = True,
        measures: bool = False,
        period: str | None = None,
    ) -> gpd.GeoDataFrame:
        """Sites as a GeoDataFrame in EPSG:27700 (unlocated sites have no geometry).

        ``measures=True`` or ``period="2019/20"`` joins the per-period measures as columns.
        """
        with self.read() as connection:
            return store.read_sites(
                connection,
                footprint=footprint,
                sector=sector,
                located=located,
                include_non_geographic=include_non_geographic,
                measures=measures,
                period=period,
            )

    def write_sites(self, sites: gpd.GeoDataFrame, *, source: str = "api") -> store.WriteResult:
        """Insert or update sites by ``source_key`` in one transaction (bulk, not row by row)."""
        with self.write() as connection:
            return store.write_sites(connection, sites, batch_id=None)

    # -- maintenance -------------------------------------------------------------------

    def check(self, *, repair: bool = False) -> maintenance.CheckReport:
        """Integrity of the database (after a crash, or before trusting a file); see ``estates check``."""
        if repair:
            with self.write() as connection:
                maintenance.repair_rtrees(connection)
        with self.read() as connection:
            return maintenance.check(connection)

    def vacuum(self) -> dict[str, int | None]:
        """``VACUUM``: hand the space of deleted rows back to the disk.

        A GeoPackage keeps the pages it frees (old runs, rows an upgrade converted) and
        reuses them, so the file never shrinks by itself; this rewrites it. Returns the
        file's size before and after (None on PostGIS, which reuses the space in place).
        """
        path = self.engine.url.database if self.is_geopackage else None

        def size() -> int | None:
            return os.path.getsize(path) if path else None

        before = size()
        # VACUUM cannot run inside a transaction, so it goes straight to the driver: the
        # SQLite connection is in autocommit mode (the engine issues BEGIN itself); the
        # psycopg one is switched to it for this statement and back before it is pooled.
        with self._errors():
            raw = self.engine.raw_connection()
            try:
                driver = raw.driver_connection
                if not self.is_geopackage:
                    driver.autocommit = True  # type: ignore[union-attr]
                driver.execute("VACUUM")  # type: ignore[union-attr]
            finally:
                if not self.is_geopackage:
                    driver.autocommit = False  # type: ignore[union-attr]
                raw.close()
        return {"bytes_before": before, "bytes_after": size()}

    def undo(self, batch_id: int) -> dict[str, int]:
        """Restore the sites and measures a load batch touched to their state before it.

        Restored sites are put back in the footprints that contain their old position.
        """
        from estates.ingest.footprints import assign_footprints

        with self.write() as connection:
            result = maintenance.undo_batch(connection, batch_id)
            restored = result.pop("restored_site_ids")
            if restored:
                assign_footprints(connection, site_ids=restored)
            return result

    def batches(self) -> pd.DataFrame:
        """Every load batch, newest first."""
        with self.read() as connection:
            result = connection.execute(text("SELECT * FROM load_batch ORDER BY id DESC"))
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    # -- boundaries, summaries, rejects (loaders write them: estates.ingest) -----------

    def boundaries(
        self, kind: str | None = None, codes: list[str] | None = None
    ) -> gpd.GeoDataFrame:
        """Footprint polygons (``code``, ``name``, ``kind``; EPSG:27700), optionally filtered."""
        from estates.db import boundaries as db_boundaries

        with self.read() as connection:
            frame = db_boundaries.read_boundaries(connection, kind=kind, codes=codes)
        return frame.drop(columns=["batch_id"])

    def summary(self, footprint: str | None = None) -> dict[str, Any]:
        """Sites per sector (located, unlocated, non-geographic, GIA m2, land ha) and load batches."""
        from estates.db import summary as db_summary

        with self.read() as connection:
            return db_summary.summary(connection, footprint)

    def rejected_rows(self, batch_id: int | None = None) -> pd.DataFrame:
        """Rows loaders could not use, with row number, column and reason (raw row as dict)."""
        from estates.db import summary as db_summary

        with self.read() as connection:
            return db_summary.rejected_rows(connection, batch_id)


def connect(url: str | os.PathLike[str] | None = None) -> Estate:
    """Open (and on first use create) the estate database.

    ``url`` is a GeoPackage path or a ``postgresql://`` URL; without it,
    ``ESTATES_DATABASE_URL`` and then ``./estates.gpkg``.
    """
    return Estate(url)
