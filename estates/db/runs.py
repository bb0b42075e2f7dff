"""Analysis runs in the database: what was asked, with which code, and every result.

A run is one row of ``analysis_run`` (kind, footprint, period, parameters, code version,
time, summary), its per-site results in ``site_result`` (flags, role and a JSON object
of the figures and sentences) and its drawn features in ``analysis_feature`` (cluster
hulls, flow lines, access areas: layer, key, JSON values, geometry in EPSG:27700). So
any number on a map can be traced to its inputs.

A site's JSON object leaves its null values out (most council sites have no ERIC
figures), so ``json_extract("values", '$.flag_vacant')`` (SQLite) or
``"values" ->> 'flag_vacant'`` (PostGIS) is NULL exactly where the value is; the run's
column list is kept in its summary (:data:`RESULT_COLUMNS`) so the results read back
with every column. Writes use bound parameters (multi-row ``INSERT`` on SQLite, ``COPY``
on PostGIS) inside the caller's transaction.
"""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

from estates.db.store import (
    decode_geometries,
    encode_geometries,
    geom_param,
    is_sqlite,
)
from estates.db.types import Timestamp
from estates.errors import NotFoundError
from estates.settings import WORKING_CRS

RUN_KINDS = ("flags", "colocation", "pool", "sensitivity")


def jsonable(value: Any) -> Any:
    """numpy/pandas scalars, NaN and containers as plain JSON values (NaN -> None)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool:  # most values: no isinstance chain
        return value
    if kind is float:
        return None if math.isnan(value) or math.isinf(value) else value
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _json_param(connection: Connection, name: str) -> str:
    return f":{name}" if is_sqlite(connection) else f"CAST(:{name} AS JSONB)"


def _json_dump(value: Any) -> str:
    return json.dumps(jsonable(value), ensure_ascii=False, allow_nan=False)


def _json_load(value: Any) -> Any:
    if value is None or not isinstance(value, str | bytes):
        return value
    return json.loads(value)


#: Key of a run's stored summary that lists its per-site result columns, in order: the
#: rows leave null values out, so the columns cannot be read from the rows themselves.
RESULT_COLUMNS = "result_columns"
#: Rows encoded (and inserted) at a time: bounds the memory of the fragments.
_BATCH_ROWS = 20_000
#: A text column with more distinct values than this share of a sample is encoded value
#: by value; below it, each distinct value once (statuses, types, repeated sentences).
_DISTINCT_SHARE = 0.25
_SAMPLE_ROWS = 20_000


@dataclass
class _Coded:
    """Columns whose fragments come from a table: a code per row, the fragment per code.

    One column, or several adjacent ones merged (their fragments joined per distinct
    combination), so a row joins one piece for all of them. ``null`` is the code whose
    fragment is empty (every value null), -1 if none is.
    """

    codes: np.ndarray
    table: np.ndarray
    null: int


#: Encodes rows ``start:stop`` of one column: the fragments, or None when all are null.
_ByValue = Callable[[int, int], "np.ndarray | None"]


def json_objects(
    frame: pd.DataFrame, columns: Sequence[str], *, batch_rows: int = _BATCH_ROWS
) -> Iterator[list[str]]:
    """Each row's values as the text of one JSON object, ``batch_rows`` rows at a time.

    Null values (None, NaN, NA, infinities) are left out of the object. The text is built
    column-wise: each column becomes member fragments ``,"column":value``, a distinct
    string encoded once (statuses, types, repeated sentences), runs of such columns merged
    into one piece per distinct combination; then each row joins its pieces. No dict and
    no ``json.dumps`` per row. Keys follow ``columns`` (those in ``frame``, once each).

    Examples
    --------
    >>> frame = pd.DataFrame({"a": [1.5, None], "b": ["x", "y"]})
    >>> list(json_objects(frame, ["a", "b"]))
    [['{"a":1.5,"b":"x"}', '{"b":"y"}']]
    """
    names = list(dict.fromkeys(c for c in columns if c in frame))
    if not names:
        for start in range(0, len(frame), batch_rows):
            yield ["{}"] * (min(start + batch_rows, len(frame)) - start)
        return
    # The first column's fragments open the object; the others start with a comma.
    first = _encoder(frame[names[0]], names[0], "{")
    rest = _merged([_encoder(frame[name], name, ",") for name in names[1:]], len(frame))
    for start in range(0, len(frame), batch_rows):
        stop = min(start + batch_rows, len(frame))
        lead = _batch(first, start, stop)
        pieces = [p for p in (_batch(part, start, stop) for part in rest) if p is not None]
        if lead is None:
            lead = np.full(stop - start, "", dtype=object)
        texts = [
            "".join(row)
            for row in zip(lead, *pieces, itertools.repeat("}", stop - start), strict=True)
        ]
        for i in np.flatnonzero(lead == ""):  # first value null: its comma opens the object
            texts[i] = "{" + texts[i][1:] if texts[i] != "}" else "{}"
        yield texts


def _batch(part: _Coded | _ByValue, start: int, stop: int) -> np.ndarray | None:
    if not isinstance(part, _Coded):
        return part(start, stop)
    codes = part.codes[start:stop]
    if part.null >= 0 and not (codes != part.null).any():
        return None
    return part.table[codes]


def _merged(parts: list[_Coded | _ByValue], n: int) -> list[_Coded | _ByValue]:
    """Adjacent coded columns merged into one, while their distinct combinations are few."""
    limit = max(4096, n // 8)
    out: list[_Coded | _ByValue] = []
    run: list[_Coded] = []
    codes = np.zeros(0, dtype=np.int64)  # the run's combination of each row
    for part in parts:
        if isinstance(part, _Coded) and run:
            width = len(part.table)
            if int(codes.max(initial=0)) < 2**62 // width:
                trial, distinct = pd.factorize(codes * width + part.codes % width)
                if len(distinct) <= limit:
                    run.append(part)
                    codes = trial
                    continue
        if run:
            out.append(_combined(run, codes))
        run = [part] if isinstance(part, _Coded) else []
        if isinstance(part, _Coded):
            codes = part.codes % len(part.table)
        else:
            out.append(part)
    if run:
        out.append(_combined(run, codes))
    return out


def _combined(run: list[_Coded], codes: np.ndarray) -> _Coded:
    """One coded part for a run of them: the joined fragments of each combination."""
    if len(run) == 1:
        return run[0]
    _, rows = np.unique(codes, return_index=True)  # a row holding each combination
    table = np.array(
        ["".join(part.table[part.codes[row]] for part in run) for row in rows.tolist()],
        dtype=object,
    )
    empty = np.flatnonzero(table == "")
    return _Coded(codes, table, int(empty[0]) if len(empty) else -1)


def _encoder(series: pd.Series, name: str, lead: str) -> _Coded | _ByValue:
    """How one column becomes fragments, chosen once from its dtype and values.

    Fragments are ``<lead>"name":value`` (``lead`` a comma or the opening brace), empty
    where the value is null.
    """
    prefix = lead + encode_basestring(str(name)) + ":"
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "b":
        table = np.array([prefix + "false", prefix + "true"], dtype=object)
        return _Coded(series.to_numpy().astype(np.intp), table, -1)
    if pd.api.types.is_float_dtype(dtype):
        numbers = series.to_numpy(dtype="float64", na_value=np.nan)

        def floats(start: int, stop: int) -> np.ndarray | None:
            part = numbers[start:stop]
            ok = np.flatnonzero(np.isfinite(part))
            if len(ok) == 0:
                return None
            out = np.full(len(part), "", dtype=object)
            # float.__repr__ is json.dumps's own float text: the shortest exact one.
            out[ok] = [prefix + text for text in map(float.__repr__, part[ok].tolist())]
            return out

        return floats
    kind = _kind(series)
    if kind != "other":
        values = series.to_numpy(dtype=object)
        sample = series.iloc[:_SAMPLE_ROWS]
        if kind == "number" or sample.nunique() <= _DISTINCT_SHARE * len(sample):
            codes, uniques = pd.factorize(values)
            texts = [prefix + _scalar_json(u) for u in uniques.tolist()]
            return _Coded(codes, np.array([*texts, ""], dtype=object), len(texts))

        def strings(start: int, stop: int) -> np.ndarray:
            return np.array(
                [
                    prefix + encode_basestring(v) if type(v) is str else _member(prefix, v)
                    for v in values[start:stop].tolist()
                ],
                dtype=object,
            )

        return strings
    anything = series.astype(object).to_numpy()

    def other(start: int, stop: int) -> np.ndarray:
        return np.array([_member(prefix, v) for v in anything[start:stop].tolist()], dtype=object)

    return other


def _member(prefix: str, value: Any) -> str:
    """One value's fragment the slow, general way ('' when it is null)."""
    plain = jsonable(value)
    if plain is None:
        return ""
    return prefix + json.dumps(plain, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _kind(series: pd.Series) -> str:
    """``number``: integers or booleans only; ``text``: strings only; else ``other``.

    The first two are encoded per distinct value (a text column with many distinct
    values, value by value); ``other`` (lists, timestamps, mixed objects) value by value.
    """
    dtype = series.dtype
    if pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return "number"
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in ("integer", "boolean"):
            return "number"
        return "text" if inferred in ("string", "empty") else "other"
    return "text" if pd.api.types.is_string_dtype(dtype) else "other"


def _scalar_json(value: Any) -> str:
    """JSON text of one distinct str, int or bool value, as ``json.dumps`` writes it."""
    if type(value) is str:
        return encode_basestring(value)
    return json.dumps(jsonable(value), ensure_ascii=False, allow_nan=False)


def create_run(
    connection: Connection,
    *,
    kind: str,
    footprint: str | None,
    period: str | None,
    parameters: Mapping[str, Any],
    code_version: str,
    summary: Mapping[str, Any] | None = None,
) -> int:
    """Insert an ``analysis_run`` row and return its id."""
    if kind not in RUN_KINDS:
        raise ValueError(f"run kind must be one of {RUN_KINDS}, got {kind!r}")
    statement = text(
        "INSERT INTO analysis_run (kind, footprint, period, parameters, code_version, "
        f"created_at, summary) VALUES (:kind, :footprint, :period, "
        f"{_json_param(connection, 'parameters')}, :code_version, :created_at, "
        f"{_json_param(connection, 'summary')}) RETURNING id"
    ).bindparams(bindparam("created_at", type_=Timestamp))
    return int(
        connection.execute(
            statement,
            {
                "kind": kind,
                "footprint": footprint,
                "period": period,
                "parameters": _json_dump(parameters),
                "code_version": code_version,
                "created_at": datetime.now(UTC),
                "summary": None if summary is None else _json_dump(summary),
            },
        ).scalar_one()
    )


def set_summary(
    connection: Connection,
    run_id: int,
    summary: Mapping[str, Any],
    *,
    result_columns: Sequence[str] | None = None,
) -> None:
    """Store a run's summary (known only once the results are written).

    ``result_columns`` (from :func:`write_site_results`) are kept in it under
    :data:`RESULT_COLUMNS`; :func:`read_run` hands them back apart from the summary.
    """
    stored = dict(summary)
    if result_columns is not None:
        stored[RESULT_COLUMNS] = list(result_columns)
    connection.execute(
        text(
            f"UPDATE analysis_run SET summary = {_json_param(connection, 'summary')} WHERE id = :id"
        ),
        {"summary": _json_dump(stored), "id": run_id},
    )


def write_site_results(
    connection: Connection,
    run_id: int,
    sites: pd.DataFrame,
    columns: Sequence[str],
    *,
    roles: Sequence[str | None] | None = None,
) -> list[str]:
    """Bulk-insert a run's per-site results; return the value columns written, in order.

    One row per site of ``sites`` (``site_id``; ``flags`` when present): the site's values
    of ``columns`` as one JSON object without its nulls (:func:`json_objects`), so pass
    the returned columns to :func:`set_summary` to read the run back whole. Encoded and
    stored a batch at a time, so the texts of a national run are never all in memory.
    SQLite: the driver's own ``executemany`` (4x faster than SQLAlchemy's per-row
    parameter processing); PostGIS: ``COPY`` (the same rows, several times faster).
    """
    names = list(dict.fromkeys(c for c in columns if c in sites))
    rows = np.empty((len(sites), 5), dtype=object)  # the site_result columns, row by row
    rows[:, 0] = int(run_id)
    rows[:, 1] = sites["site_id"].astype("int64").tolist()
    rows[:, 2] = sites["flags"].tolist() if "flags" in sites else None
    rows[:, 3] = list(roles) if roles is not None else None
    start = 0
    with _site_result_sink(connection) as write:
        for texts in json_objects(sites, names):
            stop = start + len(texts)
            rows[start:stop, 4] = texts
            write(rows[start:stop])
            rows[start:stop, 4] = None  # the texts of a batch live only while it is stored
            start = stop
    return names


_SITE_RESULT_COLUMNS = 'site_result (run_id, site_id, flags, role, "values")'
#: Rows per SQLite INSERT statement: one statement for many rows is 1.6x faster than
#: ``executemany`` over single rows (fewer steps and resets per row).
_ROWS_PER_INSERT = 400


@contextmanager
def _site_result_sink(connection: Connection) -> Iterator[Callable[[np.ndarray], None]]:
    """A function that stores rows (an n x 5 object array of ``site_result`` columns)."""
    raw = connection.connection.driver_connection
    assert raw is not None
    if not is_sqlite(connection):
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {_SITE_RESULT_COLUMNS} FROM STDIN") as copy,
        ):

            def copy_rows(rows: np.ndarray) -> None:
                for row in rows.tolist():
                    copy.write_row(row)

            yield copy_rows
        return
    per = max(1, min(_ROWS_PER_INSERT, raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 5))

    def statement(n_rows: int) -> str:
        marks = ", ".join(["(?, ?, ?, ?, ?)"] * n_rows)
        return f"INSERT INTO {_SITE_RESULT_COLUMNS} VALUES {marks}"

    def insert_rows(rows: np.ndarray) -> None:
        full = len(rows) - len(rows) % per
        if full:
            raw.executemany(statement(per), rows[:full].reshape(-1, per * 5).tolist())
        if full < len(rows):
            raw.execute(statement(len(rows) - full), rows[full:].ravel().tolist())

    yield insert_rows


def write_features(
    connection: Connection,
    run_id: int,
    layer: str,
    frame: gpd.GeoDataFrame,
    key_column: str | None = None,
) -> int:
    """Bulk-insert the rows of ``frame`` as features of ``layer`` (attributes as JSON)."""
    if len(frame) == 0:
        return 0
    geoms = np.asarray(frame.geometry.values, dtype=object)
    attributes = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    records = attributes.to_dict(orient="records")
    keys = (
        [None if k is None else str(k) for k in attributes[key_column].tolist()]
        if key_column
        else [str(i) for i in range(len(frame))]
    )
    encoded = encode_geometries(connection, geoms)
    rows = [
        {"run_id": run_id, "layer": layer, "key": key, "values": _json_dump(record), "geom": geom}
        for key, record, geom in zip(keys, records, encoded, strict=True)
    ]
    connection.execute(
        text(
            'INSERT INTO analysis_feature (run_id, layer, key, "values", geom) VALUES '
            f"(:run_id, :layer, :key, {_json_param(connection, 'values')}, "
            f"{geom_param(connection)})"
        ),
        rows,
    )
    return len(rows)


def read_run(connection: Connection, run_id: int) -> dict[str, Any]:
    """One run's row as a dict; :class:`NotFoundError` naming the known ids if absent."""
    statement = text(
        "SELECT id, kind, footprint, period, parameters, code_version, created_at, summary "
        "FROM analysis_run WHERE id = :id"
    ).columns(created_at=Timestamp)
    row = connection.execute(statement, {"id": int(run_id)}).mappings().first()
    if row is None:
        recent = [
            r[0]
            for r in connection.execute(
                text("SELECT id FROM analysis_run ORDER BY id DESC LIMIT 10")
            )
        ]
        raise NotFoundError(
            f"analysis run {run_id} does not exist; recent runs: {recent or 'none'} "
            "(list them with `estates export --help`, or run `estates analyse` first)"
        )
    out = dict(row)
    out["parameters"] = _json_load(out["parameters"])
    out["summary"] = _json_load(out["summary"])
    columns = out["summary"].pop(RESULT_COLUMNS, None) if out["summary"] else None
    out[RESULT_COLUMNS] = columns
    return out


def latest_run_id(connection: Connection, kind: str | None = None) -> int | None:
    """The newest run (of a kind), or None."""
    if kind is None:
        return connection.execute(text("SELECT max(id) FROM analysis_run")).scalar_one()
    return connection.execute(
        text("SELECT max(id) FROM analysis_run WHERE kind = :kind"), {"kind": kind}
    ).scalar_one()


def list_runs(connection: Connection) -> pd.DataFrame:
    """Every run (id, kind, footprint, period, code version, time), newest first."""
    statement = text(
        "SELECT id, kind, footprint, period, code_version, created_at FROM analysis_run "
        "ORDER BY id DESC"
    ).columns(created_at=Timestamp)
    result = connection.execute(statement)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def read_site_results(connection: Connection, run_id: int) -> pd.DataFrame:
    """A run's per-site results: ``site_id``, ``flags``, ``role`` and the values as columns.

    Every value column of the run, also one that is null for every site, with the dtypes
    the full rows gave before nulls were left out (missing text as None in object columns).
    """
    summary = connection.execute(
        text("SELECT summary FROM analysis_run WHERE id = :id"), {"id": int(run_id)}
    ).scalar_one_or_none()
    stored = _json_load(summary) or {}
    columns = stored.get(RESULT_COLUMNS)
    result = connection.execute(
        text(
            'SELECT site_id, flags, role, "values" FROM site_result WHERE run_id = :id '
            "ORDER BY site_id"
        ),
        {"id": int(run_id)},
    )
    rows = result.fetchall()
    base = pd.DataFrame(
        [(r[0], r[1], r[2]) for r in rows], columns=["site_id", "flags_stored", "role_stored"]
    )
    objects = [_json_load(r[3]) or {} for r in rows]
    if columns is None:  # a run stored with every key in every row (before result_columns)
        values = pd.DataFrame(objects, index=base.index)
    else:
        values = _frame_of_objects(objects, [c for c in columns if c != "site_id"], base.index)
    values = values.drop(columns=[c for c in ("site_id",) if c in values])
    frame = pd.concat([base, values], axis=1)
    if "flags" not in frame:
        frame["flags"] = frame["flags_stored"]
    if "role" not in frame:
        frame["role"] = frame["role_stored"]
    return frame.drop(columns=["flags_stored", "role_stored"])


def _frame_of_objects(
    objects: list[dict[str, Any]], columns: list[str], index: pd.Index
) -> pd.DataFrame:
    """Rows that leave nulls out, as the frame the same rows with every key gave."""
    frame = pd.DataFrame(objects, columns=columns, index=index)
    for column in columns:
        values = frame[column]
        missing = values.isna().to_numpy()
        if missing.all():  # null for every site: None, as a column of nulls read back
            frame[column] = pd.Series([None] * len(frame), index=index, dtype=object)
        elif values.dtype == object and missing.any():  # absent keys came back as NaN
            plain = values.to_numpy(dtype=object, copy=True)
            plain[missing] = None
            frame[column] = pd.Series(plain, index=index, dtype=object)
    return frame


def read_features(
    connection: Connection, run_id: int, layer: str | None = None
) -> dict[str, gpd.GeoDataFrame]:
    """A run's features by layer, each a GeoDataFrame (values as columns, EPSG:27700)."""
    geom = "geom" if is_sqlite(connection) else "ST_AsBinary(geom)"
    sql = f'SELECT layer, key, "values", {geom} AS geom FROM analysis_feature WHERE run_id = :id'
    params: dict[str, Any] = {"id": int(run_id)}
    if layer is not None:
        sql += " AND layer = :layer"
        params["layer"] = layer
    rows = connection.execute(text(sql + " ORDER BY id"), params).fetchall()
    out: dict[str, gpd.GeoDataFrame] = {}
    for name in dict.fromkeys(r[0] for r in rows):
        part = [r for r in rows if r[0] == name]
        values = pd.DataFrame([_json_load(r[2]) or {} for r in part])
        geoms = decode_geometries(connection, [r[3] for r in part])
        out[name] = gpd.GeoDataFrame(
            values, geometry=gpd.GeoSeries(geoms, crs=WORKING_CRS, index=values.index)
        )
    return out


def footprint_codes(connection: Connection) -> list[str]:
    """Footprint codes that have at least one site (for "did you mean" messages)."""
    return [
        r[0]
        for r in connection.execute(text("SELECT DISTINCT code FROM site_footprint ORDER BY code"))
    ]
