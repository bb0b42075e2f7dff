"""Maps from the database: run (or load) the analysis, then draw and save it.

The glue between :mod:`estates.pipeline` (database -> analysis -> stored run) and
:mod:`estates.maps` (frames -> HTML), so that ``estates map``, ``estates demo`` and
Python users make the same map the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import geopandas as gpd
import pandas as pd

from estates import maps, pipeline
from estates.errors import ConfigurationError, NotFoundError
from estates.estate import Estate


def _boundaries(
    estate: Estate, footprint: str | None, sites: pd.DataFrame
) -> gpd.GeoDataFrame | None:
    """The footprint's districts (or the footprint itself), or the districts the sites lie in."""
    codes: list[str] = []
    if "lad_code" in sites.columns:
        codes = sorted({str(c) for c in sites["lad_code"].dropna()})
    frame = estate.boundaries(kind="lad", codes=codes) if codes else None
    if (frame is None or not len(frame)) and footprint is not None:
        frame = estate.boundaries(codes=[footprint])
    return frame if frame is not None and len(frame) else None


def _title(kind: str, footprint: str | None, estate: Estate) -> str:
    base = "Public estate" if kind == "sites" else "One-body pooling scenario"
    if footprint is None:
        return base
    found = estate.boundaries(codes=[footprint])
    name = str(found["name"].iloc[0]) if len(found) and found["name"].iloc[0] else None
    return f"{base}: {name} ({footprint})" if name else f"{base}: {footprint}"


def sites_map_frames(
    estate: Estate,
    *,
    footprint: str | None = None,
    period: str | None = None,
    run_id: int | None = None,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame | None, str | None, dict[str, Any]]:
    """Sites (with flags and cluster ids), clusters, footprint and what ran: stored or fresh."""
    if run_id is not None:
        run = pipeline.load_run(estate, run_id)
        return run.sites, run.layers.get("clusters"), run.footprint, {"runs": {"run": run.run_id}}
    flags, coloc = pipeline.run_flags_and_colocation(estate, footprint=footprint, period=period)
    runs = {"flags_run": flags.run_id, "colocation_run": coloc.run_id}
    return (
        coloc.sites,
        coloc.clusters,
        footprint,
        {"runs": runs, "flags": flags.summary, "colocation": coloc.summary},
    )


def pooling_scenario(
    estate: Estate,
    *,
    footprint: str | None = None,
    period: str | None = None,
    run_id: int | None = None,
) -> tuple[Any, str | None, dict[str, Any]]:
    """A pooling scenario: a stored run by id, or a fresh one for ``footprint``."""
    if run_id is not None:
        run = pipeline.load_run(estate, run_id)
        if run.kind != "pool":
            raise NotFoundError(
                f"run {run_id} is a {run.kind!r} run, not a pooling scenario: pass the id of an "
                "`estates pool` run, or --footprint CODE to build one"
            )
        scenario = SimpleNamespace(
            sites=run.sites,
            flows=run.layers.get("flows"),
            access=run.layers.get("access"),
            headline=run.summary,
        )
        return scenario, run.footprint, {"runs": {"run": run.run_id}, "headline": run.summary}
    if footprint is None:
        raise ConfigurationError(
            "a pooling map needs a footprint code (or the id of a pooling run)"
        )
    pooled = pipeline.run_pooling(estate, footprint=footprint, period=period)
    return (
        pooled.scenario,
        footprint,
        {"runs": {"pooling_run": pooled.run_id}, "headline": pooled.scenario.headline},
    )


def write_sites_map(
    estate: Estate,
    *,
    output: str | os.PathLike[str],
    footprint: str | None = None,
    period: str | None = None,
    run_id: int | None = None,
    fast_threshold: int | None = None,
    tiles: str | None = "OpenStreetMap",
) -> dict[str, Any]:
    """Draw the site map (flags, clusters, boundaries) and save it; return what was written."""
    sites, clusters, footprint, extra = sites_map_frames(
        estate, footprint=footprint, period=period, run_id=run_id
    )
    drawn = maps.sites_map(
        sites,
        boundaries=_boundaries(estate, footprint, sites),
        clusters=clusters,
        title=_title("sites", footprint, estate),
        fast_threshold=fast_threshold,
        tiles=tiles,
    )
    return {**maps.save_map(drawn, Path(output)), **extra, "footprint": footprint}


def write_pooling_map(
    estate: Estate,
    *,
    output: str | os.PathLike[str],
    footprint: str | None = None,
    period: str | None = None,
    run_id: int | None = None,
    fast_threshold: int | None = None,
    tiles: str | None = "OpenStreetMap",
) -> dict[str, Any]:
    """Draw a one-body pooling scenario and save it; return what was written."""
    scenario, footprint, extra = pooling_scenario(
        estate, footprint=footprint, period=period, run_id=run_id
    )
    drawn = maps.pooling_map(
        scenario,
        boundaries=_boundaries(estate, footprint, scenario.sites),
        title=_title("pooling", footprint, estate),
        fast_threshold=fast_threshold,
        tiles=tiles,
    )
    return {**maps.save_map(drawn, Path(output)), **extra, "footprint": footprint}
