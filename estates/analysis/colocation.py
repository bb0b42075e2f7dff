"""Cross-organisation co-location clusters.

Definition (kept exactly, so results are reproducible): two located sites are *linked*
when their straight-line distance in EPSG:27700 is at most ``distance_m`` metres (default
800, about ten minutes' walk); *clusters* are the connected components of that graph; a
*co-location cluster* is a component holding sites of at least two different
organisations. Pooled non-geographic rows and unlocated sites take no part.

Components come from a grid of cells small enough that touching cells are always
linked, plus a k-d tree (:func:`link_pairs`) over the few points where that does not
decide, and SciPy's sparse ``connected_components`` (:func:`link_components`); cluster
figures from integer codes of each column (``pd.factorize``): no Python loop over pairs,
sites or clusters' members.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

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
#: Cells of padding around the grid: the farthest cell that can hold a linked point.
_REACH = 3
#: Half of the cell offsets two or three cells away (the other half is the reverse).
_NEAR = tuple(
    (di, dj)
    for di in range(_REACH + 1)
    for dj in range(-_REACH, _REACH + 1)
    if (di > 0 or dj > 0) and max(abs(di), abs(dj)) >= 2
)
#: Largest grid (cells) looked up through a dense array; larger grids use a sorted search.
_DENSE_GRID_MAX_CELLS = 1 << 24  # 64 MB of int32


def located_mask(sites: gpd.GeoDataFrame) -> np.ndarray:
    """Sites that take part in spatial analysis: a point, and not a pooled row."""
    geoms = np.asarray(sites.geometry.values, dtype=object)
    ok = ~shapely.is_missing(geoms)
    ok[ok] = ~shapely.is_empty(geoms[ok])
    if "non_geographic" in sites:
        ok &= ~sites["non_geographic"].fillna(False).astype(bool).to_numpy()
    return ok


def link_pairs(
    geoms: np.ndarray, distance_m: float, *, coordinates: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of points at most ``distance_m`` apart, each pair once.

    A k-d tree over the coordinates (SciPy ``cKDTree.query_pairs``, inclusive of the
    distance) answers exactly what an STRtree ``dwithin`` query does for points, but
    without testing every pair twice and every point against itself: about 14x faster at
    500,000 sites (benchmarks/RESULTS.md). ``coordinates=True``: ``geoms`` is already
    an (n, 2) array of x, y.
    """
    if len(geoms) < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    xy = geoms if coordinates else shapely.get_coordinates(geoms)
    if len(xy) != len(geoms):
        raise ValueError(
            "link_pairs takes one point per site (no missing or multi-part geometries)"
        )
    pairs = cKDTree(xy).query_pairs(distance_m, output_type="ndarray")
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)


def link_components(geoms: np.ndarray, distance_m: float) -> np.ndarray:
    """Component label of each point of the 'within ``distance_m``' graph.

    Exact, without listing every linked pair. On a grid of square cells whose side is
    just under ``distance_m / (2 sqrt 2)``, any point of a cell is within the distance
    of any point of the same cell or of the eight cells around it, so occupied touching
    cells are linked outright (a sparse graph over cells). Two points farther than
    three cells apart are never linked. So only cells two or three apart that are still
    in different groups can add a link, and a k-d tree tests the pairs among their points
    alone: at 500,000 sites and 800 m, 0.5 million pairs among 0.14 million points
    instead of 15 million pairs among all of them.
    """
    n = len(geoms)
    xy = shapely.get_coordinates(geoms)
    if len(xy) != n:
        raise ValueError(
            "link_components takes one point per site (no missing or multi-part geometries)"
        )
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    side = distance_m / (2.0 * math.sqrt(2.0)) * (1.0 - 1e-9)
    origin = xy.min(axis=0)
    span = np.floor((xy.max(axis=0) - origin) / side) + 2 * _REACH + 1
    if not np.all(np.isfinite(span)) or float(span[0]) * float(span[1]) >= 2.0**62:
        return _pair_components(xy, distance_m)  # a grid too fine to number
    width = int(span[1])
    cell_ij = np.floor((xy - origin) / side).astype(np.int64) + _REACH
    point_key = cell_ij[:, 0] * width + cell_ij[:, 1]
    keys = _distinct(point_key)  # sorted, so neighbour look-ups walk memory in order
    cell = np.searchsorted(keys, point_key)
    find = _cell_finder(keys, int(span[0]) * width)
    own = np.arange(len(keys))

    def neighbours(di: int, dj: int) -> tuple[np.ndarray, np.ndarray]:
        found = find(keys + di * width + dj)
        hit = found >= 0
        return own[hit], found[hit]

    touching = [neighbours(di, dj) for di, dj in ((0, 1), (1, -1), (1, 0), (1, 1))]
    group = _components(
        len(keys),
        np.concatenate([a for a, _ in touching]),
        np.concatenate([b for _, b in touching]),
    )
    frontier = np.zeros(len(keys), dtype=bool)
    for di, dj in _NEAR:
        a, b = neighbours(di, dj)
        apart = group[a] != group[b]
        frontier[a[apart]] = True
        frontier[b[apart]] = True
    points = np.flatnonzero(frontier[cell])
    left, right = link_pairs(xy[points], distance_m, coordinates=True)
    left, right = group[cell[points[left]]], group[cell[points[right]]]
    apart = left != right
    groups = int(group.max()) + 1
    edges = pd.unique(
        np.minimum(left[apart], right[apart]) * groups + np.maximum(left[apart], right[apart])
    )
    return _components(groups, edges // groups, edges % groups)[group[cell]]


def _cell_finder(keys: np.ndarray, total: int) -> Callable[[np.ndarray], np.ndarray]:
    """Position in ``keys`` (sorted cell numbers) of each queried cell number, -1 if empty."""
    if total <= _DENSE_GRID_MAX_CELLS:
        grid = np.full(total, -1, dtype=np.int32)
        grid[keys] = np.arange(len(keys), dtype=np.int32)
        return lambda query: grid[query]

    def search(query: np.ndarray) -> np.ndarray:
        at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        return np.where(keys[at] == query, at, -1)

    return search


def _components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def _pair_components(xy: np.ndarray, distance_m: float) -> np.ndarray:
    """Components from every linked pair (the plain way; for grids too fine to number)."""
    left, right = link_pairs(xy, distance_m, coordinates=True)
    return _components(len(xy), left, right)


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct integers (numpy 2.4's ``np.unique`` is 70x slower than a sort here)."""
    ordered = np.sort(values)
    if len(ordered) == 0:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


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
    out = site_measures(sites) if "spare_m2" not in sites else sites.copy(deep=False)
    idx = np.flatnonzero(located_mask(out))
    geoms = np.asarray(out.geometry.values, dtype=object)[idx]
    labels = link_components(geoms, distance_m)
    orgs, _ = pd.factorize(out["organisation_code"].astype(str).to_numpy()[idx])
    n_orgs = _count_distinct(labels, orgs, len(idx))
    keep = n_orgs[labels] >= 2
    rows, kept = idx[keep], labels[keep]
    # Number clusters by the position of their first site, so ids are stable for a given input.
    first = np.full(len(idx), len(idx), dtype=np.int64)
    np.minimum.at(first, kept, np.arange(len(kept)))
    in_order = np.argsort(first, kind="stable")[: len(_distinct(kept))]
    number = np.zeros(len(idx), dtype=np.int64)
    number[in_order] = np.arange(1, len(in_order) + 1)
    cluster_ids = number[kept]
    values = np.zeros(len(out), dtype=np.int64)
    values[rows] = cluster_ids
    unset = np.ones(len(out), dtype=bool)
    unset[rows] = False
    out["cluster_id"] = pd.arrays.IntegerArray(values, unset)
    clusters = _summarise(out, rows, cluster_ids, distance_m)
    log.info(
        "%d co-location clusters at %g m holding %d of %d located sites",
        len(clusters),
        distance_m,
        len(rows),
        len(idx),
    )
    return out, clusters


def _count_distinct(groups: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group 0..n_groups-1, how many distinct codes >= 0 (missing is -1) it holds."""
    known = codes >= 0
    width = int(codes.max(initial=0)) + 1
    pairs = _distinct(groups[known].astype(np.int64) * width + codes[known])
    return np.bincount(pairs // width, minlength=n_groups)


def _joined(
    positions: np.ndarray, codes: np.ndarray, uniques: Sequence[Any], n_clusters: int
) -> list[str]:
    """Per cluster, its distinct non-missing values as text, sorted and ";"-joined.

    ``positions`` (the cluster 0.. of each member, sorted) and ``codes`` (each member's
    value as a position in ``uniques``, -1 when missing) come from ``pd.factorize``:
    the set and sort happen once over (cluster, text) codes, not once per cluster.
    """
    texts = pd.Series(uniques, dtype=object).astype(str).to_numpy(dtype=object)
    text_codes, words = pd.factorize(texts)  # two values may have the same text
    words = np.asarray(words, dtype=object)
    order = np.argsort(words, kind="stable")  # Python string order, as sorted() gives
    rank = np.empty(len(words), dtype=np.int64)
    rank[order] = np.arange(len(words))
    present = codes >= 0
    width = max(len(words), 1)
    pairs = _distinct(positions[present] * width + rank[text_codes[codes[present]]])
    chosen = words[order][pairs % width]
    bounds = np.searchsorted(pairs // width, np.arange(n_clusters + 1))
    return [";".join(chosen[a:b]) for a, b in itertools.pairwise(bounds)]


def _summarise(
    out: gpd.GeoDataFrame, rows: np.ndarray, cluster_ids: np.ndarray, distance_m: float
) -> gpd.GeoDataFrame:
    order = np.argsort(cluster_ids, kind="stable")
    rows, cluster_ids = rows[order], cluster_ids[order]
    clusters = _distinct(cluster_ids)
    n = len(clusters)
    positions = np.searchsorted(clusters, cluster_ids)
    index = pd.Index(clusters, name="cluster_id")

    def member_codes(column: str) -> tuple[np.ndarray, Sequence[Any]]:
        if column not in out:
            return np.full(len(rows), -1, dtype=np.int64), []
        # The whole column in its own order, then the members' codes: hashing strings in
        # cluster order visits memory at random and is five times slower.
        codes, uniques = pd.factorize(out[column])
        return codes[rows], list(uniques)

    org_codes, org_uniques = member_codes("organisation_code")
    name_codes, name_uniques = member_codes("organisation_name")
    # The organisation's name, or its code when the name is missing.
    label_codes = np.where(
        name_codes >= 0, name_codes, np.where(org_codes >= 0, len(name_uniques) + org_codes, -1)
    )
    sector_codes, sector_uniques = member_codes("sector")
    occupancy_codes, occupancy_uniques = member_codes("occupancy")
    council = np.array([u == "council" for u in sector_uniques] + [False], dtype=bool)
    vacant_text = np.array(
        ["vacant" in str(u).lower() for u in occupancy_uniques] + [False], dtype=bool
    )
    vacant_council = council[sector_codes] & vacant_text[occupancy_codes]
    gia = out["gia_m2"].iloc[rows].reset_index(drop=True)
    spare = out["spare_m2"].iloc[rows].reset_index(drop=True)
    by_cluster = pd.Series(cluster_ids, name="cluster_id")
    site_ids = np.asarray(out["site_id"].to_numpy(), dtype=np.int64)[rows]
    bounds = np.searchsorted(positions, np.arange(1, n))

    def per_cluster(values: Any) -> pd.Series:
        return pd.Series(values, index=index)

    table = pd.DataFrame(
        {
            "n_sites": per_cluster(np.bincount(positions, minlength=n).astype("int64")),
            "n_organisations": per_cluster(_count_distinct(positions, org_codes, n)),
            "organisations": per_cluster(
                _joined(positions, label_codes, [*name_uniques, *org_uniques], n)
            ),
            "organisation_codes": per_cluster(_joined(positions, org_codes, org_uniques, n)),
            "sectors": per_cluster(_joined(positions, sector_codes, sector_uniques, n)),
            # pandas sums (compensated), in member order: the same floats as before.
            "combined_gia_m2": gia.groupby(by_cluster).sum(min_count=0),
            "combined_spare_m2": spare.groupby(by_cluster).sum(min_count=0),
            "vacant_council_assets": per_cluster(
                np.bincount(positions[vacant_council], minlength=n).astype("int64")
            ),
            "vacant_council_gia_m2": gia.where(vacant_council, 0.0)
            .fillna(0.0)
            .groupby(by_cluster)
            .sum(),
            "site_ids": pd.Series(
                [part.tolist() for part in np.split(site_ids, bounds)] if n else [],
                index=index,
                dtype=object,
            ),
        }
    )
    geoms = np.asarray(out.geometry.values, dtype=object)
    xy = np.column_stack([shapely.get_x(geoms)[rows], shapely.get_y(geoms)[rows]])
    corner = _hull_candidates(xy, positions, n)
    multipoints = shapely.multipoints(geoms[rows[corner]], indices=positions[corner])
    table["geometry"] = shapely.buffer(shapely.convex_hull(multipoints), HULL_BUFFER_M)
    table = table.reset_index()
    if table.empty:
        table = pd.DataFrame({c: pd.Series(dtype=object) for c in CLUSTER_COLUMNS})
        table["geometry"] = None
    table["cluster_id"] = table["cluster_id"].astype("int64")
    table["distance_m"] = float(distance_m)
    return gpd.GeoDataFrame(table, geometry="geometry", crs=WORKING_CRS)


def _hull_candidates(xy: np.ndarray, positions: np.ndarray, n_clusters: int) -> np.ndarray:
    """Members that can be a vertex of their cluster's convex hull (Akl-Toussaint filter).

    A point more than 1 mm inside the octagon of its cluster's extreme points in eight
    directions is inside the hull, so it changes nothing there: the hull is the same
    from the other points, and building the multipoints costs only for those (most
    members of a large cluster lie inside). ``positions`` are sorted.
    """
    if n_clusters == 0:
        return np.zeros(len(xy), dtype=bool)
    x, y = xy[:, 0], xy[:, 1]
    starts = np.searchsorted(positions, np.arange(n_clusters))
    # S, SE, E, NE, N, NW, W, SW: extreme points in counter-clockwise order on the hull.
    directions = (-y, x - y, x, x + y, y, y - x, -x, -x - y)
    corners = np.empty((n_clusters, len(directions)), dtype=np.int64)
    keep = np.zeros(len(x), dtype=bool)
    for k, score in enumerate(directions):
        best = np.maximum.reduceat(score, starts)
        hits = np.flatnonzero(score == best[positions])
        corners[:, k] = hits[np.searchsorted(positions[hits], np.arange(n_clusters))]
        keep[corners[:, k]] = True
    inside = np.ones(len(x), dtype=bool)
    for k in range(len(directions)):
        a = corners[positions, k]
        b = corners[positions, (k + 1) % len(directions)]
        ex, ey = x[b] - x[a], y[b] - y[a]
        length = np.hypot(ex, ey)
        cross = ex * (y - y[a]) - ey * (x - x[a])
        inside &= (length == 0) | (cross > 1e-3 * length + 1e-6)
    return keep | ~inside
