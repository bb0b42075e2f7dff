"""Analysis runs in the database: what was asked, with which code, and every result.

A run is one row of ``analysis_run`` (kind, footprint, period, parameters, code version,
time, summary), its per-site results in ``run_result`` (every figure, sentence, flag and
role of every site, as one columnar blob: :mod:`estates.db.columnar`) and its drawn
features in ``analysis_feature`` (cluster hulls, flow lines, access areas: layer, key,
JSON values, geometry in EPSG:27700). So any number on a map can be traced to its
inputs. Writes use bound parameters inside the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

from estates.db import columnar
from estates.db.columnar import jsonable
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


@dataclass
class EncodedResults:
    """A run's per-site results and feature layers as they are written: the CPU-heavy part
    of storing a run (:func:`encode_results`), which needs no database, so another process
    can do it while this one writes something else (:func:`write_results`)."""

    sites: int
    data: bytes  # the per-site frame, columnar.encode_frame
    #: Per layer: each feature's key, JSON values and geometry (EPSG:27700).
    layers: dict[str, tuple[list[str | None], list[str], np.ndarray]] = field(default_factory=dict)


def encode_results(
    sites: pd.DataFrame,
    columns: Sequence[str],
    *,
    roles: Sequence[str | None] | None = None,
    layers: Mapping[str, tuple[gpd.GeoDataFrame, str | None]] | None = None,
) -> EncodedResults:
    """Per-site results (``site_id``, ``columns``, ``role``) and layers, encoded to write.

    Names in ``columns`` that ``sites`` lacks are skipped. A national run (500,000 sites,
    fifty columns) is one blob of about 12 MB, encoded in about 3 s. ``layers``: per
    layer name, the features and the column that keys them (None: their position).
    """
    names = [c for c in dict.fromkeys(columns) if c in sites and c not in ("site_id", "role")]
    # Column by column with copy=False: selecting ``sites[names]`` copies every block (more
    # than a second for a national flag frame); the encoder only reads the columns.
    selected: dict[str, Any] = {
        "site_id": pd.Series(sites["site_id"].to_numpy(dtype="int64"), index=sites.index),
        **{name: sites[name] for name in names},
        "role": pd.Series(
            list(roles) if roles is not None else [None] * len(sites),
            index=sites.index,
            dtype=object,
        ),
    }
    frame = pd.DataFrame(selected, index=sites.index, copy=False)
    encoded = EncodedResults(len(frame), columnar.encode_frame(frame.reset_index(drop=True)))
    for layer, (features, key_column) in (layers or {}).items():
        if len(features):
            encoded.layers[layer] = _feature_values(features, key_column)
    return encoded


def _feature_values(
    frame: gpd.GeoDataFrame, key_column: str | None
) -> tuple[list[str | None], list[str], np.ndarray]:
    attributes = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    keys: list[str | None] = (
        [None if k is None else str(k) for k in attributes[key_column].tolist()]
        if key_column
        else [str(i) for i in range(len(frame))]
    )
    values = [_json_dump(record) for record in attributes.to_dict(orient="records")]
    return keys, values, np.asarray(frame.geometry.values, dtype=object)


def write_results(connection: Connection, run_id: int, encoded: EncodedResults) -> None:
    """Store :func:`encode_results` output as run ``run_id``'s results, in the open transaction."""
    connection.execute(
        text("INSERT INTO run_result (run_id, sites, data) VALUES (:run_id, :sites, :data)"),
        {"run_id": int(run_id), "sites": encoded.sites, "data": encoded.data},
    )
    for layer, (keys, values, geoms) in encoded.layers.items():
        rows = [
            {"run_id": int(run_id), "layer": layer, "key": key, "values": value, "geom": geom}
            for key, value, geom in zip(
                keys, values, encode_geometries(connection, geoms), strict=True
            )
        ]
        connection.execute(
            text(
                'INSERT INTO analysis_feature (run_id, layer, key, "values", geom) VALUES '
                f"(:run_id, :layer, :key, {_json_param(connection, 'values')}, "
                f"{geom_param(connection)})"
            ),
            rows,
        )


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
    """A run's per-site results by ``site_id``: every column it stored, as it stored them.

    Always with ``flags`` and ``role`` (None where the run has neither); text as object
    columns with None where null. A run without per-site results gives no rows.
    """
    data = connection.execute(
        text("SELECT data FROM run_result WHERE run_id = :id"), {"id": int(run_id)}
    ).scalar_one_or_none()
    if data is None:
        frame = pd.DataFrame({"site_id": np.zeros(0, dtype="int64")})
    else:
        frame = columnar.decode_frame(bytes(data))
    for name in ("flags", "role"):
        if name not in frame:
            frame[name] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return frame.sort_values("site_id", kind="stable", ignore_index=True)


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
