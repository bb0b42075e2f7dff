"""Bulk reading and writing of the canonical frames, on a GeoPackage or on PostGIS.

Writes are set-based: classify rows by ``source_key`` and a content hash, then one
batched ``executemany`` (GeoPackage, with the R-tree filled directly from numpy) or one
``COPY`` into a staging table (PostGIS). Never row-by-row ORM. Every function takes an
open ``Connection`` inside the caller's transaction, so a failed load rolls back whole.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection

from estates import parallel
from estates.db import bulk, columnar, geopackage, rtree
from estates.db.engine import geopackage_reader
from estates.errors import CrsError
from estates.settings import WORKING_CRS, WORKING_EPSG

log = logging.getLogger(__name__)

#: Attribute columns of the canonical site frame, in order (plus ``geometry``).
SITE_FIELDS = (
    "source_key",
    "name",
    "address",
    "postcode",
    "uprn",
    "site_type",
    "tenure",
    "holding_type",
    "occupancy",
    "category",
    "gia_m2",
    "land_ha",
    "non_geographic",
    "located_by",
)
ORGANISATION_FIELDS = ("organisation_code", "organisation_name", "sector")
SITE_COLUMNS = ("site_id", *ORGANISATION_FIELDS, *SITE_FIELDS)
_FLOAT_FIELDS = {"gia_m2", "land_ha"}

MEASURE_FIELDS = (
    "empty_pct",
    "underused_pct",
    "unutilised_pct",
    "not_functionally_suitable_pct",
    "occupied_pct",
    "occupied_floor_area_m2",
    "backlog_high_gbp",
    "backlog_significant_gbp",
    "backlog_moderate_gbp",
    "backlog_low_gbp",
    "running_cost_gbp",
    "energy_cost_gbp",
    "land_not_delivering_ha",
)

PG_WRITE_LOCK = 0x45535441  # advisory lock key: one writer of the estate at a time


@dataclass
class WriteResult:
    """What a bulk write did, by ``source_key``."""

    inserted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    site_ids: dict[str, int] = field(default_factory=dict)


@dataclass
class StagedSites:
    """A frame's site rows as :func:`write_sites` inserts them when all are new, built
    where the frame was prepared (:func:`stage_sites`)."""

    image: bytes  # a bulk.stage_image: organisation_code, SITE_FIELDS, content_hash, geom
    order: np.ndarray  # the frame's rows in the order staged (Hilbert; see _insert_sites)


def stage_sites(
    frame: pd.DataFrame, easting: np.ndarray, northing: np.ndarray, hashes: np.ndarray
) -> StagedSites:
    """The sites of ``frame`` at points ``easting``, ``northing`` (EPSG:27700, NaN for
    none) typed, ordered and bound as :func:`write_sites` would insert them (``hashes``:
    their :func:`site_hashes`), so the writer binds none of them."""
    frame = _site_columns(frame)
    order = rtree.hilbert_order_xy(easting, northing)
    frame = frame.iloc[order]
    columns = ["organisation_code", *SITE_FIELDS]
    values = [
        *(_column_values(frame[c]) for c in columns),
        np.asarray(hashes, dtype=object)[order].tolist(),
        geopackage.encode_points(easting[order], northing[order], WORKING_EPSG),
    ]
    return StagedSites(bulk.stage_image([*columns, "content_hash", "geom"], values), order)


def is_sqlite(connection: Connection) -> bool:
    return connection.dialect.name == "sqlite"


def take_write_lock(connection: Connection) -> None:
    """Serialise writers: SQLite already holds it (BEGIN IMMEDIATE); PostGIS takes an advisory lock."""
    if not is_sqlite(connection):
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_WRITE_LOCK})


# --- small value helpers ---------------------------------------------------------------


def _clean(value: Any) -> Any:
    """pandas/numpy scalars to plain Python, NaN/NA to None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    return value


def _column_values(series: pd.Series) -> list[Any]:
    """One column as plain Python values, missing as None (vectorised, no per-cell calls)."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return [bool(v) for v in series.to_numpy()]
    if pd.api.types.is_float_dtype(series.dtype) or pd.api.types.is_integer_dtype(series.dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        out: list[Any] = values.tolist()
        if pd.api.types.is_integer_dtype(series.dtype):
            out = [None if math.isnan(v) else int(v) for v in out]
        else:
            for i in np.flatnonzero(np.isnan(values)):
                out[i] = None
        return out
    objects = series.astype(object)
    return objects.where(series.notna(), None).tolist()


def _records(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    return list(zip(*(_column_values(frame[c]) for c in columns), strict=True))


def _geometry_hex_ewkb(geoms: np.ndarray) -> list[str | None]:
    with_srid = shapely.set_srid(geoms, WORKING_EPSG)
    out = shapely.to_wkb(with_srid, hex=True, include_srid=True)
    return [None if g is None else str(g) for g in out]


def require_working_crs(frame: gpd.GeoDataFrame, what: str) -> None:
    if frame.crs is None:
        raise CrsError(
            f"{what} has no CRS; set it (e.g. frame.set_crs('EPSG:4326')) and reproject to {WORKING_CRS}"
        )
    if frame.crs.to_epsg() != WORKING_EPSG:
        raise CrsError(
            f"{what} is in {frame.crs.to_string()}, expected {WORKING_CRS}: call .to_crs('{WORKING_CRS}') first"
        )


def content_hash(frame: pd.DataFrame, columns: Sequence[str], geometry: Any = None) -> pd.Series:
    """A per-row hash of the given columns (and geometry to the millimetre).

    Columns are hashed as they are typed (text as text, numbers as numbers, any missing
    value alike), in C: a national register in about a second. The hash only says which
    rows *may* have changed; :func:`write_sites` compares the values of those rows before
    it calls one updated, so a stored hash from another version of this function costs a
    comparison, never a false update.
    """
    parts: dict[str, Any] = {}
    for column in columns:
        series = frame[column]
        if series.dtype.kind in "biuf":
            parts[column] = series.to_numpy()
        else:
            cells = series.astype(object).where(series.notna(), None).to_numpy()
            if pd.api.types.infer_dtype(cells, skipna=True) not in ("string", "empty"):
                cells = np.asarray(
                    [v if v is None or type(v) is str else str(v) for v in cells], dtype=object
                )
            parts[column] = cells
    if geometry is not None:
        geoms = np.asarray(geometry, dtype=object)
        missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        if (shapely.get_type_id(geoms[~missing]) == 0).all():  # points: millimetres, in numpy
            xy = np.full((len(geoms), 2), -1, dtype=np.int64)
            xy[~missing] = np.round(shapely.get_coordinates(geoms[~missing]) * 1000.0)
            parts["__x"], parts["__y"], parts["__missing"] = xy[:, 0], xy[:, 1], missing
        else:
            rounded = shapely.set_precision(geoms, 0.001)
            parts["__geom"] = np.asarray(shapely.to_wkb(rounded), dtype=object)
    table = pd.DataFrame({k: pd.Series(v, dtype=v.dtype) for k, v in parts.items()})
    hashed = pd.util.hash_pandas_object(table, index=False, categorize=False)
    # 16 hex digits each, big-endian, as format(h, "016x") writes them, in one C pass.
    digits = hashed.to_numpy().astype(">u8").tobytes().hex().encode("ascii")
    hexes = np.frombuffer(digits, dtype="S16").astype("U16").astype(object)
    return pd.Series(hexes, index=frame.index, dtype=object)


# --- organisations ----------------------------------------------------------------------


def upsert_organisations(connection: Connection, frame: pd.DataFrame) -> dict[str, int]:
    """Create organisations named in ``frame`` (code, name, sector); return code -> id."""
    wanted = frame.loc[:, list(ORGANISATION_FIELDS)].drop_duplicates("organisation_code")
    existing = {
        code: (oid, name, sector)
        for oid, code, name, sector in connection.execute(
            text("SELECT id, code, name, sector FROM organisation")
        )
    }
    new_rows = []
    changed_rows = []
    for code, name, sector in wanted.itertuples(index=False, name=None):
        if code not in existing:
            new_rows.append({"code": code, "name": name, "sector": sector})
        elif (existing[code][1], existing[code][2]) != (name, sector):
            changed_rows.append({"id": existing[code][0], "name": name, "sector": sector})
    if new_rows:
        connection.execute(
            text("INSERT INTO organisation (code, name, sector) VALUES (:code, :name, :sector)"),
            new_rows,
        )
    if changed_rows:
        connection.execute(
            text("UPDATE organisation SET name = :name, sector = :sector WHERE id = :id"),
            changed_rows,
        )
    return {
        code: oid for oid, code in connection.execute(text("SELECT id, code FROM organisation"))
    }


# --- sites ------------------------------------------------------------------------------


def site_hashes(sites: gpd.GeoDataFrame) -> np.ndarray:
    """:func:`content_hash` of each site: its organisation's code, fields and point.

    The organisation by its code, not its id, so a frame can be hashed before its
    organisations are in the database (by a read-ahead worker).
    """
    return _site_hashes(_site_columns(sites), np.asarray(sites.geometry.values, dtype=object))


def _site_hashes(frame: pd.DataFrame, geoms: np.ndarray) -> np.ndarray:
    return content_hash(frame, ["organisation_code", *SITE_FIELDS], geoms).to_numpy(dtype=object)


def _site_columns(sites: pd.DataFrame) -> pd.DataFrame:
    """The frame's columns without the geometry, every site field present and typed."""
    if isinstance(sites, gpd.GeoDataFrame):
        frame = pd.DataFrame(sites.drop(columns=sites.geometry.name))
    else:
        frame = sites.copy()
    for column in SITE_FIELDS:
        if column not in frame:
            frame[column] = None
    frame["non_geographic"] = frame["non_geographic"].fillna(False).astype(bool)
    frame["located_by"] = frame["located_by"].fillna("none")
    for column in _FLOAT_FIELDS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def write_sites(
    connection: Connection,
    sites: gpd.GeoDataFrame,
    batch_id: int | None,
    *,
    hashes: np.ndarray | None = None,
    staged: StagedSites | None = None,
) -> WriteResult:
    """Insert new sites, update changed ones, leave identical ones alone; record changes.

    ``sites`` has the canonical columns (:data:`SITE_FIELDS`, the organisation fields and a
    point ``geometry`` in EPSG:27700, missing for unlocated sites). ``source_key`` must be
    unique within the frame. ``hashes`` are :func:`site_hashes` of the frame, if already
    computed; ``staged``, its :func:`stage_sites` (with the same hashes), is copied in
    when every site is new (a first load) on a GeoPackage.
    """
    require_working_crs(sites, "the site frame")
    if sites["source_key"].duplicated().any():
        dupes = sites.loc[sites["source_key"].duplicated(), "source_key"].head(3).tolist()
        raise ValueError(f"source_key must be unique within one write; repeated: {dupes}")
    frame = _site_columns(sites)
    geoms = np.asarray(sites.geometry.values, dtype=object)

    org_ids = upsert_organisations(connection, frame)
    frame["organisation_id"] = frame["organisation_code"].map(org_ids).astype("int64")
    frame["content_hash"] = _site_hashes(frame, geoms) if hashes is None else hashes
    frame["batch_id"] = batch_id

    existing = _existing_sites(connection, frame["source_key"].tolist())
    position = pd.Index(existing["source_key"], dtype=object).get_indexer(frame["source_key"])
    is_new = position < 0
    ids = np.zeros(len(frame), dtype=np.int64)
    is_changed = np.zeros(len(frame), dtype=bool)
    if len(existing["id"]):
        found = np.flatnonzero(~is_new)
        ids[found] = np.asarray(existing["id"], dtype=np.int64)[position[found]]
        old_hash = np.asarray(existing["content_hash"], dtype=object)[position[found]]
        is_changed[found] = old_hash != frame["content_hash"].to_numpy()[found]
    keys = frame["source_key"].to_numpy(dtype=object)
    result = WriteResult(
        inserted=keys[is_new].tolist(),
        updated=keys[is_changed].tolist(),
        unchanged=keys[~is_new & ~is_changed].tolist(),
    )
    columns = ["organisation_id", *SITE_FIELDS, "content_hash", "batch_id"]

    if is_changed.any():
        before = read_site_rows(connection, ids[is_changed])
        differs = _differs(before, frame.loc[is_changed], geoms[is_changed], ids[is_changed])
        same = np.flatnonzero(is_changed)[~differs]
        if len(same):  # equal values under an old hash: refresh the hash, nothing changed
            _refresh_hashes(connection, ids[same], frame["content_hash"].to_numpy()[same])
            is_changed[same] = False
            result.updated = keys[is_changed].tolist()
            result.unchanged = keys[~is_new & ~is_changed].tolist()
    if is_changed.any():
        changed_ids = ids[is_changed]
        before = before.set_index("id").loc[changed_ids].reset_index()
        _update_sites(connection, frame.loc[is_changed], geoms[is_changed], changed_ids, columns)
        _record_changes(connection, batch_id, before, frame.loc[is_changed], changed_ids)
    if is_new.any():
        new_ids = _insert_sites(
            connection,
            frame.loc[is_new],
            geoms[is_new],
            columns,
            staged=staged if is_new.all() else None,
        )
        ids[is_new] = new_ids
        if batch_id is not None:
            bulk.insert_rows(
                connection,
                "site_change",
                ("batch_id", "site_id", "action"),
                ([batch_id] * len(new_ids), np.sort(new_ids).tolist(), ["insert"] * len(new_ids)),
            )
    result.site_ids = dict(zip(keys.tolist(), ids.tolist(), strict=True))
    return result


def _common_prefix(keys: list[str]) -> str:
    """The longest text every key starts with (that of the smallest and largest key)."""
    if not keys:
        return ""
    low, high = min(keys), max(keys)
    n = 0
    while n < min(len(low), len(high)) and low[n] == high[n]:
        n += 1
    return low[:n]


def _existing_sites(connection: Connection, keys: list[str]) -> dict[str, list[Any]]:
    """``id, source_key, content_hash`` of the stored sites that could match ``keys``.

    A file's keys share a prefix (``lgtc:trafford-council:``, ``eric:``): only the stored
    sites with that prefix are read, so loading one register into a national estate
    reads that council's rows, not all 500,000 (a range of the ``source_key`` index on
    the GeoPackage, whose text order is byte order; a prefix test on PostGIS, whose
    collation may not be).
    """
    prefix = _common_prefix(keys)
    sql = "SELECT id, source_key, content_hash FROM site"
    if not prefix:
        return fetch_columns(connection, sql)
    if is_sqlite(connection):
        where = " WHERE source_key >= :low AND source_key < :high"
        return fetch_columns(
            connection, sql + where, {"low": prefix, "high": prefix + "\U0010ffff"}
        )
    where = " WHERE substr(source_key, 1, :n) = :prefix"
    return fetch_columns(connection, sql + where, {"n": len(prefix), "prefix": prefix})


def _differs(
    before: pd.DataFrame, after: pd.DataFrame, geoms: np.ndarray, ids: np.ndarray
) -> np.ndarray:
    """Per row of ``after`` (sites ``ids``): does any stored value or the point differ?"""
    old = before.set_index("id").loc[ids]
    out = np.zeros(len(ids), dtype=bool)
    for column in ("organisation_id", *SITE_FIELDS):
        was = [_clean(v) for v in old[column].tolist()]
        now = [_clean(v) for v in after[column].tolist()]
        out |= np.fromiter((a != b for a, b in zip(was, now, strict=True)), dtype=bool)
    wkt = [v if isinstance(v, str) else None for v in old["geom_wkt"].tolist()]
    old_geoms = shapely.from_wkt(np.asarray(wkt, dtype=object))
    same_place = shapely.equals_exact(old_geoms, geoms, tolerance=0.001)
    both_missing = shapely.is_missing(old_geoms) & shapely.is_missing(geoms)
    return out | ~(same_place | both_missing)


def _refresh_hashes(connection: Connection, ids: np.ndarray, hashes: np.ndarray) -> None:
    connection.execute(
        text("UPDATE site SET content_hash = :h WHERE id = :i"),
        [{"h": h, "i": int(i)} for h, i in zip(hashes.tolist(), ids.tolist(), strict=True)],
    )


def fetch_arrays(
    connection: Connection, sql: str, params: dict[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """A query's result as one object array per column, straight from the driver's cursor.

    SQLAlchemy's row objects cost about a microsecond each to build and unpack: for the
    500,000 rows of a national estate, more than the query. numpy then builds one 2-D
    array of the rows in a C loop (a second quicker than transposing 500,000 tuples in
    Python). A value numpy would read as a sequence (a PostGIS array) is kept whole.
    ``sql`` is our own text with ``:name`` parameters, bound as usual.
    """
    result = connection.execute(text(sql), params or {})
    keys = list(result.keys())
    rows = result.cursor.fetchall() if result.cursor is not None else []
    table = np.empty((len(rows), len(keys)), dtype=object)
    try:
        if rows:
            table[:] = rows
    except ValueError:  # a value numpy reads as a sequence: place them one by one
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                table[i, j] = value
    return {k: _shared_strings(table[:, j]) for j, k in enumerate(keys)}


def _shared_strings(cells: np.ndarray) -> np.ndarray:
    """A copy of a column in which equal strings are one object, if its texts repeat.

    The driver makes a new string per cell, row by row, so 500,000 "Freehold"s lie far
    apart in memory: every later pass that hashes or compares them (flags, stored runs,
    map texts) runs 3-5x slower than on one shared object, and they take 30 MB.
    Mostly-distinct columns (keys, names) and non-text values are copied as they are.
    """
    first = next((v for v in cells.tolist() if v is not None), None)
    if type(first) is not str or columnar.mostly_distinct(cells):
        return cells.copy()
    shared: dict[str, str] = {}
    values = (shared.setdefault(v, v) if type(v) is str else v for v in cells.tolist())
    return np.fromiter(values, dtype=object, count=len(cells))


def fetch_columns(
    connection: Connection, sql: str, params: dict[str, Any] | None = None
) -> dict[str, list[Any]]:
    """:func:`fetch_arrays` as plain lists, for callers that want Python values."""
    return {k: v.tolist() for k, v in fetch_arrays(connection, sql, params).items()}


def _insert_sites(
    connection: Connection,
    frame: pd.DataFrame,
    geoms: np.ndarray,
    columns: list[str],
    *,
    staged: StagedSites | None = None,
) -> np.ndarray:
    """Insert new sites; returns their ids, aligned with ``frame``.

    Ids are given along a Hilbert curve (:func:`rtree.hilbert_order`), so sites near each
    other on the ground are near each other in the table and a box query reads few pages.
    The price is paid once, at load: ``source_key`` index inserts out of key order make
    a 147,000-site register 25% slower to write (with the 64 MB page cache; twice as slow
    with SQLite's default 2 MB).
    """
    raw = connection.connection.driver_connection
    if staged is not None and (len(staged.order) != len(frame) or not bulk.can_stage(raw)):
        log.debug("staged sites not used: %d staged for %d new", len(staged.order), len(frame))
        staged = None
    order = rtree.hilbert_order(geoms) if staged is None else staged.order
    ids_in_frame_order = np.empty(len(frame), dtype=np.int64)
    ids_in_frame_order[order] = _insert_in_order(
        connection, frame.iloc[order], geoms[order], columns, staged
    )
    return ids_in_frame_order


def _insert_in_order(
    connection: Connection,
    frame: pd.DataFrame,
    geoms: np.ndarray,
    columns: list[str],
    staged: StagedSites | None,
) -> np.ndarray:
    if is_sqlite(connection):
        # Never an id used before (an undone load's sites are gone from ``site`` but not
        # from the change log): a stored run names its sites by id.
        start = (
            connection.execute(
                text(
                    "SELECT max(coalesce((SELECT max(id) FROM site), 0), "
                    "coalesce((SELECT max(site_id) FROM site_change), 0))"
                )
            ).scalar_one()
            + 1
        )
        ids = np.arange(start, start + len(frame), dtype=np.int64)

        def insert(raw: sqlite3.Connection) -> None:
            if staged is not None:
                batch_ids = frame["batch_id"].unique().tolist()
                assert len(batch_ids) == 1, "one batch per write"
                _copy_staged(raw, staged, start, batch_ids[0], len(frame))
                return
            values = [
                ids.tolist(),
                *(_column_values(frame[c]) for c in columns),
                geopackage.encode(geoms, WORKING_EPSG),
            ]
            bulk.insert_columns(raw, "site", ["id", *columns, "geom"], values)

        _sqlite_write_with_rtree(connection, "site", insert, ids, geoms, new=True)
        return ids
    staging = _pg_stage(connection, frame, geoms, columns)
    inserted = connection.execute(
        text(
            f"INSERT INTO site ({', '.join(columns)}, geom) "
            f"SELECT {', '.join(columns)}, geom FROM {staging} ORDER BY ord RETURNING id, source_key"
        )
    ).fetchall()
    by_key = dict((k, i) for i, k in inserted)
    return np.asarray([by_key[k] for k in frame["source_key"]], dtype=np.int64)


def _update_sites(
    connection: Connection,
    frame: pd.DataFrame,
    geoms: np.ndarray,
    ids: np.ndarray,
    columns: list[str],
) -> None:
    assignments = ", ".join(f"{c} = ?" for c in columns)
    if is_sqlite(connection):
        blobs = geopackage.encode(geoms, WORKING_EPSG)
        rows = [
            (*values, blob, int(i))
            for values, blob, i in zip(_records(frame, columns), blobs, ids, strict=True)
        ]
        sql = f"UPDATE site SET {assignments}, geom = ? WHERE id = ?"
        _sqlite_write_with_rtree(
            connection, "site", lambda raw: raw.executemany(sql, rows), ids, geoms
        )
        return
    staging = _pg_stage(connection, frame, geoms, columns)
    sets = ", ".join(f"{c} = s.{c}" for c in columns)
    connection.execute(
        text(
            f"UPDATE site SET {sets}, geom = s.geom FROM {staging} s WHERE site.source_key = s.source_key"
        )
    )


def _copy_staged(
    raw: sqlite3.Connection, staged: StagedSites, start: int, batch_id: Any, count: int
) -> None:
    """Insert the staged rows with ids ``start``, ``start + 1``, ... in staged order."""
    names = [*SITE_FIELDS, "content_hash"]
    with bulk.staged(raw, staged.image):
        inserted = raw.execute(
            f"INSERT INTO site (id, organisation_id, {', '.join(names)}, batch_id, geom) "
            f"SELECT :start + s.ord, o.id, {', '.join(f's.{c}' for c in names)}, :batch, s.geom "
            f"FROM {bulk.STAGED_TABLE} s JOIN organisation o ON o.code = s.organisation_code "
            "ORDER BY s.ord",
            {"start": int(start), "batch": None if pd.isna(batch_id) else int(batch_id)},
        ).rowcount
    if inserted != count:  # a row whose organisation is missing: never silently dropped
        raise RuntimeError(f"staged site insert wrote {inserted} rows of {count}")


def _sqlite_write_with_rtree(
    connection: Connection,
    table: str,
    write: Callable[[sqlite3.Connection], object],
    ids: np.ndarray,
    geoms: np.ndarray,
    *,
    new: bool = False,
) -> None:
    """Run a bulk write with the R-tree triggers dropped, then index its rows directly.

    The spec triggers call Python functions per row (slow); inside this one transaction we
    drop them, write, put the rows' exact envelopes in the R-tree (:func:`rtree.put`:
    packed in one pass when there are many) and recreate the triggers.
    """
    raw = connection.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    column = "geom"
    for name in geopackage.rtree_trigger_names(table, column):
        raw.execute(f'DROP TRIGGER IF EXISTS "{name}"')
    write(raw)
    bounds = shapely.bounds(geoms)
    located = ~np.isnan(bounds[:, 0])
    rtree.put(
        raw, f"rtree_{table}_{column}", ids[located], bounds[located], remove=ids[~located], new=new
    )
    for ddl in geopackage.rtree_trigger_ddl(table, column):
        raw.execute(ddl)


def _pg_stage(
    connection: Connection, frame: pd.DataFrame, geoms: np.ndarray, columns: list[str]
) -> str:
    """COPY rows into a temporary table shaped like ``site`` (dropped at commit)."""
    staging = "site_staging"
    connection.execute(text(f"DROP TABLE IF EXISTS {staging}"))
    connection.execute(
        text(
            f"CREATE TEMP TABLE {staging} ON COMMIT DROP AS "
            f"SELECT {', '.join(columns)}, geom FROM site WITH NO DATA"
        )
    )
    connection.execute(text(f"ALTER TABLE {staging} ADD COLUMN ord integer"))
    raw = connection.connection.driver_connection
    hexes = _geometry_hex_ewkb(geoms)
    copy_sql = f"COPY {staging} ({', '.join(columns)}, geom, ord) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:  # type: ignore[union-attr]
        for n, (values, geom) in enumerate(zip(_records(frame, columns), hexes, strict=True)):
            copy.write_row((*values, geom, n))
    return staging


def _record_changes(
    connection: Connection,
    batch_id: int | None,
    before: pd.DataFrame,
    after: pd.DataFrame,
    ids: np.ndarray,
) -> None:
    if batch_id is None:
        return
    before = before.set_index("id")
    rows = []
    for site_id, (_, new) in zip(ids, after.iterrows(), strict=True):
        old = before.loc[int(site_id)]
        changed = [
            c
            for c in ("organisation_id", *SITE_FIELDS, "geom_wkt")
            if c in new.index and _clean(old.get(c)) != _clean(new.get(c))
        ]
        rows.append(
            {
                "b": batch_id,
                "s": int(site_id),
                "f": json.dumps(changed or ["geometry"]),
                "old": json.dumps({k: _clean(v) for k, v in old.items()}, default=str),
            }
        )
    connection.execute(
        text(
            "INSERT INTO site_change (batch_id, site_id, action, changed_fields, before) "
            "VALUES (:b, :s, 'update', :f, :old)"
        ),
        rows,
    )


def read_site_rows(connection: Connection, ids: Iterable[int]) -> pd.DataFrame:
    """The stored rows of some sites (geometry as WKT), for change records and undo."""
    id_list = [int(i) for i in ids]
    geom_sql = geom_select(connection)
    frames = []
    for start in range(0, len(id_list), 5000):
        chunk = id_list[start : start + 5000]
        params = {f"i{n}": v for n, v in enumerate(chunk)}
        placeholders = ", ".join(f":i{n}" for n in range(len(chunk)))
        result = connection.execute(
            text(
                f"SELECT id, organisation_id, {', '.join(SITE_FIELDS)}, content_hash, batch_id, "
                f"{geom_sql} AS geom FROM site WHERE id IN ({placeholders})"
            ),
            params,
        )
        frames.append(pd.DataFrame(result.fetchall(), columns=list(result.keys())))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["id", "geom"])
    geoms = decode_geometries(connection, frame["geom"].tolist())
    frame["geom_wkt"] = [None if g is None else g.wkt for g in geoms]
    return frame.drop(columns=["geom"])


def geom_param(connection: Connection, name: str = "geom") -> str:
    """The SQL that turns a bound geometry parameter (from :func:`encode_geometries`) into a geometry."""
    return f":{name}" if is_sqlite(connection) else f"ST_GeomFromWKB(:{name}, {WORKING_EPSG})"


def geom_select(connection: Connection, column: str = "geom") -> str:
    """The SQL that selects a geometry column as bytes :func:`decode_geometries` reads."""
    return column if is_sqlite(connection) else f"ST_AsBinary({column})"


def encode_geometries(connection: Connection, geoms: np.ndarray) -> list[Any]:
    """Shapely geometries as bound parameters: GeoPackage binary, or ISO WKB for PostGIS."""
    if is_sqlite(connection):
        return geopackage.encode(geoms, WORKING_EPSG)
    return [None if g is None else bytes(g) for g in shapely.to_wkb(geoms, flavor="iso")]


def decode_geometries(connection: Connection, values: Sequence[Any]) -> np.ndarray:
    """Selected geometry values (see :func:`geom_select`) back to shapely."""
    if is_sqlite(connection):
        return geopackage.decode(values)
    return shapely.from_wkb(
        np.asarray([None if v is None else bytes(v) for v in values], dtype=object)
    )


def read_sites(
    connection: Connection,
    *,
    footprint: str | None = None,
    sector: str | None = None,
    located: bool | None = None,
    include_non_geographic: bool = True,
    measures: bool = False,
    period: str | None = None,
) -> gpd.GeoDataFrame:
    """The canonical site frame (EPSG:27700), with one ``<kind>_code`` column per footprint kind.

    With ``measures`` (or a ``period``), the :data:`MEASURE_FIELDS` of that period are
    joined as columns (plus ``period``); without a period, each site's latest period.
    Sites with no measures keep NaN there.
    """
    with bulk.gc_paused():
        return _read_sites(
            connection,
            footprint=footprint,
            sector=sector,
            located=located,
            include_non_geographic=include_non_geographic,
            measures=measures,
            period=period,
        )


def _read_sites(
    connection: Connection,
    *,
    footprint: str | None,
    sector: str | None,
    located: bool | None,
    include_non_geographic: bool,
    measures: bool,
    period: str | None,
) -> gpd.GeoDataFrame:
    geom_sql = geom_select(connection, "s.geom")
    where = ["1 = 1"]
    params: dict[str, Any] = {}
    if footprint is not None:
        where.append("s.id IN (SELECT site_id FROM site_footprint WHERE code = :footprint)")
        params["footprint"] = footprint
    if sector is not None:
        where.append("o.sector = :sector")
        params["sector"] = sector
    if located is True:
        where.append("s.geom IS NOT NULL")
    elif located is False:
        where.append("s.geom IS NULL")
    if not include_non_geographic:
        where.append("s.non_geographic = :false")
        params["false"] = False
    site_cols = ", ".join(f"s.{c}" for c in SITE_FIELDS)
    # Each footprint kind's code as a column of the site query (at most one row per site
    # and kind: the key), so both halves of a split read fetch their own share.
    kinds = sorted(fetch_columns(connection, "SELECT DISTINCT kind FROM site_footprint")["kind"])
    footprint_cols = "".join(f", f{n}.code AS footprint_{n}" for n in range(len(kinds)))
    footprint_joins = "".join(
        f" LEFT JOIN site_footprint f{n} ON f{n}.site_id = s.id AND f{n}.kind = :kind_{n}"
        for n in range(len(kinds))
    )
    params.update({f"kind_{n}": kind for n, kind in enumerate(kinds)})
    sql = (
        f"SELECT s.id AS site_id, s.organisation_id, {site_cols}, s.batch_id{footprint_cols}, "
        f"{geom_sql} AS geom FROM site s JOIN organisation o ON o.id = s.organisation_id"
        f"{footprint_joins} "
        f"WHERE {' AND '.join(where)} AND s.id BETWEEN :first_id AND :last_id ORDER BY s.id"
    )
    columns = _fetch_site_rows(connection, sql, params)
    geoms = decode_geometries(connection, list(columns.pop("geom")))
    codes = {f"{kind}_code": columns.pop(f"footprint_{n}") for n, kind in enumerate(kinds)}
    # The organisation's fields by id from its own (small) table: three fewer strings per
    # site from the driver, and each organisation's one string object shared by its sites.
    organisations = fetch_arrays(
        connection, "SELECT id, code, name, sector FROM organisation ORDER BY id"
    )
    of_site = pd.Index(organisations.pop("id").astype(np.int64)).get_indexer(
        pd.Index(columns.pop("organisation_id").astype(np.int64))
    )
    fields = dict(zip(ORGANISATION_FIELDS, organisations.values(), strict=True))
    columns = {
        "site_id": columns.pop("site_id"),
        **{name: values[of_site] for name, values in fields.items()},
        **columns,
    }
    frame = pd.DataFrame(columns).infer_objects()
    frame["site_id"] = frame["site_id"].astype("int64")
    frame["non_geographic"] = frame["non_geographic"].astype(bool)
    for column in _FLOAT_FIELDS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for name, values in codes.items():
        frame[name] = pd.Series(values, index=frame.index, dtype=object)
    if measures or period is not None:
        frame = frame.merge(read_measures(connection, period), on="site_id", how="left")
    # copy=False: the frame is ours alone, and GeoDataFrame would otherwise copy every
    # column (about 1.5 s for a national estate).
    return gpd.GeoDataFrame(
        frame, geometry=gpd.GeoSeries(geoms, crs=WORKING_CRS, index=frame.index), copy=False
    )


#: A GeoPackage site table spanning at least this many ids is read in two halves, the
#: second in a forked process (:mod:`estates.parallel`) reading the same committed state.
SPLIT_READ_IDS = 100_000


def _fetch_site_rows(connection: Connection, sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """:func:`fetch_arrays` of the site query, whose ``:first_id``/``:last_id`` bound a range.

    Building Python values from the driver's rows is most of the time of reading a
    national estate and uses one core. A forked child reads the upper half of the ids
    through its own read-only connection while this one reads the lower half; this
    connection's open read transaction keeps any load from committing in between (SQLite
    commits wait for readers), so the halves are one state. If the child fails, its half
    is read here.
    """
    first, last = connection.execute(text("SELECT min(id), max(id) FROM site")).one()
    database = connection.engine.url.database if is_sqlite(connection) else None
    whole = {**params, "first_id": first or 0, "last_id": last or 0}
    if (
        first is None
        or last - first < SPLIT_READ_IDS
        or not parallel.can_fork_now()
        or database in (None, "", ":memory:")
    ):
        return fetch_arrays(connection, sql, whole)
    middle = (first + last) // 2
    upper = {**params, "first_id": middle + 1, "last_id": last}
    with parallel.forked(_read_only_fetch, database, sql, upper) as upper_half:
        lower = fetch_arrays(connection, sql, {**params, "first_id": first, "last_id": middle})
        try:
            rest = upper_half()
        except Exception as error:  # e.g. killed: read it here, as one process would
            log.warning("reading the upper half of the sites here instead: %s", error)
            rest = fetch_arrays(connection, sql, upper)
    return {k: np.concatenate([v, rest[k]]) for k, v in lower.items()}


def _read_only_fetch(database: str, sql: str, params: dict[str, Any]) -> dict[str, Any]:
    engine = geopackage_reader(database)
    try:
        with engine.connect() as connection:
            return fetch_arrays(connection, sql, params)
    finally:
        engine.dispose()


def read_site_points(connection: Connection) -> gpd.GeoDataFrame:
    """Every site's id and point (None where unlocated), by id: all a stored run needs."""
    columns = fetch_arrays(
        connection, f"SELECT id AS site_id, {geom_select(connection)} AS geom FROM site ORDER BY id"
    )
    site_ids = columns["site_id"].astype(np.int64)
    geoms = decode_geometries(connection, list(columns["geom"]))
    return gpd.GeoDataFrame({"site_id": site_ids}, geometry=gpd.GeoSeries(geoms, crs=WORKING_CRS))


def json_text(value: Any) -> str | None:
    """JSON for a ``JSONText`` column written with plain ``text()`` SQL (both backends)."""
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, default=str)


def read_measures(connection: Connection, period: str | None = None) -> pd.DataFrame:
    """Per-site measures of one period (or each site's latest), one row per site."""
    columns = ", ".join(MEASURE_FIELDS)
    if period is None:
        sql = (
            f"SELECT site_id, period, {columns} FROM site_measure m WHERE period = "
            "(SELECT max(period) FROM site_measure m2 WHERE m2.site_id = m.site_id)"
        )
        found = fetch_arrays(connection, sql)
    else:
        sql = f"SELECT site_id, period, {columns} FROM site_measure WHERE period = :period"
        found = fetch_arrays(connection, sql, {"period": period})
    frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in found.items()})
    frame["site_id"] = frame["site_id"].astype("int64")
    for column in MEASURE_FIELDS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame
