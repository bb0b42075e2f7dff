"""Boundaries (footprint polygons) and the site-to-footprint assignments, on both backends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection

from estates.db import bulk
from estates.db.store import (
    decode_geometries,
    encode_geometries,
    geom_param,
    geom_select,
    is_sqlite,
)
from estates.settings import WORKING_CRS


@dataclass
class BoundaryWrite:
    """Boundary codes by outcome."""

    inserted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def write_boundaries(
    connection: Connection, frame: gpd.GeoDataFrame, kind: str, batch_id: int | None
) -> BoundaryWrite:
    """Insert or replace boundaries of one kind by code; identical ones are left alone.

    ``frame`` has ``code``, ``name`` and MultiPolygon geometry in EPSG:27700.
    """
    existing = read_boundaries(connection, kind=kind)
    old = {
        code: (name, geom)
        for code, name, geom in zip(
            existing["code"], existing["name"], existing.geometry.values, strict=True
        )
    }
    result = BoundaryWrite()
    new_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    geoms = np.asarray(frame.geometry.values, dtype=object)
    encoded = encode_geometries(connection, geoms)
    for code, name, geom, blob in zip(frame["code"], frame["name"], geoms, encoded, strict=True):
        row = {"kind": kind, "code": code, "name": name, "batch_id": batch_id, "geom": blob}
        if code not in old:
            result.inserted.append(code)
            new_rows.append(row)
            continue
        old_name, old_geom = old[code]
        same_geom = old_geom is not None and shapely.equals_exact(old_geom, geom, tolerance=0.001)
        if old_name == name and same_geom:
            result.unchanged.append(code)
        else:
            result.updated.append(code)
            changed_rows.append(row)
    param = geom_param(connection)
    if new_rows:
        connection.execute(
            text(
                "INSERT INTO boundary (kind, code, name, batch_id, geom) "
                f"VALUES (:kind, :code, :name, :batch_id, {param})"
            ),
            new_rows,
        )
    if changed_rows:
        connection.execute(
            text(
                f"UPDATE boundary SET name = :name, batch_id = :batch_id, geom = {param} "
                "WHERE kind = :kind AND code = :code"
            ),
            changed_rows,
        )
    return result


def read_boundaries(
    connection: Connection, *, kind: str | None = None, codes: Sequence[str] | None = None
) -> gpd.GeoDataFrame:
    """Boundaries as a GeoDataFrame (``code``, ``name``, ``kind``, ``batch_id``; EPSG:27700)."""
    where = ["1 = 1"]
    params: dict[str, Any] = {}
    if kind is not None:
        where.append("kind = :kind")
        params["kind"] = kind
    if codes is not None:
        codes = list(codes)
        if not codes:
            where.append("1 = 0")
        marks = ", ".join(f":c{n}" for n in range(len(codes)))
        if codes:
            where.append(f"code IN ({marks})")
        params.update({f"c{n}": c for n, c in enumerate(codes)})
    result = connection.execute(
        text(
            f"SELECT code, name, kind, batch_id, {geom_select(connection)} AS geom FROM boundary "
            f"WHERE {' AND '.join(where)} ORDER BY kind, code"
        ),
        params,
    )
    rows = result.fetchall()
    frame = pd.DataFrame(rows, columns=["code", "name", "kind", "batch_id", "geom"])
    geoms = (
        decode_geometries(connection, frame.pop("geom").tolist())
        if len(frame)
        else np.array([], dtype=object)
    )
    return gpd.GeoDataFrame(
        frame, geometry=gpd.GeoSeries(geoms, crs=WORKING_CRS, index=frame.index)
    )


def boundary_kinds(connection: Connection) -> list[str]:
    return [
        r[0] for r in connection.execute(text("SELECT DISTINCT kind FROM boundary ORDER BY kind"))
    ]


def read_site_points(
    connection: Connection, site_ids: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, point geometries) of located sites, all of them or the given ones."""
    geom = geom_select(connection)
    if site_ids is not None and not is_sqlite(connection):
        rows = list(
            connection.execute(
                text(
                    f"SELECT id, {geom} AS geom FROM site "
                    "WHERE geom IS NOT NULL AND id = ANY(:ids) ORDER BY id"
                ),
                {"ids": [int(i) for i in site_ids]},
            ).fetchall()
        )
    else:
        rows = list(
            connection.execute(
                text(f"SELECT id, {geom} AS geom FROM site WHERE geom IS NOT NULL ORDER BY id")
            ).fetchall()
        )
    if not rows:
        return np.array([], dtype=np.int64), np.array([], dtype=object)
    ids_out = np.asarray([r[0] for r in rows], dtype=np.int64)
    blobs = [r[1] for r in rows]
    if site_ids is not None and is_sqlite(connection):
        keep = np.isin(ids_out, np.asarray(list(site_ids), dtype=np.int64))
        ids_out = ids_out[keep]
        blobs = [b for b, k in zip(blobs, keep, strict=True) if k]
    return ids_out, decode_geometries(connection, blobs)


def _delete_footprints(connection: Connection, ids: list[int], kind: str | None) -> None:
    """Delete footprints of many sites: one statement per id on SQLite (executemany),
    one array parameter on PostGIS; never thousands of bound names."""
    if not ids:
        return
    if is_sqlite(connection):
        raw = connection.connection.driver_connection
        assert raw is not None
        if kind is None:
            raw.executemany("DELETE FROM site_footprint WHERE site_id = ?", [(i,) for i in ids])
        else:
            raw.executemany(
                "DELETE FROM site_footprint WHERE kind = ? AND site_id = ?",
                [(kind, i) for i in ids],
            )
        return
    if kind is None:
        connection.execute(
            text("DELETE FROM site_footprint WHERE site_id = ANY(:ids)"), {"ids": ids}
        )
    else:
        connection.execute(
            text("DELETE FROM site_footprint WHERE kind = :kind AND site_id = ANY(:ids)"),
            {"kind": kind, "ids": ids},
        )


def replace_footprints(
    connection: Connection,
    kind: str,
    assignments: pd.DataFrame,
    site_ids: Sequence[int] | None,
) -> None:
    """Replace the ``kind`` footprints of the given sites (all sites when None) in bulk."""
    raw = connection.connection.driver_connection
    assert raw is not None
    if site_ids is None:
        connection.execute(text("DELETE FROM site_footprint WHERE kind = :kind"), {"kind": kind})
    else:
        _delete_footprints(connection, [int(i) for i in site_ids], kind)
    if assignments.empty:
        return
    assignments = assignments.sort_values("site_id", kind="stable")
    bulk.insert_rows(
        connection,
        "site_footprint",
        ("site_id", "kind", "code"),
        (
            assignments["site_id"].astype("int64").tolist(),
            [kind] * len(assignments),
            assignments["code"].tolist(),
        ),
    )


def clear_footprints(connection: Connection, site_ids: Sequence[int]) -> None:
    """Drop every footprint of sites that lost their location."""
    _delete_footprints(connection, [int(i) for i in site_ids], None)
