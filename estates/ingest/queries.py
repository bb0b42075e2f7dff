"""What was loaded: site queries with footprint checks, and site exports (CSV, GeoJSON, GPKG).

Exports follow the project's rules: GeoPackage in EPSG:27700, GeoJSON in EPSG:4326,
CSV with easting/northing and longitude/latitude columns and every text cell that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or
carriage return) prefixed with a single quote.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd

from estates.db import summary as db_summary
from estates.errors import ConfigurationError
from estates.ingest._parse import is_full_postcode

if TYPE_CHECKING:
    from estates.estate import Estate

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def find_sites(
    estate: Estate,
    *,
    footprint: str | None = None,
    sector: str | None = None,
    unlocated: bool = False,
) -> gpd.GeoDataFrame:
    """Sites in a footprint and/or sector (EPSG:27700); ``unlocated`` lists only the sites
    that have no location (pooled non-geographic rows excluded), with ``unlocated_reason``.
    """
    with estate.read() as connection:
        db_summary.check_footprint(connection, footprint)
    sites = estate.sites(
        footprint=footprint,
        sector=sector,
        located=False if unlocated else None,
        include_non_geographic=not unlocated,
    )
    if unlocated:
        postcode = sites["postcode"]
        full = is_full_postcode(postcode.fillna(""))
        sites["unlocated_reason"] = np.where(
            postcode.isna(),
            "no postcode",
            np.where(full, "postcode not in the loaded lookup", "partial or invalid postcode"),
        )
    return sites


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot run as spreadsheet formulas (prefixed with ``'``)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column].dtype):
            values = out[column]
            text = values.astype("string")
            risky = text.str.startswith(FORMULA_START).fillna(False)
            if risky.any():
                out[column] = values.astype(object).where(~risky, "'" + text.astype(object))
    return out


def write_sites_file(sites: gpd.GeoDataFrame, path: str | os.PathLike[str]) -> Path:
    """Write sites to ``.csv``, ``.geojson`` or ``.gpkg`` (chosen by the extension)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".geojson", ".json", ".gpkg"):
        raise ConfigurationError(
            f"cannot export to {p.name}: use a .csv, .geojson or .gpkg file name"
        )
    if not p.parent.is_dir():
        raise ConfigurationError(f"cannot write {p}: folder {p.parent} does not exist")
    frame = sites.copy()
    for column in frame.columns:
        if column != frame.geometry.name and frame[column].dtype == object:
            frame[column] = frame[column].map(
                lambda v: v if v is None or isinstance(v, str | int | float | bool) else str(v)
            )
    if suffix == ".gpkg":
        frame.to_file(p, layer="sites", driver="GPKG", engine="pyogrio")
        return p
    if suffix in (".geojson", ".json"):
        if p.exists():
            p.unlink()
        frame.to_crs("EPSG:4326").to_file(p, driver="GeoJSON", engine="pyogrio")
        return p
    table = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    geoms = frame.geometry
    located = geoms.notna() & ~geoms.is_empty
    table["easting"] = np.where(located, geoms.x.where(located), np.nan)
    table["northing"] = np.where(located, geoms.y.where(located), np.nan)
    wgs = geoms.to_crs("EPSG:4326")
    table["longitude"] = np.where(located, wgs.x.where(located), np.nan)
    table["latitude"] = np.where(located, wgs.y.where(located), np.nan)
    # CRLF line ends (RFC 4180): the csv module then quotes any cell holding a bare
    # carriage return, which would otherwise split the row in every CSV reader.
    neutralise_formulas(table).to_csv(p, index=False, lineterminator="\r\n")
    return p
