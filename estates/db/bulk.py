"""Bulk inserts from column lists: many rows per statement (GeoPackage), ``COPY`` (PostGIS).

On SQLite, ``executemany`` with one row per statement pays a Python bind, an
``sqlite3_step`` and a reset for every row; a statement of a few hundred rows pays them
once per chunk: measured here, 1,000,000 postcode rows insert in 1.7 s instead of 4.2 s.
A column with the same value in every row is bound once per statement, not per row.
On PostGIS, ``COPY`` is the bulk path (about 1 s per 200,000 rows). Values are always
bound parameters or ``COPY`` data; table and column names must be those of the schema
(:mod:`estates.db.models`), checked before any SQL is built.
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection

from estates.db.models import Base

#: Bound parameters per statement: SQLite's limit is 32,766 since 3.32 and 999 before.
_MAX_PARAMETERS = 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
#: Rows per statement; more gains nothing measurable and makes longer SQL texts.
_MAX_ROWS = 500


#: Columns of a GeoPackage R-tree and of the shadow tables SQLite keeps for it.
_RTREE_COLUMNS = {
    "": {"id", "minx", "maxx", "miny", "maxy"},
    "_node": {"nodeno", "data"},
    "_parent": {"nodeno", "parentnode"},
    "_rowid": {"rowid", "nodeno"},
}


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of row objects are built.

    Each row (a list, a tuple, a geometry) is a new container; with the collector on,
    Python re-scans every live one again and again: most of the time of reading a
    500,000-row file, and 60% of reading a national site table back.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _checked_columns(table: str, columns: Sequence[str]) -> list[str]:
    """The names, if they are the schema's (or a GeoPackage R-tree's); ValueError otherwise."""
    if table.startswith("rtree_") and table.replace("_", "").isalnum():
        suffix = next((s for s in ("_node", "_parent", "_rowid") if table.endswith(s)), "")
        known = _RTREE_COLUMNS[suffix]
    elif table in Base.metadata.tables:
        known = {c.name for c in Base.metadata.tables[table].columns}
    else:
        raise ValueError(f"bulk insert into unknown table {table!r}")
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ValueError(f"bulk insert into {table}: unknown column(s) {unknown}")
    return [f'"{c}"' for c in columns]


def insert_columns(
    raw: sqlite3.Connection,
    table: str,
    columns: Sequence[str],
    values: Sequence[Sequence[Any]],
) -> int:
    """Insert ``len(values[0])`` rows; ``values`` holds one sequence per column.

    Runs inside the caller's transaction; returns the number of rows.
    """
    names = _checked_columns(table, columns)
    width = len(names)
    if width == 0 or len(values) != width:
        raise ValueError(f"insert_columns: {width} columns but {len(values)} value sequences")
    count = len(values[0])
    if any(len(v) != count for v in values):
        raise ValueError("insert_columns: the value sequences differ in length")
    if count == 0:
        return 0
    _insert_chunks(raw, f'"{table}"', names, values)
    return count


def _insert_chunks(
    raw: sqlite3.Connection, table: str, names: Sequence[str], values: Sequence[Sequence[Any]]
) -> None:
    count = len(values[0])
    width = len(names)
    # A column with one value in every row (the organisation, the batch, a column the file
    # leaves empty) is bound once per statement as a numbered parameter, ?1 ... ?k: a
    # council register's write binds half as many values.
    constant = [j for j, cells in enumerate(values) if _is_constant(cells)][: width - 1]
    varying = [j for j in range(width) if j not in constant]  # at least one
    fixed = [values[j][0] for j in constant]
    stride = len(varying)
    flat: list[Any] = [None] * (count * stride)
    for k, j in enumerate(varying):
        flat[k::stride] = list(values[j])
    per = int(max(1, min(_MAX_ROWS, (_MAX_PARAMETERS - len(constant)) // stride)))
    head = f"INSERT INTO {table} ({', '.join(names)}) VALUES "

    def statement(rows: int) -> str:
        slots: list[str] = [""] * width
        for k, j in enumerate(constant):
            slots[j] = f"?{k + 1}"
        parts = []
        number = len(constant)
        for _ in range(rows):
            for j in varying:
                number += 1
                slots[j] = f"?{number}"
            parts.append("(" + ", ".join(slots) + ")")
        return head + ", ".join(parts)

    full = count // per * per
    step = per * stride
    if full:
        raw.executemany(
            statement(per),
            (fixed + flat[start : start + step] for start in range(0, full * stride, step)),
        )
    if full < count:
        raw.execute(statement(count - full), fixed + flat[full * stride :])


#: Schema every GeoPackage connection attaches, in memory, for rows built elsewhere.
STAGING_SCHEMA = "estates_staging"
#: The one table of a :func:`stage_image`, as :func:`staged` makes it readable.
STAGED_TABLE = f"{STAGING_SCHEMA}.staged"


def stage_image(columns: Sequence[str], values: Sequence[Sequence[Any]]) -> bytes:
    """Rows as a serialized SQLite database of one table, ``staged``: ``ord`` (0, 1, ...)
    and ``columns``, for :func:`staged` to read in another process.

    The point is where the rows are bound. Binding 147,000 site rows into the estate
    takes 3.0 s of the writer; built here by the read-ahead worker, the writer copies
    them with one ``INSERT ... SELECT`` in 0.9 s, indexes included. Values keep their
    Python types as bound, so the copy stores exactly what binding them would.
    """
    bad = [c for c in columns if not c.isidentifier()]
    if bad or len(values) != len(columns) or len({len(v) for v in values}) > 1:
        raise ValueError(f"stage_image: bad columns {bad} or value sequences")
    names = ["ord", *(f'"{c}"' for c in columns)]
    db = sqlite3.connect(":memory:")
    try:
        db.execute(f"CREATE TABLE staged (ord INTEGER PRIMARY KEY, {', '.join(names[1:])})")
        if len(values) and len(values[0]):
            _insert_chunks(db, "staged", names, [range(len(values[0])), *values])
        db.commit()
        return db.serialize()
    finally:
        db.close()


@contextmanager
def staged(raw: sqlite3.Connection, image: bytes) -> Iterator[str]:
    """The table of a :func:`stage_image` readable on ``raw`` (a GeoPackage connection of
    :mod:`estates.db.engine`) under the name yielded; its memory is released after.

    Works inside the open transaction: the staging schema is attached when the
    connection opens, since SQLite refuses ``ATTACH`` inside a transaction.
    """
    raw.deserialize(image, name=STAGING_SCHEMA)
    try:
        yield STAGED_TABLE
    finally:
        raw.deserialize(_empty_image(), name=STAGING_SCHEMA)


def _empty_image() -> bytes:
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE TABLE staged (ord INTEGER PRIMARY KEY)")  # serialize needs a page
        db.commit()
        return db.serialize()
    finally:
        db.close()


def can_stage(raw: object) -> bool:
    """Whether ``raw`` is a GeoPackage connection with the staging schema attached."""
    if not isinstance(raw, sqlite3.Connection) or not hasattr(raw, "deserialize"):
        return False
    names = {row[1] for row in raw.execute("PRAGMA database_list")}
    return STAGING_SCHEMA in names


def _is_constant(cells: Sequence[Any]) -> bool:
    """Every cell equals the first and has its type (``1`` is not ``True``); in C loops."""
    first, middle, last = cells[0], cells[len(cells) // 2], cells[-1]
    if not (type(middle) is type(last) is type(first) and middle == first and last == first):
        return False  # nearly every column that varies, without a pass over it
    cells = cells if isinstance(cells, list) else list(cells)
    return cells.count(first) == len(cells) and set(map(type, cells)) == {type(first)}


def insert_rows(
    connection: Connection,
    table: str,
    columns: Sequence[str],
    values: Sequence[Sequence[Any]],
) -> int:
    """:func:`insert_columns` on a GeoPackage, ``COPY`` on PostGIS; in the open transaction.

    On PostGIS a geometry column takes hex EWKB text (``store.encode_geometries_ewkb``).
    """
    raw = connection.connection.driver_connection
    assert raw is not None
    if connection.dialect.name == "sqlite":
        return insert_columns(raw, table, columns, values)
    names = _checked_columns(table, columns)
    if len(values) != len(names) or len({len(v) for v in values}) > 1:
        raise ValueError(f"insert_rows into {table}: one equal-length sequence per column")
    count = len(values[0]) if values else 0
    if count == 0:
        return 0
    with (
        raw.cursor() as cursor,
        cursor.copy(f'COPY "{table}" ({", ".join(names)}) FROM STDIN') as copy,
    ):
        for row in zip(*values, strict=True):
            copy.write_row(row)
    return count
