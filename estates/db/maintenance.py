"""Integrity checks and undo of load batches.

``check`` is what a user runs after a crash or before trusting a file someone sent:
SQLite/GeoPackage integrity, every R-tree equal to its table, no orphan rows, no
half-finished load batch. ``undo_batch`` restores the sites a batch touched to their
state before it, from the before-images the batch recorded in ``site_change``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection

from estates.db import geopackage, rtree, store
from estates.db.models import SPATIAL_COLUMNS
from estates.errors import ConfigurationError, NotFoundError
from estates.settings import WORKING_EPSG

log = logging.getLogger(__name__)

#: (child table, foreign key column, parent table) pairs that must never dangle.
_REFERENCES = (
    ("site", "organisation_id", "organisation"),
    ("site_measure", "site_id", "site"),
    ("site_footprint", "site_id", "site"),
    ("run_result", "run_id", "analysis_run"),
    ("analysis_feature", "run_id", "analysis_run"),
    ("rejected_row", "batch_id", "load_batch"),
    ("site_change", "batch_id", "load_batch"),
    ("site", "batch_id", "load_batch"),
)


@dataclass
class CheckReport:
    """What ``estates check`` found: ``ok`` only when ``problems`` is empty."""

    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": self.checks, "problems": self.problems}


def check(connection: Connection) -> CheckReport:
    report = CheckReport()
    if store.is_sqlite(connection):
        _check_sqlite(connection, report)
    else:
        _check_postgis(connection, report)
    for child, column, parent in _REFERENCES:
        orphans = connection.execute(
            text(
                f"SELECT count(*) FROM {child} c WHERE c.{column} IS NOT NULL "
                f"AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = c.{column})"
            )
        ).scalar_one()
        report.checks.append(f"{child}.{column} -> {parent}")
        if orphans:
            report.problems.append(
                f"{orphans} rows of {child} point to a missing {parent} ({column})"
            )
    running = connection.execute(
        text("SELECT id, file_name FROM load_batch WHERE status = 'running'")
    ).fetchall()
    report.checks.append("no half-finished load batch")
    for batch_id, file_name in running:
        report.problems.append(f"load batch {batch_id} ({file_name}) never finished")
    return report


def _check_sqlite(connection: Connection, report: CheckReport) -> None:
    raw = connection.connection.driver_connection
    assert raw is not None
    result = [r[0] for r in raw.execute("PRAGMA integrity_check").fetchall()]
    report.checks.append("SQLite integrity_check")
    if result != ["ok"]:
        report.problems.extend(f"integrity: {line}" for line in result[:10])
    app_id = raw.execute("PRAGMA application_id").fetchone()[0]
    report.checks.append("GeoPackage application_id")
    if app_id != geopackage.GPKG_APPLICATION_ID:
        report.problems.append(f"application_id is {app_id:#x}, not GPKG")
    registered = {
        r[0]: (r[1], r[2])
        for r in raw.execute("SELECT table_name, column_name, srs_id FROM gpkg_geometry_columns")
    }
    for table, column, _ in SPATIAL_COLUMNS:
        report.checks.append(f"R-tree of {table}.{column}")
        if registered.get(table) != (column, WORKING_EPSG):
            report.problems.append(
                f"{table}.{column} is not registered in gpkg_geometry_columns with EPSG:{WORKING_EPSG}"
            )
            continue
        rows = raw.execute(
            f'SELECT id, "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL'
        ).fetchall()
        ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        geoms = geopackage.decode([r[1] for r in rows]) if rows else np.asarray([], dtype=object)
        expected = {r[0]: r[1:] for r in geopackage.rtree_rows(ids, geoms)}
        actual = {
            r[0]: tuple(r[1:])
            for r in raw.execute(f'SELECT id, minx, maxx, miny, maxy FROM "rtree_{table}_{column}"')
        }
        missing = expected.keys() - actual.keys()
        extra = actual.keys() - expected.keys()
        # The R-tree stores 32-bit floats rounded outwards: compare with a tolerance.
        wrong = [
            i
            for i in expected.keys() & actual.keys()
            if not np.allclose(expected[i], actual[i], rtol=1e-6, atol=1.0)
        ]
        if missing or extra or wrong:
            report.problems.append(
                f"R-tree of {table}.{column} disagrees with the table: {len(missing)} rows missing, "
                f"{len(extra)} stale, {len(wrong)} with a wrong envelope (fix: estates check --repair)"
            )
        # SQLite's own check of the tree's structure (nodes, parents, row ids, boxes).
        (structure,) = raw.execute(f"SELECT rtreecheck('rtree_{table}_{column}')").fetchone()
        if structure != "ok":
            report.problems.append(
                f"R-tree of {table}.{column} is damaged: {str(structure).splitlines()[0]} "
                "(fix: estates check --repair)"
            )


def _check_postgis(connection: Connection, report: CheckReport) -> None:
    for table, column, _ in SPATIAL_COLUMNS:
        report.checks.append(f"SRID and validity of {table}.{column}")
        bad_srid = connection.execute(
            text(
                f"SELECT count(*) FROM {table} WHERE {column} IS NOT NULL AND ST_SRID({column}) <> :srid"
            ),
            {"srid": WORKING_EPSG},
        ).scalar_one()
        if bad_srid:
            report.problems.append(
                f"{bad_srid} geometries in {table}.{column} are not in EPSG:{WORKING_EPSG}"
            )


def repair_rtrees(connection: Connection) -> int:
    """Rebuild every GeoPackage R-tree from its table; returns the rows indexed."""
    if not store.is_sqlite(connection):
        return 0
    raw = connection.connection.driver_connection
    assert raw is not None
    total = 0
    for table, column, _ in SPATIAL_COLUMNS:
        rows = raw.execute(
            f'SELECT id, "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL'
        ).fetchall()
        ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        geoms = geopackage.decode([r[1] for r in rows]) if rows else np.asarray([], dtype=object)
        bounds = shapely.bounds(geoms) if len(geoms) else np.empty((0, 4))
        keep = ~np.isnan(bounds[:, 0])
        rtree.rebuild(
            raw,
            f"rtree_{table}_{column}",
            ids[keep],
            bounds[keep, 0],
            bounds[keep, 2],
            bounds[keep, 1],
            bounds[keep, 3],
        )
        total += int(keep.sum())
    return total


# --- undo ------------------------------------------------------------------------------


def undo_batch(connection: Connection, batch_id: int) -> dict[str, Any]:
    """Restore the sites a load batch touched to their state before it.

    Refused when a later batch (not undone) changed any of the same sites: undo that one
    first, so no later change is silently thrown away.
    """
    batch = connection.execute(
        text("SELECT id, status, loader FROM load_batch WHERE id = :id"), {"id": batch_id}
    ).fetchone()
    if batch is None:
        raise NotFoundError(f"no load batch {batch_id}: `estates batches` lists them")
    if batch.status == "undone":
        raise ConfigurationError(f"load batch {batch_id} is already undone")
    changes = connection.execute(
        text(
            "SELECT id, site_id, action, before FROM site_change WHERE batch_id = :id ORDER BY id DESC"
        ),
        {"id": batch_id},
    ).fetchall()
    later = connection.execute(
        text(
            "SELECT DISTINCT c.batch_id FROM site_change c JOIN load_batch b ON b.id = c.batch_id "
            "WHERE c.batch_id > :id AND b.status <> 'undone' AND c.site_id IN "
            "(SELECT site_id FROM site_change WHERE batch_id = :id) ORDER BY c.batch_id"
        ),
        {"id": batch_id},
    ).fetchall()
    if later:
        ids = ", ".join(str(r[0]) for r in later)
        raise ConfigurationError(
            f"cannot undo load batch {batch_id}: later batch(es) {ids} changed the same sites; undo those first"
        )
    inserted = [int(c.site_id) for c in changes if c.action == "insert"]
    updated = [c for c in changes if c.action == "update"]
    measures_added = [int(c.site_id) for c in changes if c.action == "measure_insert"]
    measures_changed = [c for c in changes if c.action == "measure_update"]
    if measures_added:
        connection.execute(
            text("DELETE FROM site_measure WHERE site_id = :s AND batch_id = :b"),
            [{"s": s, "b": batch_id} for s in measures_added],
        )
    for change in measures_changed:
        _restore_measure(connection, int(change.site_id), _json(change.before))
    for start in range(0, len(inserted), 5000):
        chunk = inserted[start : start + 5000]
        params = {f"i{n}": v for n, v in enumerate(chunk)}
        marks = ", ".join(f":i{n}" for n in range(len(chunk)))
        for table in ("site_measure", "site_footprint"):
            connection.execute(text(f"DELETE FROM {table} WHERE site_id IN ({marks})"), params)
        connection.execute(text(f"DELETE FROM site WHERE id IN ({marks})"), params)
    for change in updated:
        _restore_site(connection, int(change.site_id), _json(change.before))
    connection.execute(
        text(
            "DELETE FROM site_measure WHERE batch_id = :id AND site_id NOT IN (SELECT id FROM site)"
        ),
        {"id": batch_id},
    )
    connection.execute(
        text("UPDATE load_batch SET status = 'undone' WHERE id = :id"), {"id": batch_id}
    )
    return {
        "sites_removed": len(inserted),
        "sites_restored": len(updated),
        "measures_removed": len(measures_added),
        "measures_restored": len(measures_changed),
        "restored_site_ids": [int(c.site_id) for c in updated],
    }


def _json(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else json.loads(value)


def _restore_measure(connection: Connection, site_id: int, before: dict[str, Any]) -> None:
    fields = [*store.MEASURE_FIELDS, "raw", "batch_id"]
    values = {f: before.get(f) for f in fields}
    values["raw"] = store.json_text(values["raw"])
    connection.execute(
        text(
            f"UPDATE site_measure SET {', '.join(f'{f} = :{f}' for f in fields)} "
            "WHERE site_id = :site_id AND period = :period"
        ),
        {**values, "site_id": site_id, "period": before["period"]},
    )


def _restore_site(connection: Connection, site_id: int, before: dict[str, Any]) -> None:
    fields = ["organisation_id", *store.SITE_FIELDS, "content_hash", "batch_id"]
    values = {f: before.get(f) for f in fields}
    wkt = before.get("geom_wkt")
    geom = shapely.from_wkt(wkt) if wkt else None
    assignments = ", ".join(f"{f} = :{f}" for f in fields)
    if store.is_sqlite(connection):
        values["geom"] = geopackage.encode([geom], WORKING_EPSG)[0]
        geom_sql = ":geom"
    else:
        values["geom"] = None if geom is None else shapely.to_wkb(geom, hex=True)
        geom_sql = "ST_SetSRID(ST_GeomFromWKB(decode(:geom, 'hex')), :srid)"
        values["srid"] = WORKING_EPSG
    connection.execute(
        text(f"UPDATE site SET {assignments}, geom = {geom_sql} WHERE id = :site_id"),
        {**values, "site_id": site_id},
    )
