"""Export a stored analysis run as GeoPackage, CSV or GeoJSON.

- ``.gpkg``: one layer per result the run has (``sites``, ``clusters``, ``flows``,
  ``access``) in EPSG:27700, plus an attribute table ``run`` with the parameters and
  summary as JSON, written with pyogrio (opens in QGIS).
- ``.csv``: one layer (default ``sites``); point geometry as ``easting`` / ``northing``
  columns (EPSG:27700; a polygon or line layer gets its centroid), and every text cell
  that starts with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return) prefixed with a
  single quote so spreadsheets do not run it as a formula.
- ``.geojson``: one layer (default ``sites``) in EPSG:4326, as RFC 7946 asks.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from estates.errors import ConfigurationError
from estates.estate import Estate
from estates.pipeline import StoredRun, load_run

log = logging.getLogger(__name__)

FORMATS = (".gpkg", ".csv", ".geojson")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, made inert with a leading quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _flat(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Lists and dicts as text, so every column has a type GDAL can write."""
    out = frame.copy()
    for column in out.columns:
        if column == out.geometry.name or out[column].dtype != object:
            continue
        values = out[column]
        if values.map(lambda v: isinstance(v, list | tuple)).any():
            out[column] = values.map(
                lambda v: ";".join(str(x) for x in v) if isinstance(v, list | tuple) else v
            )
        elif values.map(lambda v: isinstance(v, dict)).any():
            out[column] = values.map(
                lambda v: json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v
            )
        else:
            non_null = values.dropna()
            kinds = {type(v) for v in non_null}
            if len(kinds) > 1 or (kinds and not kinds <= {str}):
                out[column] = values.map(lambda v: None if v is None else str(v))
    return out


def run_layers(run: StoredRun) -> dict[str, gpd.GeoDataFrame]:
    """The layers of a stored run: ``sites`` first, then the run's own features."""
    layers = {"sites": run.sites}
    layers.update(run.layers)
    return layers


def export_run(
    estate: Estate,
    run_id: int,
    path: str | os.PathLike[str],
    *,
    layer: str = "sites",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a stored run to ``path`` (format from the extension); return what was written.

    Raises
    ------
    ConfigurationError
        Unknown extension, a layer the run does not have, or an existing file without
        ``overwrite``.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigurationError(
            f"cannot export to {target}: the file name must end in {', '.join(FORMATS)}"
        )
    if target.exists() and not overwrite:
        raise ConfigurationError(
            f"{target} already exists; choose another name or pass --overwrite"
        )
    run = load_run(estate, run_id)
    layers = run_layers(run)
    if suffix == ".gpkg":
        if target.exists():
            target.unlink()
        written = {}
        for name, frame in layers.items():
            flat = _flat(frame)
            pyogrio.write_dataframe(flat, target, layer=name, driver="GPKG")
            written[name] = len(flat)
        info = pd.DataFrame(
            {
                "run_id": [run.run_id],
                "kind": [run.kind],
                "footprint": [run.footprint],
                "period": [run.period],
                "code_version": [run.code_version],
                "created_at": [run.created_at.isoformat() if run.created_at else None],
                "parameters": [json.dumps(run.parameters, ensure_ascii=False)],
                "summary": [json.dumps(run.summary, ensure_ascii=False)],
            }
        )
        pyogrio.write_dataframe(info, target, layer="run", driver="GPKG")
        log.info("exported run %d to %s: %s", run.run_id, target, written)
        return {"path": str(target), "run_id": run.run_id, "layers": written}
    if layer not in layers:
        raise ConfigurationError(
            f"run {run.run_id} ({run.kind}) has no layer {layer!r}; it has: {sorted(layers)}"
        )
    frame = _flat(layers[layer])
    if suffix == ".geojson":
        if target.exists():
            target.unlink()
        pyogrio.write_dataframe(frame.to_crs("EPSG:4326"), target, driver="GeoJSON")
    else:
        table = _csv_table(frame)
        # CRLF line ends (RFC 4180): the csv module then quotes any cell holding a bare
        # carriage return, which would otherwise split the row in every CSV reader.
        table.to_csv(target, index=False, encoding="utf-8", lineterminator="\r\n")
    log.info("exported layer %s of run %d to %s (%d rows)", layer, run.run_id, target, len(frame))
    return {"path": str(target), "run_id": run.run_id, "layers": {layer: len(frame)}}


def _csv_table(frame: gpd.GeoDataFrame) -> pd.DataFrame:
    geoms = np.asarray(frame.geometry.values, dtype=object)
    present = ~shapely.is_missing(geoms)
    points = np.full(len(geoms), None, dtype=object)
    points[present] = shapely.centroid(geoms[present])
    easting = np.full(len(geoms), np.nan)
    northing = np.full(len(geoms), np.nan)
    if present.any():
        easting[present] = shapely.get_x(points[present])
        northing[present] = shapely.get_y(points[present])
    table = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    table["easting"] = np.round(easting, 2)
    table["northing"] = np.round(northing, 2)
    for column in table.columns:
        dtype = table[column].dtype
        if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            table[column] = table[column].astype(object).map(neutralise)
    table.columns = [neutralise(str(c)) for c in table.columns]
    return table
