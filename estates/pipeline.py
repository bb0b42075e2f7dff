"""The analysis API: database -> pure analysis -> stored run.

Each ``run_*`` function reads the sites (and boundaries) it needs, calls the pure
functions of :mod:`estates.analysis`, stores the run (parameters, code version, time,
summary, per-site results, drawn features) and returns the frames with the run id, so
every number can be traced back with :func:`load_run`.

Examples
--------
>>> import estates
>>> from estates.pipeline import run_flags
>>> estate = estates.connect("my_estate.gpkg")  # doctest: +SKIP
>>> run = run_flags(estate)            # doctest: +SKIP
>>> run.summary["flag_counts"]         # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from estates.analysis.colocation import DEFAULT_DISTANCE_M, colocate
from estates.analysis.flags import FLAG_NAMES, FLAGGED, NOT_ASSESSABLE, flag_sites
from estates.analysis.measures import DERIVED_COLUMNS, RUNNING_COST_DEFINITION
from estates.analysis.pooling import PoolingScenario, pool_footprint
from estates.analysis.sensitivity import SWEPT, flag_sensitivity
from estates.analysis.settings import AnalysisSettings, load_settings
from estates.db import boundaries as db_boundaries
from estates.db import runs, store
from estates.errors import NotFoundError
from estates.estate import Estate
from estates.parallel import forked
from estates.settings import WORKING_CRS

log = logging.getLogger(__name__)

#: Site attributes stored with every per-site result, so a past run draws as it was.
IDENTITY = (
    "source_key",
    "name",
    "organisation_code",
    "organisation_name",
    "sector",
    "site_type",
    "postcode",
    "tenure",
    "occupancy",
    "gia_m2",
    "land_ha",
    "non_geographic",
    "period",
)
MEASURE_VALUES = (
    "empty_pct",
    "underused_pct",
    "unutilised_pct",
    "not_functionally_suitable_pct",
    "running_cost_gbp",
    "backlog_high_gbp",
    "backlog_significant_gbp",
    "backlog_moderate_gbp",
    "backlog_low_gbp",
    "land_not_delivering_ha",
    *DERIVED_COLUMNS,
)
#: Small-area boundary kinds for access, in order of preference.
ACCESS_AREA_KINDS = ("lsoa", "msoa")


def _version() -> str:
    from estates import __version__

    return __version__


@dataclass
class FlagRun:
    """A stored flags run: every site with measures, rule statuses and sentences."""

    run_id: int
    sites: gpd.GeoDataFrame
    summary: dict[str, Any]


@dataclass
class ColocationRun:
    """A stored co-location run: sites with ``cluster_id`` and the clusters (hulls)."""

    run_id: int
    sites: gpd.GeoDataFrame
    clusters: gpd.GeoDataFrame
    summary: dict[str, Any]


@dataclass
class PoolingRun:
    """A stored pooling scenario (sites with roles, flows, access) and its headline."""

    run_id: int
    scenario: PoolingScenario
    summary: dict[str, Any]

    @property
    def sites(self) -> gpd.GeoDataFrame:
        return self.scenario.sites

    @property
    def flows(self) -> gpd.GeoDataFrame:
        return self.scenario.flows

    @property
    def access(self) -> gpd.GeoDataFrame:
        return self.scenario.access


@dataclass
class SensitivityRun:
    """A stored sensitivity sweep: per site, the share of settings under which it is flagged."""

    run_id: int
    sites: gpd.GeoDataFrame
    summary: dict[str, Any]


@dataclass
class StoredRun:
    """A past run read back: its row, its per-site results (with points) and its layers."""

    run_id: int
    kind: str
    footprint: str | None
    period: str | None
    parameters: dict[str, Any]
    summary: dict[str, Any]
    code_version: str
    created_at: datetime
    sites: gpd.GeoDataFrame
    layers: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)


# --- reading the inputs ------------------------------------------------------------------


def _sites(estate: Estate, footprint: str | None, period: str | None) -> gpd.GeoDataFrame:
    sites = estate.sites(footprint=footprint, measures=True, period=period)
    if footprint is not None and sites.empty:
        with estate.read() as connection:
            known = runs.footprint_codes(connection)
        raise NotFoundError(
            f"footprint {footprint!r} has no sites; footprints with sites: "
            f"{known[:20] or 'none (load boundaries first)'}"
        )
    return sites


def _peers(
    estate: Estate,
    footprint: str | None,
    period: str | None,
    settings: AnalysisSettings,
) -> gpd.GeoDataFrame | None:
    if footprint is None or settings.peer_scope == "footprint":
        return None
    return estate.sites(measures=True, period=period)


def _periods(sites: pd.DataFrame) -> list[str]:
    if "period" not in sites:
        return []
    return sorted({str(p) for p in sites["period"].dropna()})


def _store_run(
    estate: Estate,
    *,
    kind: str,
    footprint: str | None,
    period: str | None,
    parameters: dict[str, Any],
    summary: dict[str, Any],
    results: runs.EncodedResults,
) -> int:
    with estate.write() as connection:
        run_id = runs.create_run(
            connection,
            kind=kind,
            footprint=footprint,
            period=period,
            parameters=parameters,
            code_version=_version(),
        )
        summary["run_id"] = run_id
        runs.write_results(connection, run_id, results)
        runs.set_summary(connection, run_id, summary)
    return run_id


# --- flags -------------------------------------------------------------------------------


def flag_summary(sites: pd.DataFrame, settings: AnalysisSettings) -> dict[str, Any]:
    """Counts per rule, sites with any flag and total spare floor area of assessed sites."""
    assessed = ~sites["non_geographic"].fillna(False).astype(bool)
    return {
        "sites": len(sites),
        "sites_assessed": int(assessed.sum()),
        "pooled_rows_not_assessed": int((~assessed).sum()),
        "flag_counts": {n: int((sites[f"flag_{n}"] == FLAGGED).sum()) for n in FLAG_NAMES},
        "not_assessable": {
            n: int((sites[f"flag_{n}"] == NOT_ASSESSABLE).sum()) for n in FLAG_NAMES
        },
        "sites_with_any_flag": int((sites["flag_count"] > 0).sum()),
        "total_spare_m2": float(np.nansum(sites.loc[assessed, "spare_m2"])),
        "pooled_rows_spare_m2": float(np.nansum(sites.loc[~assessed, "spare_m2"])),
        "thresholds": {
            "underused_space_max_pct": settings.underused_space_max_pct,
            "peer_quantile": settings.peer_quantile,
            "min_peer_group": settings.min_peer_group,
            "peer_scope": settings.peer_scope,
            "not_functionally_suitable_max_pct": settings.not_functionally_suitable_max_pct,
            "surplus_land_min_ha": settings.surplus_land_min_ha,
        },
        "running_cost": RUNNING_COST_DEFINITION,
        "settings_file": settings.source,
    }


def run_flags(
    estate: Estate,
    *,
    footprint: str | None = None,
    period: str | None = None,
    settings: AnalysisSettings | None = None,
) -> FlagRun:
    """Measure and flag every site (of a footprint), store the run and return it."""
    started = time.perf_counter()
    settings = settings or load_settings()
    sites = _sites(estate, footprint, period)
    return _flag_run(estate, sites, footprint, period, settings, started)


def _flag_run(
    estate: Estate,
    sites: gpd.GeoDataFrame,
    footprint: str | None,
    period: str | None,
    settings: AnalysisSettings,
    started: float,
) -> FlagRun:
    peers = _peers(estate, footprint, period, settings)
    flagged = flag_sites(sites, settings, peers=peers)
    summary = {
        "kind": "flags",
        "footprint": footprint,
        "period": period,
        "periods": _periods(flagged),
        **flag_summary(flagged, settings),
    }
    columns = [
        *IDENTITY,
        *MEASURE_VALUES,
        *(f"flag_{n}" for n in FLAG_NAMES),
        *(f"reason_{n}" for n in FLAG_NAMES),
        "flags",
        "flag_count",
        "flag_sentences",
    ]
    run_id = _store_run(
        estate,
        kind="flags",
        footprint=footprint,
        period=period,
        parameters=settings.to_dict(),
        summary=summary,
        results=runs.encode_results(flagged, columns),
    )
    summary["elapsed_s"] = round(time.perf_counter() - started, 3)
    return FlagRun(run_id, flagged, summary)


# --- co-location -------------------------------------------------------------------------


def colocation_summary(
    sites: pd.DataFrame, clusters: pd.DataFrame, distance_m: float, top: int = 10
) -> dict[str, Any]:
    best = clusters.sort_values(["combined_spare_m2", "n_sites"], ascending=False).head(top)
    return {
        "distance_m": distance_m,
        "sites": len(sites),
        "cluster_count": len(clusters),
        "sites_in_clusters": int(sites["cluster_id"].notna().sum()),
        "largest_cluster_sites": int(clusters["n_sites"].max()) if len(clusters) else 0,
        "top_clusters": [
            runs.jsonable(r)
            for r in pd.DataFrame(
                best[
                    [
                        "cluster_id",
                        "n_sites",
                        "n_organisations",
                        "organisations",
                        "sectors",
                        "combined_gia_m2",
                        "combined_spare_m2",
                        "vacant_council_assets",
                    ]
                ]
            ).to_dict(orient="records")
        ],
    }


def run_colocation(
    estate: Estate,
    *,
    footprint: str | None = None,
    distance_m: float = DEFAULT_DISTANCE_M,
    period: str | None = None,
    sites: gpd.GeoDataFrame | None = None,
) -> ColocationRun:
    """Find co-location clusters among the sites (of a footprint), store the run.

    ``sites``: the same footprint's and period's sites as already read, e.g. a flag run's
    (:attr:`FlagRun.sites`), so a map of both needs one read of the site table (10 s for
    500,000 sites), and the run's sites carry the flags too.
    """
    started = time.perf_counter()
    if sites is None:
        sites = _sites(estate, footprint, period)
    return _store_colocation(estate, _colocation(sites, distance_m, footprint, period), started)


@dataclass
class _Colocated:
    """Co-location results, encoded to store (:func:`_colocation`)."""

    #: The input sites with their measures and ``cluster_id`` (None when sent back from a
    #: forked child: the parent adds ``cluster_id`` to its own copy of the sites).
    sites: gpd.GeoDataFrame | None
    cluster_id: pd.arrays.IntegerArray  # per site of the input, <NA> outside clusters
    clusters: gpd.GeoDataFrame
    summary: dict[str, Any]
    results: runs.EncodedResults
    parameters: dict[str, Any]
    footprint: str | None
    period: str | None


def _colocation(
    sites: gpd.GeoDataFrame, distance_m: float, footprint: str | None, period: str | None
) -> _Colocated:
    """Everything of a co-location run but the write: no database, so it can run anywhere."""
    located, clusters = colocate(sites, distance_m)
    summary = {
        "kind": "colocation",
        "footprint": footprint,
        "period": period,
        **colocation_summary(located, clusters, distance_m),
    }
    columns = [*IDENTITY, "spare_m2", "cluster_id"]
    # Only this run's columns: sites handed over from a flag run keep their flags out of
    # the co-location run's stored results.
    stored = located[[c for c in ("site_id", *columns) if c in located]]
    return _Colocated(
        sites=located,
        cluster_id=located["cluster_id"].array,
        clusters=clusters,
        summary=summary,
        results=runs.encode_results(stored, columns, layers={"clusters": (clusters, "cluster_id")}),
        parameters={
            "distance_m": distance_m,
            "definition": "connected components, >= 2 organisations",
        },
        footprint=footprint,
        period=period,
    )


def _forked_colocation(
    sites: gpd.GeoDataFrame, distance_m: float, footprint: str | None, period: str | None
) -> _Colocated:
    """:func:`_colocation` in a forked child: all but the 500,000-row frame goes back."""
    found = _colocation(sites, distance_m, footprint, period)
    found.sites = None
    return found


def _store_colocation(estate: Estate, found: _Colocated, started: float) -> ColocationRun:
    """Store a :func:`_colocation` result (with its sites) as a run."""
    assert found.sites is not None
    run_id = _store_run(
        estate,
        kind="colocation",
        footprint=found.footprint,
        period=found.period,
        parameters=found.parameters,
        summary=found.summary,
        results=found.results,
    )
    found.summary["elapsed_s"] = round(time.perf_counter() - started, 3)
    return ColocationRun(run_id, found.sites, found.clusters, found.summary)


def run_flags_and_colocation(
    estate: Estate,
    *,
    footprint: str | None = None,
    period: str | None = None,
    distance_m: float = DEFAULT_DISTANCE_M,
    settings: AnalysisSettings | None = None,
) -> tuple[FlagRun, ColocationRun]:
    """:func:`run_flags`, then :func:`run_colocation` of its sites, on one read of them.

    The same two runs, results and run ids (flags first) as calling the two in turn. On
    Linux the co-location is found and encoded in a forked process (which shares the
    sites read here, and never touches the database) while the flags are computed and
    stored here: on two cores the pair takes about the longer of the two, not the sum.
    """
    started = time.perf_counter()
    settings = settings or load_settings()
    sites = _sites(estate, footprint, period)
    with forked(_forked_colocation, sites, distance_m, footprint, period) as colocation:
        flags = _flag_run(estate, sites, footprint, period, settings, started)
        found = colocation()
    # What colocate() makes of sites that carry their measures (the flag run's): a
    # shallow copy with cluster_id.
    found.sites = flags.sites.copy(deep=False)
    found.sites["cluster_id"] = pd.Series(found.cluster_id, index=flags.sites.index)
    return flags, _store_colocation(estate, found, started)


# --- pooling -----------------------------------------------------------------------------


def access_areas(
    estate: Estate, footprint: str, sites: gpd.GeoDataFrame
) -> tuple[gpd.GeoDataFrame | None, str]:
    """Small areas for the access figures and a sentence saying which were used.

    LSOA boundaries if loaded, else MSOA, else none; those whose centroid lies in the
    footprint polygon (or, when that polygon is not loaded, within the hull of the
    footprint's sites).
    """
    with estate.read() as connection:
        kinds = db_boundaries.boundary_kinds(connection)
        kind = next((k for k in ACCESS_AREA_KINDS if k in kinds), None)
        if kind is None:
            return None, "no LSOA or MSOA boundaries loaded: access not measured"
        areas = db_boundaries.read_boundaries(connection, kind=kind)
        outline = db_boundaries.read_boundaries(connection, codes=[footprint])
    centroids = shapely.centroid(np.asarray(areas.geometry.values, dtype=object))
    if len(outline):
        region = shapely.union_all(np.asarray(outline.geometry.values, dtype=object))
        where = f"centroid in footprint {footprint}"
    else:
        points = np.asarray(sites.geometry.dropna().values, dtype=object)
        region = shapely.convex_hull(shapely.multipoints(points)) if len(points) else None
        where = "centroid within the hull of the footprint's sites"
    if region is None:
        return None, "no located sites: access not measured"
    keep = np.asarray(shapely.covers(region, centroids), dtype=bool)
    chosen = areas.loc[keep, ["code", "name", "geometry"]].reset_index(drop=True)
    return chosen, f"{len(chosen)} {kind.upper()} areas ({where})"


def run_pooling(
    estate: Estate,
    *,
    footprint: str,
    max_distance_m: float | None = None,
    settings: AnalysisSettings | None = None,
    period: str | None = None,
) -> PoolingRun:
    """Build the one-body pooling scenario for a footprint, store the run and return it."""
    started = time.perf_counter()
    settings = settings or load_settings()
    sites = _sites(estate, footprint, period)
    peers = _peers(estate, footprint, period, settings)
    flagged = flag_sites(sites, settings, peers=peers)
    areas, areas_note = access_areas(estate, footprint, sites)
    scenario = pool_footprint(flagged, settings, areas=areas, max_distance_m=max_distance_m)
    headline = scenario.headline
    summary = {
        "kind": "pool",
        "footprint": footprint,
        "period": period,
        "periods": _periods(flagged),
        "access_areas": areas_note,
        **headline,
    }
    site_columns = [
        *IDENTITY,
        *MEASURE_VALUES,
        *(f"flag_{n}" for n in FLAG_NAMES),
        "flags",
        "flag_count",
        "flag_sentences",
        "role",
        "pool_reason",
        "floor_area_moved_m2",
        "floor_area_received_m2",
        "receiving_capacity_m2",
        "running_cost_saved_gbp",
        *(f"backlog_avoided_{r}_gbp" for r in ("high", "significant", "moderate", "low")),
        "land_released_ha",
        "indicative_receipt_gbp",
        "receipt_basis",
    ]
    flows = scenario.flows.assign(
        key=lambda f: f["from_site_id"].astype(str) + "->" + f["to_site_id"].astype(str)
    )
    access = scenario.access.assign(
        key=lambda a: a["code"].astype(str) + ":" + a["sector"].astype(str)
    )
    parameters = settings.to_dict()
    parameters["max_distance_m"] = headline["max_distance_m"]
    run_id = _store_run(
        estate,
        kind="pool",
        footprint=footprint,
        period=period,
        parameters=parameters,
        summary=summary,
        results=runs.encode_results(
            scenario.sites,
            site_columns,
            roles=scenario.sites["role"].tolist(),
            layers={"flows": (flows, "key"), "access": (access, "key")},
        ),
    )
    summary["elapsed_s"] = round(time.perf_counter() - started, 3)
    return PoolingRun(run_id, scenario, summary)


# --- sensitivity -------------------------------------------------------------------------


def run_sensitivity(
    estate: Estate,
    *,
    footprint: str | None = None,
    period: str | None = None,
    settings: AnalysisSettings | None = None,
) -> SensitivityRun:
    """Sweep the main thresholds; store, per site, the share of settings that flag it."""
    started = time.perf_counter()
    settings = settings or load_settings()
    sites = _sites(estate, footprint, period)
    peers = _peers(estate, footprint, period, settings)
    shares = flag_sensitivity(sites, settings, peers=peers)
    frame = gpd.GeoDataFrame(
        shares, geometry=gpd.GeoSeries(sites.geometry.values, crs=WORKING_CRS, index=shares.index)
    )
    robustness = frame["robustness"].value_counts().to_dict()
    summary = {
        "kind": "sensitivity",
        "footprint": footprint,
        "period": period,
        "sites": len(frame),
        "settings_swept": int(frame["settings_swept"].iloc[0]) if len(frame) else 0,
        "ranges": {name: list(getattr(settings, attr)) for name, attr in SWEPT.items()},
        "robustness": {str(k): int(v) for k, v in robustness.items()},
        "mean_share_flagged": runs.jsonable(float(frame["share_flagged"].mean())),
    }
    value_columns = [c for c in frame.columns if c not in ("site_id", "geometry")]
    run_id = _store_run(
        estate,
        kind="sensitivity",
        footprint=footprint,
        period=period,
        parameters=settings.to_dict(),
        summary=summary,
        results=runs.encode_results(frame, value_columns),
    )
    summary["elapsed_s"] = round(time.perf_counter() - started, 3)
    return SensitivityRun(run_id, frame, summary)


# --- reading runs back -------------------------------------------------------------------


def load_run(estate: Estate, run_id: int) -> StoredRun:
    """A past run: its parameters and summary, its per-site results and its layers.

    Site points come from the ``site`` table (sites that have since been deleted have
    no geometry); every figure and sentence comes from the stored run.
    """
    with estate.read() as connection:
        row = runs.read_run(connection, run_id)
        results = runs.read_site_results(connection, run_id)
        layers = runs.read_features(connection, run_id)
        points = store.read_site_points(connection)
    merged = results.merge(pd.DataFrame(points), on="site_id", how="left")
    sites = gpd.GeoDataFrame(
        merged.drop(columns=["geometry"]),
        geometry=gpd.GeoSeries(merged["geometry"].values, crs=WORKING_CRS, index=merged.index),
    )
    if "cluster_id" in sites:
        sites["cluster_id"] = pd.array(sites["cluster_id"], dtype="Int64")
    layers = {
        name: frame.drop(columns=[c for c in ("key",) if c in frame])
        for name, frame in layers.items()
    }
    return StoredRun(
        run_id=int(row["id"]),
        kind=row["kind"],
        footprint=row["footprint"],
        period=row["period"],
        parameters=row["parameters"] or {},
        summary=row["summary"] or {},
        code_version=row["code_version"],
        created_at=row["created_at"],
        sites=sites,
        layers=layers,
    )


def latest_run(estate: Estate, kind: str | None = None) -> int:
    """The id of the newest run (of a kind); :class:`NotFoundError` when there is none."""
    with estate.read() as connection:
        run_id = runs.latest_run_id(connection, kind)
    if run_id is None:
        raise NotFoundError(
            f"no {kind + ' ' if kind else ''}analysis run in this database yet; run "
            "`estates analyse`, `colocate`, `pool` or `sensitivity` first"
        )
    return int(run_id)
