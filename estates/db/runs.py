"""Analysis runs in the database: what was asked, with which code, and every result.

A run is one row of ``analysis_run`` (kind, footprint, period, parameters, code version,
time, summary), its per-site results in ``site_result`` (flags, role and a JSON object
of the figures and sentences) and its drawn features in ``analysis_feature`` (cluster
hulls, flow lines, access areas: layer, key, JSON values, geometry in EPSG:27700). So
any number on a map can be traced to its inputs. Writes are batched ``executemany``
with bound parameters, inside the caller's transaction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
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


def _plain_column(series: pd.Series) -> list[Any]:
    """One column as JSON-ready Python values (NaN/NA -> None), vectorised."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return [None if pd.isna(v) else bool(v) for v in series.tolist()]
    if pd.api.types.is_integer_dtype(series.dtype):
        return [None if pd.isna(v) else int(v) for v in series.tolist()]
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        out: list[Any] = values.tolist()
        for i in np.flatnonzero(~np.isfinite(values)):
            out[i] = None
        return out
    missing = series.isna().to_numpy()
    out = series.astype(object).tolist()
    for position, value in enumerate(out):
        if missing[position]:
            out[position] = None
        elif type(value) is not str:  # strings (nearly every cell) need no conversion
            out[position] = jsonable(value)
    return out


def records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of ``frame`` as JSON-ready dicts of the given columns (those present)."""
    present = [c for c in columns if c in frame]
    values = [_plain_column(frame[c]) for c in present]
    return [dict(zip(present, row, strict=True)) for row in zip(*values, strict=True)] or [
        {} for _ in range(len(frame))
    ]


def _json_param(connection: Connection, name: str) -> str:
    return f":{name}" if is_sqlite(connection) else f"CAST(:{name} AS JSONB)"


def _json_dump(value: Any) -> str:
    return json.dumps(jsonable(value), ensure_ascii=False, allow_nan=False)


def _json_load(value: Any) -> Any:
    if value is None or not isinstance(value, str | bytes):
        return value
    return json.loads(value)


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


def set_summary(connection: Connection, run_id: int, summary: Mapping[str, Any]) -> None:
    """Store a run's summary (known only once the results are written)."""
    connection.execute(
        text(
            f"UPDATE analysis_run SET summary = {_json_param(connection, 'summary')} WHERE id = :id"
        ),
        {"summary": _json_dump(summary), "id": run_id},
    )


def write_site_results(
    connection: Connection,
    run_id: int,
    site_ids: Iterable[int],
    flags: Iterable[str | None],
    roles: Iterable[str | None],
    values: Iterable[Mapping[str, Any]],
) -> int:
    """Bulk-insert a run's per-site results; return the number of rows.

    ``values`` are JSON-ready dicts (see :func:`records`).
    """
    rows = [
        {
            "run_id": run_id,
            "site_id": int(site_id),
            "flags": flag,
            "role": role,
            "values": json.dumps(value, ensure_ascii=False, allow_nan=False, default=str),
        }
        for site_id, flag, role, value in zip(site_ids, flags, roles, values, strict=True)
    ]
    if rows and is_sqlite(connection):
        # The driver's own executemany on plain tuples: 4x faster than SQLAlchemy's per-row
        # parameter processing for a run over a whole region (500,000 rows).
        raw = connection.connection.driver_connection
        assert raw is not None
        raw.executemany(
            'INSERT INTO site_result (run_id, site_id, flags, role, "values") VALUES (?, ?, ?, ?, ?)',
            [(r["run_id"], r["site_id"], r["flags"], r["role"], r["values"]) for r in rows],
        )
    elif rows:
        connection.execute(
            text(
                'INSERT INTO site_result (run_id, site_id, flags, role, "values") VALUES '
                f"(:run_id, :site_id, :flags, :role, {_json_param(connection, 'values')})"
            ),
            rows,
        )
    return len(rows)


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
    """A run's per-site results: ``site_id``, ``flags``, ``role`` and the values as columns."""
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
    values = pd.DataFrame([_json_load(r[3]) or {} for r in rows], index=base.index)
    values = values.drop(columns=[c for c in ("site_id",) if c in values])
    frame = pd.concat([base, values], axis=1)
    if "flags" not in frame:
        frame["flags"] = frame["flags_stored"]
    if "role" not in frame:
        frame["role"] = frame["role_stored"]
    return frame.drop(columns=["flags_stored", "role_stored"])


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
