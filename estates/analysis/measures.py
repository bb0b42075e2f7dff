"""Per-site measures derived from the stored figures (pure, vectorised, EPSG:27700).

Definitions (kept here so every number on a map can be traced):

- ``spare_pct``: empty % + under-used % of GIA (ERIC 2019/20 on), or ``Un-utilised space
  (%)`` for the years that report that single field instead (2016/17 to 2018/19).
- ``spare_m2`` = GIA x ``spare_pct`` / 100.
- ``occupied_floor_area_m2``: the source's ``Occupied floor area (m²)`` when given (ERIC
  2021/22 on); otherwise GIA x (100 - ``spare_pct``) / 100, i.e. the floor area in use.
  ERIC 2019/20's ``NHS estate occupied floor area (%)`` is *not* used: it is the share of
  GIA occupied by the NHS (the rest may be let to other bodies, which still occupy it).
- ``running_cost_per_m2`` = running cost / GIA. The running cost is ERIC estates and
  facilities running costs, excluding capital charges (depreciation, PDC, interest on
  capital) and backlog, as summed by the ERIC loader.
- ``backlog_<risk>_per_m2`` = cost to eradicate that risk's backlog / GIA;
  ``backlog_high_significant_per_m2`` = (high + significant) / GIA;
  ``backlog_per_m2`` = all four risks / GIA (missing when any risk is missing).

A figure needing a missing input, or a GIA that is missing or zero, stays missing (NaN):
it is never read as zero.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from estates.db.store import MEASURE_FIELDS

RISKS = ("high", "significant", "moderate", "low")
RUNNING_COST_DEFINITION = (
    "running cost (ERIC estates and facilities running costs, excluding capital charges)"
)
DERIVED_COLUMNS = (
    "spare_pct",
    "spare_m2",
    "occupied_floor_area_m2",
    "running_cost_per_m2",
    "backlog_high_significant_per_m2",
    "backlog_per_m2",
    *(f"backlog_{risk}_per_m2" for risk in RISKS),
)


def numeric_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as float64 (NaN when missing or not a number; all NaN when absent)."""
    if column not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64")


def text_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as objects with None for missing values (all None when absent)."""
    if column not in frame:
        return np.full(len(frame), None, dtype=object)
    series = frame[column].astype(object)
    return series.where(series.notna(), None).to_numpy(dtype=object)


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(np.nan, index=frame.index, dtype="float64")
    return pd.to_numeric(frame[column], errors="coerce").astype("float64")


def site_measures(sites: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return a copy of ``sites`` with the derived measures added as columns.

    ``sites`` is the canonical site frame with measure columns (``estate.sites(measures=True)``);
    absent measure columns count as missing. The input is not modified.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> sites = gpd.GeoDataFrame(
    ...     {"gia_m2": [12_400.0], "empty_pct": [6.1], "underused_pct": [3.0]},
    ...     geometry=[shapely.Point(380_000, 395_000)], crs="EPSG:27700")
    >>> round(float(site_measures(sites)["spare_m2"].iloc[0]), 1)
    1128.4
    """
    # Copy-on-write (pandas 3): a shallow copy shares the input's columns until one is
    # replaced, which never writes to the input and saves copying every column.
    out = sites.copy(deep=False)
    for column in MEASURE_FIELDS:
        if column not in out:
            out[column] = np.nan
    gia = _numeric(out, "gia_m2")
    per_m2_base = gia.where(gia > 0)
    unutilised = _numeric(out, "unutilised_pct")
    spare_pct = unutilised.where(
        unutilised.notna(), _numeric(out, "empty_pct") + _numeric(out, "underused_pct")
    )
    out["spare_pct"] = spare_pct
    out["spare_m2"] = gia * spare_pct / 100.0
    given_occupied = _numeric(out, "occupied_floor_area_m2")
    out["occupied_floor_area_m2"] = given_occupied.where(
        given_occupied.notna(), gia * (100.0 - spare_pct).clip(lower=0.0) / 100.0
    )
    out["running_cost_per_m2"] = _numeric(out, "running_cost_gbp") / per_m2_base
    backlog = {risk: _numeric(out, f"backlog_{risk}_gbp") for risk in RISKS}
    for risk in RISKS:
        out[f"backlog_{risk}_per_m2"] = backlog[risk] / per_m2_base
    out["backlog_high_significant_per_m2"] = (
        backlog["high"] + backlog["significant"]
    ) / per_m2_base
    out["backlog_per_m2"] = sum(backlog.values()) / per_m2_base  # NaN if any risk missing
    return out
