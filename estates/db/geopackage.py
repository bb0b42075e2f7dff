"""GeoPackage on the standard library ``sqlite3``: binary geometry, catalog and R-tree.

A GeoPackage is an SQLite file with a few catalog tables (``gpkg_contents``,
``gpkg_geometry_columns``, ...), geometry stored as "GeoPackage binary" (a small
``GP`` header, an optional envelope, then ISO WKB) and one R-tree virtual table per
geometry column kept current by triggers. The triggers call ``ST_MinX``...``ST_IsEmpty``,
which plain ``sqlite3`` lacks, so :func:`register_sql_functions` adds them to every
connection. Everything here works on a DB-API connection or SQLAlchemy ``Connection``.
"""

from __future__ import annotations

import math
import sqlite3
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

GPKG_APPLICATION_ID = 0x47504B47  # "GPKG"
GPKG_USER_VERSION = 10300  # GeoPackage 1.3
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}
_POINT_HEADER = struct.Struct("<2sBBi")  # magic, version, flags, srs_id


#: A little-endian 2-D point with no envelope, as :func:`encode` writes it: 29 bytes.
_POINT_BLOB = np.dtype(
    [
        ("magic", "S2"),
        ("version", "u1"),
        ("flags", "u1"),
        ("srs_id", "<i4"),
        ("order", "u1"),
        ("type", "<u4"),
        ("x", "<f8"),
        ("y", "<f8"),
    ]
)


def _header(srs_id: int, flags: int) -> bytes:
    return _POINT_HEADER.pack(b"GP", 0, flags, srs_id)


def encode(
    geometries: Sequence[BaseGeometry | None] | np.ndarray, srs_id: int
) -> list[bytes | None]:
    """Shapely geometries to GeoPackage binary blobs (``None`` stays ``None``).

    Points carry no envelope (the spec allows it; readers take it from the point);
    other types carry their XY envelope so R-tree triggers and readers need not parse WKB.
    """
    geoms = np.asarray(geometries, dtype=object)
    out: list[bytes | None] = [None] * len(geoms)
    present = ~shapely.is_missing(geoms)
    if not present.any():
        return out
    idx = np.flatnonzero(present)
    valid = geoms[idx]
    empty = shapely.is_empty(valid)
    is_point = shapely.get_type_id(valid) == 0
    point_header = _header(srs_id, 0b00000001)
    if is_point.all() and not empty.any():  # a site layer: all blobs built at once in numpy
        xy = shapely.get_coordinates(valid)
        _point_blobs(out, idx, xy[:, 0], xy[:, 1], srs_id)
        return out
    wkb = shapely.to_wkb(valid, byte_order=1, flavor="iso", include_srid=False)
    bounds = shapely.bounds(valid)
    empty_header = _header(srs_id, 0b00010001)
    envelope_header = _header(srs_id, 0b00000011)
    for k, i in enumerate(idx):
        if empty[k]:
            out[i] = empty_header + wkb[k]
        elif is_point[k]:
            out[i] = point_header + wkb[k]
        else:
            minx, miny, maxx, maxy = bounds[k]
            out[i] = envelope_header + struct.pack("<4d", minx, maxx, miny, maxy) + wkb[k]
    return out


def encode_points(x: np.ndarray, y: np.ndarray, srs_id: int) -> list[bytes | None]:
    """:func:`encode` of points given as coordinates (NaN: no point, ``None``)."""
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    out: list[bytes | None] = [None] * len(x)
    idx = np.flatnonzero(~(np.isnan(x) | np.isnan(y)))
    _point_blobs(out, idx, x[idx], y[idx], srs_id)
    return out


def _point_blobs(
    out: list[bytes | None], idx: np.ndarray, x: np.ndarray, y: np.ndarray, srs_id: int
) -> None:
    records = np.empty(len(idx), dtype=_POINT_BLOB)
    records["magic"], records["version"], records["flags"] = b"GP", 0, 0b00000001
    records["srs_id"], records["order"], records["type"] = srs_id, 1, 1
    records["x"], records["y"] = x, y
    data = records.tobytes()
    size = _POINT_BLOB.itemsize
    for k, position in enumerate(idx.tolist()):
        out[position] = data[k * size : (k + 1) * size]


def wkb_offset(blob: bytes) -> int:
    """Byte offset of the WKB inside a GeoPackage binary blob."""
    if blob[:2] != b"GP":
        raise ValueError("not GeoPackage binary: the blob does not start with 'GP'")
    indicator = (blob[3] >> 1) & 0b111
    return 8 + _ENVELOPE_BYTES.get(indicator, 0)


def _decode_points(blobs: list[Any]) -> np.ndarray | None:
    """The fast path of :func:`decode`: every present blob a plain little-endian point.

    Reads all of them as one numpy record array (a national site table in a fraction of
    a second); returns None when any blob is something else, for the general path.
    """
    present = [b for b in blobs if b is not None]
    if not present or any(len(b) != _POINT_BLOB.itemsize for b in present):
        return None
    records = np.frombuffer(b"".join(present), dtype=_POINT_BLOB)
    if not (
        (records["magic"] == b"GP").all()
        and (records["flags"] == 0b00000001).all()
        and (records["order"] == 1).all()
        and (records["type"] == 1).all()
    ):
        return None
    out = np.full(len(blobs), None, dtype=object)
    mask = np.fromiter((b is not None for b in blobs), dtype=bool, count=len(blobs))
    out[mask] = shapely.points(records["x"], records["y"])
    return out


def decode(blobs: Iterable[bytes | memoryview | None]) -> np.ndarray:
    """GeoPackage binary blobs to an array of shapely geometries (``None`` stays missing)."""
    blobs = [None if b is None else bytes(b) for b in blobs]
    points = _decode_points(blobs)
    if points is not None:
        return points
    wkb: list[bytes | None] = []
    for blob in blobs:
        if blob is None:
            wkb.append(None)
            continue
        raw = bytes(blob)
        wkb.append(raw[wkb_offset(raw) :])
    return shapely.from_wkb(np.asarray(wkb, dtype=object))


# --- SQL functions the spec's R-tree triggers call -----------------------------------


def _is_empty(blob: bytes | None) -> int | None:
    if blob is None:
        return None
    return 1 if blob[3] & 0b00010000 else 0


def _extent(blob: bytes | None) -> tuple[float, float, float, float] | None:
    """(minx, maxx, miny, maxy) from the envelope, or from the WKB of a bare point."""
    if blob is None or blob[3] & 0b00010000:
        return None
    indicator = (blob[3] >> 1) & 0b111
    little = blob[3] & 1
    if indicator:
        fmt = "<4d" if little else ">4d"
        minx, maxx, miny, maxy = struct.unpack_from(fmt, blob, 8)
        return minx, maxx, miny, maxy
    offset = 8
    order = "<" if blob[offset] == 1 else ">"
    (geom_type,) = struct.unpack_from(order + "I", blob, offset + 1)
    if geom_type % 1000 == 1:
        x, y = struct.unpack_from(order + "2d", blob, offset + 5)
        if math.isnan(x):
            return None
        return x, x, y, y
    geom = shapely.from_wkb(blob[offset:])
    minx, miny, maxx, maxy = geom.bounds
    return minx, maxx, miny, maxy


def _component(index: int):
    def fn(blob: bytes | None) -> float | None:
        ext = _extent(blob)
        return None if ext is None else ext[index]

    return fn


def register_sql_functions(dbapi_connection: sqlite3.Connection) -> None:
    """Add ST_MinX/ST_MaxX/ST_MinY/ST_MaxY/ST_IsEmpty so the R-tree triggers run."""
    for position, name in enumerate(("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY")):
        dbapi_connection.create_function(name, 1, _component(position), deterministic=True)
    dbapi_connection.create_function("ST_IsEmpty", 1, _is_empty, deterministic=True)


# --- Catalog tables ------------------------------------------------------------------

CORE_DDL = (
    """CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (
        srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
        organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT)""",
    """CREATE TABLE IF NOT EXISTS gpkg_contents (
        table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
        description TEXT DEFAULT '',
        last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
        CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id))""",
    """CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (
        table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
        srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
        CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
        CONSTRAINT uk_gc_table_name UNIQUE (table_name),
        CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
        CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id))""",
    """CREATE TABLE IF NOT EXISTS gpkg_extensions (
        table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL,
        definition TEXT NOT NULL, scope TEXT NOT NULL,
        CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name))""",
    """CREATE TABLE IF NOT EXISTS gpkg_tile_matrix_set (
        table_name TEXT NOT NULL PRIMARY KEY, srs_id INTEGER NOT NULL,
        min_x DOUBLE NOT NULL, min_y DOUBLE NOT NULL, max_x DOUBLE NOT NULL, max_y DOUBLE NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS gpkg_tile_matrix (
        table_name TEXT NOT NULL, zoom_level INTEGER NOT NULL, matrix_width INTEGER NOT NULL,
        matrix_height INTEGER NOT NULL, tile_width INTEGER NOT NULL, tile_height INTEGER NOT NULL,
        pixel_x_size DOUBLE NOT NULL, pixel_y_size DOUBLE NOT NULL,
        CONSTRAINT pk_ttm PRIMARY KEY (table_name, zoom_level))""",
)

#: Tables and prefixes that belong to the GeoPackage, never to our migrations.
SYSTEM_TABLE_PREFIXES = ("gpkg_", "rtree_", "sqlite_", "gpkgext_")


def _srs_rows() -> list[tuple[Any, ...]]:
    from pyproj import CRS
    from pyproj.enums import WktVersion

    rows: list[tuple[Any, ...]] = [
        (
            "Undefined cartesian SRS",
            -1,
            "NONE",
            -1,
            "undefined",
            "undefined cartesian coordinate reference system",
        ),
        (
            "Undefined geographic SRS",
            0,
            "NONE",
            0,
            "undefined",
            "undefined geographic coordinate reference system",
        ),
    ]
    for epsg, name in ((4326, "WGS 84 geodetic"), (27700, "OSGB36 / British National Grid")):
        wkt = CRS.from_epsg(epsg).to_wkt(WktVersion.WKT1_GDAL)
        rows.append((name, epsg, "EPSG", epsg, wkt, name))
    return rows


def ensure_core(connection: Any) -> None:
    """Create the GeoPackage catalog in an empty or existing SQLite file (idempotent)."""
    cursor = connection.cursor() if hasattr(connection, "cursor") else connection
    cursor.execute(f"PRAGMA application_id = {GPKG_APPLICATION_ID}")
    cursor.execute(f"PRAGMA user_version = {GPKG_USER_VERSION}")
    for ddl in CORE_DDL:
        cursor.execute(ddl)
    cursor.executemany(
        "INSERT OR IGNORE INTO gpkg_spatial_ref_sys "
        "(srs_name, srs_id, organization, organization_coordsys_id, definition, description) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        _srs_rows(),
    )


def _quote(identifier: str) -> str:
    """Quote an identifier we own (table/column names from our models, never from files)."""
    if not identifier.replace("_", "").isalnum():
        raise ValueError(f"unexpected SQL identifier {identifier!r}")
    return f'"{identifier}"'


def register_attributes(execute: Any, table: str) -> None:
    """List a non-spatial table in ``gpkg_contents`` so GDAL shows it as a layer."""
    execute(
        "INSERT OR REPLACE INTO gpkg_contents (table_name, data_type, identifier, description) "
        "VALUES (?, 'attributes', ?, '')",
        (table, table),
    )


def register_geometry(
    execute: Any, table: str, column: str, geometry_type: str, srs_id: int, id_column: str = "id"
) -> None:
    """Register a spatial table and build its spec R-tree with triggers."""
    execute(
        "INSERT OR REPLACE INTO gpkg_contents (table_name, data_type, identifier, description, srs_id) "
        "VALUES (?, 'features', ?, '', ?)",
        (table, table, srs_id),
    )
    execute(
        "INSERT OR REPLACE INTO gpkg_geometry_columns "
        "(table_name, column_name, geometry_type_name, srs_id, z, m) VALUES (?, ?, ?, ?, 0, 0)",
        (table, column, geometry_type, srs_id),
    )
    execute(
        "INSERT OR REPLACE INTO gpkg_extensions (table_name, column_name, extension_name, definition, scope) "
        "VALUES (?, ?, 'gpkg_rtree_index', 'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')",
        (table, column),
    )
    rtree = _quote(f"rtree_{table}_{column}")
    execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {rtree} USING rtree(id, minx, maxx, miny, maxy)")
    for ddl in rtree_trigger_ddl(table, column, id_column):
        execute(ddl)


def unregister(execute: Any, table: str, column: str | None = None) -> None:
    """Remove a table from the catalog (and drop its R-tree), before the table is dropped."""
    if column is not None:
        for name in rtree_trigger_names(table, column):
            execute(f"DROP TRIGGER IF EXISTS {_quote(name)}")
        execute(f"DROP TABLE IF EXISTS {_quote(f'rtree_{table}_{column}')}")
        execute("DELETE FROM gpkg_extensions WHERE table_name = ?", (table,))
        execute("DELETE FROM gpkg_geometry_columns WHERE table_name = ?", (table,))
    execute("DELETE FROM gpkg_contents WHERE table_name = ?", (table,))


def rtree_trigger_names(table: str, column: str) -> list[str]:
    base = f"rtree_{table}_{column}"
    return [f"{base}_{s}" for s in ("insert", "update1", "update2", "update3", "update4", "delete")]


def rtree_trigger_ddl(table: str, column: str, id_column: str = "id") -> list[str]:
    """The GeoPackage 1.3 R-tree triggers for one geometry column."""
    t, c, i = _quote(table), _quote(column), _quote(id_column)
    r = _quote(f"rtree_{table}_{column}")
    names = [_quote(n) for n in rtree_trigger_names(table, column)]
    values = f"(NEW.{i}, ST_MinX(NEW.{c}), ST_MaxX(NEW.{c}), ST_MinY(NEW.{c}), ST_MaxY(NEW.{c}))"
    return [
        f"CREATE TRIGGER IF NOT EXISTS {names[0]} AFTER INSERT ON {t} "
        f"WHEN (NEW.{c} NOT NULL AND NOT ST_IsEmpty(NEW.{c})) "
        f"BEGIN INSERT OR REPLACE INTO {r} VALUES {values}; END",
        f"CREATE TRIGGER IF NOT EXISTS {names[1]} AFTER UPDATE OF {c} ON {t} "
        f"WHEN OLD.{i} = NEW.{i} AND (NEW.{c} NOTNULL AND NOT ST_IsEmpty(NEW.{c})) "
        f"BEGIN INSERT OR REPLACE INTO {r} VALUES {values}; END",
        f"CREATE TRIGGER IF NOT EXISTS {names[2]} AFTER UPDATE OF {c} ON {t} "
        f"WHEN OLD.{i} = NEW.{i} AND (NEW.{c} ISNULL OR ST_IsEmpty(NEW.{c})) "
        f"BEGIN DELETE FROM {r} WHERE id = OLD.{i}; END",
        f"CREATE TRIGGER IF NOT EXISTS {names[3]} AFTER UPDATE ON {t} "
        f"WHEN OLD.{i} != NEW.{i} AND (NEW.{c} NOTNULL AND NOT ST_IsEmpty(NEW.{c})) "
        f"BEGIN DELETE FROM {r} WHERE id = OLD.{i}; INSERT OR REPLACE INTO {r} VALUES {values}; END",
        f"CREATE TRIGGER IF NOT EXISTS {names[4]} AFTER UPDATE ON {t} "
        f"WHEN OLD.{i} != NEW.{i} AND (NEW.{c} ISNULL OR ST_IsEmpty(NEW.{c})) "
        f"BEGIN DELETE FROM {r} WHERE id IN (OLD.{i}, NEW.{i}); END",
        f"CREATE TRIGGER IF NOT EXISTS {names[5]} AFTER DELETE ON {t} "
        f"WHEN OLD.{c} NOT NULL "
        f"BEGIN DELETE FROM {r} WHERE id = OLD.{i}; END",
    ]


def rtree_rows(
    ids: np.ndarray, geometries: np.ndarray
) -> list[tuple[int, float, float, float, float]]:
    """Rows for a direct R-tree fill: (id, minx, maxx, miny, maxy), skipping empty/missing."""
    b = shapely.bounds(geometries)
    keep = ~np.isnan(b[:, 0])
    return list(
        zip(
            ids[keep].tolist(),
            b[keep, 0].tolist(),
            b[keep, 2].tolist(),
            b[keep, 1].tolist(),
            b[keep, 3].tolist(),
            strict=True,
        )
    )
