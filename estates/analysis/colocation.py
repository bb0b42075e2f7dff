"""Cross-organisation co-location clusters.

Definition (kept exactly, so results are reproducible): two located sites are *linked*
when their straight-line distance in EPSG:27700 is at most ``distance_m`` metres (default
800, about ten minutes' walk); *clusters* are the connected components of that graph; a
*co-location cluster* is a component holding sites of at least two different
organisations. Pooled non-geographic rows and unlocated sites take no part.

Pairs come from a spatial index (a k-d tree over the points, :func:`link_pairs`) and
components from SciPy's sparse ``connected_components``: no Python loop over pairs.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from estates.analysis.measures import site_measures
from estates.db.store import require_working_crs
from estates.settings import WORKING_CRS

log = logging.getLogger(__name__)

DEFAULT_DISTANCE_M = 800.0
#: The hull polygon drawn for a cluster: convex hull of its sites buffered by this.
HULL_BUFFER_M = 50.0
CLUSTER_COLUMNS = (
    "cluster_id",
    "n_sites",
    "n_organisations",
    "organisations",
    "organisation_codes",
    "sectors",
    "combined_gia_m2",
    "combined_spare_m2",
    "vacant_council_assets",
    "vacant_council_gia_m2",
    "site_ids",
)


def located_mask(sites: gpd.GeoDataFrame) -> np.ndarray:
    """Sites that take part in spatial analysis: a point, and not a pooled row."""
    geoms = np.asarray(sites.geometry.values, dtype=object)
    ok = ~shapely.is_missing(geoms)
    ok[ok] = ~shapely.is_empty(geoms[ok])
    if "non_geographic" in sites:
        ok &= ~sites["non_geographic"].fillna(False).astype(bool).to_numpy()
    return ok


def link_pairs(geoms: np.ndarray, distance_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of points at most ``distance_m`` apart, each pair once.

    A k-d tree over the coordinates (SciPy ``cKDTree.query_pairs``, inclusive of the
    distance) answers exactly what an STRtree ``dwithin`` query does for points, but
    without testing every pair twice and every point against itself: about 14x faster at
    500,000 sites (benchmarks/RESULTS.md).
    """
    if len(geoms) < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    xy = shapely.get_coordinates(geoms)
    if len(xy) != len(geoms):
        raise ValueError(
            "link_pairs takes one point per site (no missing or multi-part geometries)"
        )
    pairs = cKDTree(xy).query_pairs(distance_m, output_type="ndarray")
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)


def link_components(geoms: np.ndarray, distance_m: float) -> np.ndarray:
    """Component label of each point of the 'within ``distance_m``' graph (k-d tree + sparse)."""
    n = len(geoms)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    left, right = link_pairs(geoms, distance_m)
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def colocate(
    sites: gpd.GeoDataFrame, distance_m: float = DEFAULT_DISTANCE_M
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Find co-location clusters: sites of two or more organisations within ``distance_m``.

    Returns
    -------
    (sites, clusters)
        ``sites``: a copy of the input with the measures and ``cluster_id`` (nullable
        Int64, <NA> when the site is in no co-location cluster). ``clusters``: one row per
        cluster (numbered 1.. in order of their first site in the input) with
        :data:`CLUSTER_COLUMNS` and a hull polygon ``geometry`` in EPSG:27700.
    """
    require_working_crs(sites, "the site frame")
    if not distance_m > 0:
        raise ValueError(f"distance_m must be a positive number of metres, got {distance_m!r}")
    out = site_measures(sites) if "spare_m2" not in sites else sites.copy()
    out["cluster_id"] = pd.array([pd.NA] * len(out), dtype="Int64")
    mask = located_mask(out)
    idx = np.flatnonzero(mask)
    geoms = np.asarray(out.geometry.values, dtype=object)[idx]
    labels = link_components(geoms, distance_m)
    orgs = out["organisation_code"].astype(str).to_numpy()[idx]
    part = pd.DataFrame({"row": idx, "label": labels, "org": orgs})
    n_orgs = part.groupby("label")["org"].nunique()
    keep = n_orgs.index[n_orgs >= 2]
    part = part[part["label"].isin(keep)]
    # Number clusters by the position of their first site, so ids are stable for a given input.
    first = part.groupby("label")["row"].min().sort_values()
    number = pd.Series(np.arange(1, len(first) + 1), index=first.index)
    part = part.assign(cluster_id=part["label"].map(number).to_numpy())
    cluster_col = out.columns.get_loc("cluster_id")
    assert isinstance(cluster_col, int)
    out.iloc[part["row"].to_numpy(), cluster_col] = part["cluster_id"].to_numpy()
    clusters = _summarise(out, part, distance_m)
    log.info(
        "%d co-location clusters at %g m holding %d of %d located sites",
        len(clusters),
        distance_m,
        len(part),
        len(idx),
    )
    return out, clusters


def _summarise(out: gpd.GeoDataFrame, part: pd.DataFrame, distance_m: float) -> gpd.GeoDataFrame:
    members = out.iloc[part["row"].to_numpy()].copy()
    members["cluster_id"] = part["cluster_id"].to_numpy()
    members = members.sort_values("cluster_id", kind="stable")
    names = members.get("organisation_name")
    members["org_label"] = (
        names.fillna(members["organisation_code"])
        if names is not None
        else members["organisation_code"]
    ).astype(str)
    occupancy = (
        members["occupancy"] if "occupancy" in members else pd.Series(None, index=members.index)
    )
    members["vacant_council"] = (members["sector"] == "council") & occupancy.astype(
        str
    ).str.lower().str.contains("vacant")
    members["vacant_gia"] = members["gia_m2"].where(members["vacant_council"], 0.0).fillna(0.0)
    grouped = members.groupby("cluster_id", sort=True)

    def joined(column: str) -> pd.Series:
        return grouped[column].agg(lambda s: ";".join(sorted(set(s.dropna().astype(str)))))

    table = pd.DataFrame(
        {
            "n_sites": grouped.size(),
            "n_organisations": grouped["organisation_code"].nunique(),
            "organisations": joined("org_label"),
            "organisation_codes": joined("organisation_code"),
            "sectors": joined("sector"),
            "combined_gia_m2": grouped["gia_m2"].sum(min_count=0),
            "combined_spare_m2": grouped["spare_m2"].sum(min_count=0),
            "vacant_council_assets": grouped["vacant_council"].sum().astype("int64"),
            "vacant_council_gia_m2": grouped["vacant_gia"].sum(),
            "site_ids": grouped["site_id"].agg(lambda s: [int(v) for v in s]),
        }
    )
    order = np.searchsorted(table.index.to_numpy(), members["cluster_id"].to_numpy())
    multipoints = shapely.multipoints(
        np.asarray(members.geometry.values, dtype=object), indices=order
    )
    table["geometry"] = shapely.buffer(shapely.convex_hull(multipoints), HULL_BUFFER_M)
    table = table.reset_index()
    if table.empty:
        table = pd.DataFrame({c: pd.Series(dtype=object) for c in CLUSTER_COLUMNS})
        table["geometry"] = None
    table["cluster_id"] = table["cluster_id"].astype("int64")
    table["distance_m"] = float(distance_m)
    return gpd.GeoDataFrame(table, geometry="geometry", crs=WORKING_CRS)
