"""One-body pooling scenario: the footprint's public estate as one portfolio.

Which flagged sites could be released, with their occupied floor area re-provided in
spare space at other sites of compatible use within a distance limit? Solved exactly as a
mixed-integer programme with SciPy's ``milp`` (bundled HiGHS):

- variables ``x[i, j]`` >= 0: floor area (m2) of released site ``i`` re-provided at site
  ``j``, only for pairs within ``max_distance_m`` (shapely ``STRtree`` ``dwithin``) whose
  sectors and use groups are compatible (settings ``compatible_sectors``,
  ``use_groups``, ``group_receivers``); ``y[i]`` binary: release ``i``;
- ``sum_j x[i, j] = need_i * y_i``: a released site's occupied floor area is re-provided
  in full;
- ``sum_i x[i, j] + cap_j * y_j <= cap_j``: a receiving site takes at most its spare floor
  area (``receiving_capacity_share`` x empty + under-used m2), and a site that is itself
  released receives nothing (the y/capacity link: the optimiser chooses which role
  pays, instead of a fixed rule);
- maximise ``sum_i saving_i * y_i`` with ``saving_i`` = running cost of ``i`` minus
  ``receiving_cost_gbp_per_m2`` x ``need_i``;
- then, with the releases fixed, a linear programme places the floor area at the least
  total distance (m2 x m), so the flows are the shortest of the equally good placements.

The problem splits into independent parts (connected components of the site/pair
graph), each solved on its own within a share of ``time_limit_s``; status and proven
gap are reported (``headline["status"]``, ``headline["mip_gap"]``).

Sites released without the optimiser: flagged, unprotected candidates with nothing to
re-provide (occupied floor area 0, e.g. a vacant council asset) and no spare space worth
keeping them for. Sites that must stay (protected site types, sectors or source keys)
are fixed open. A flagged site that is not released always says why.

Access: for each small-area centroid, the distance to the nearest site of each sector
before and after the releases (located sites of the portfolio only; vacant assets serve
nobody, so they count neither before nor after). Summaries cover the sectors that lose
at least one site.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import coo_matrix, csr_matrix, hstack, vstack
from scipy.sparse.csgraph import connected_components

from estates.analysis.colocation import located_mask
from estates.analysis.flags import FLAGGED, flag_sites
from estates.analysis.measures import RISKS, numeric_column, text_column
from estates.analysis.settings import AnalysisSettings
from estates.db.store import require_working_crs
from estates.settings import WORKING_CRS

log = logging.getLogger(__name__)

ROLES = ("released", "receiving", "retained", "protected", "not_released")
FLOW_COLUMNS = ("from_site_id", "to_site_id", "floor_area_m2", "distance_m")
ACCESS_COLUMNS = ("code", "name", "sector", "before_m", "after_m", "increase_m")
_TOL = 1e-6


@dataclass
class PoolingScenario:
    """A pooling scenario: per-site roles, flows of floor area, access change, headline."""

    sites: gpd.GeoDataFrame
    flows: gpd.GeoDataFrame
    access: gpd.GeoDataFrame
    headline: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Problem:
    candidates: np.ndarray  # row positions of MILP candidates
    receivers: np.ndarray  # row positions of receivers
    pair_i: np.ndarray  # candidate index (into candidates) per pair
    pair_j: np.ndarray  # receiver index (into receivers) per pair
    distance: np.ndarray


def _protection(frame: pd.DataFrame, settings: AnalysisSettings) -> np.ndarray:
    """Why each site must stay open ('' when it need not)."""
    reasons = np.full(len(frame), "", dtype=object)
    site_type = text_column(frame, "site_type")
    sector = text_column(frame, "sector")
    key = text_column(frame, "source_key")
    by_type = np.isin(site_type.astype(str), list(settings.protected_site_types))
    by_sector = np.isin(sector.astype(str), list(settings.protected_sectors))
    by_key = np.isin(key.astype(str), list(settings.protected_source_keys))
    for i in np.flatnonzero(by_key):
        reasons[i] = "protected: listed in the settings (protected_source_keys)"
    for i in np.flatnonzero(by_sector & ~by_key):
        reasons[i] = f"protected: {sector[i]} sites must stay open (protected_sectors)"
    for i in np.flatnonzero(by_type & ~by_key & ~by_sector):
        reasons[i] = f"protected: site type '{site_type[i]}' must stay open"
    return reasons


def compatible_pairs(
    frame: pd.DataFrame, from_rows: np.ndarray, to_rows: np.ndarray, settings: AnalysisSettings
) -> np.ndarray:
    """Whether floor area of each ``from_rows`` site may move to the paired ``to_rows`` site."""
    sector = text_column(frame, "sector").astype(str)
    groups = np.array(
        [settings.use_group(t) for t in text_column(frame, "site_type")], dtype=object
    )
    sector_ok = {(a, b) for a, bs in settings.compatible_sectors.items() for b in bs}
    group_ok = {(a, b) for a, bs in settings.group_receivers.items() for b in bs}
    sector_key = pd.Series(sector[from_rows] + "\x1f" + sector[to_rows])
    group_key = pd.Series(groups[from_rows].astype(str) + "\x1f" + groups[to_rows].astype(str))
    allowed_sectors = [f"{a}\x1f{b}" for a, b in sector_ok]
    allowed_groups = [f"{a}\x1f{b}" for a, b in group_ok]
    return (sector_key.isin(allowed_sectors) & group_key.isin(allowed_groups)).to_numpy()


def _pairs(
    frame: pd.DataFrame,
    candidates: np.ndarray,
    receivers: np.ndarray,
    max_distance_m: float,
    settings: AnalysisSettings,
) -> _Problem:
    geoms = np.asarray(frame.geometry.values, dtype=object)
    if len(candidates) == 0 or len(receivers) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _Problem(candidates, receivers, empty, empty, np.zeros(0))
    tree = shapely.STRtree(geoms[receivers])
    ci, rj = tree.query(geoms[candidates], predicate="dwithin", distance=max_distance_m)
    keep = candidates[ci] != receivers[rj]
    ci, rj = ci[keep], rj[keep]
    ok = compatible_pairs(frame, candidates[ci], receivers[rj], settings)
    ci, rj = ci[ok], rj[ok]
    distance = shapely.distance(geoms[candidates[ci]], geoms[receivers[rj]])
    return _Problem(candidates, receivers, ci.astype(np.int64), rj.astype(np.int64), distance)


def _solve_component(
    n_c: int,
    n_r: int,
    pair_i: np.ndarray,
    pair_j: np.ndarray,
    distance: np.ndarray,
    need: np.ndarray,
    cap: np.ndarray,
    saving: np.ndarray,
    link_r: np.ndarray,
    link_c: np.ndarray,
    time_limit: float,
    gap: float,
) -> tuple[np.ndarray, np.ndarray, int, float, float, float]:
    """One connected part of the problem: (y, x, status, objective, dual bound, gap).

    Two stages: the MILP chooses the releases that maximise the saving; then, with the
    releases fixed, a linear programme places their floor area at the least total
    distance (m2 x m), so the flows drawn are the shortest among equally good ones.
    """
    n_p = len(pair_i)
    rows_p = np.arange(n_p)
    # Variables: x (n_p) then y (n_c). Minimise -saving.y.
    c = np.concatenate([np.zeros(n_p), -saving])
    # (a) sum_j x_ij - need_i y_i = 0
    a = hstack(
        [
            coo_matrix((np.ones(n_p), (pair_i, rows_p)), shape=(n_c, n_p)),
            coo_matrix((-need, (np.arange(n_c), np.arange(n_c))), shape=(n_c, n_c)),
        ]
    )
    # (b) sum_i x_ij + cap_j y_j <= cap_j (y_j only where receiver j is also a candidate)
    b = hstack(
        [
            coo_matrix((np.ones(n_p), (pair_j, rows_p)), shape=(n_r, n_p)),
            coo_matrix((cap[link_r], (link_r, link_c)), shape=(n_r, n_c)),
        ]
    )
    matrix = csr_matrix(vstack([a, b]))
    lower = np.concatenate([np.zeros(n_c), np.full(n_r, -np.inf)])
    upper = np.concatenate([np.zeros(n_c), cap])
    x_upper = np.minimum(need[pair_i], cap[pair_j])
    result = milp(
        c,
        integrality=np.concatenate([np.zeros(n_p), np.ones(n_c)]),
        bounds=Bounds(np.zeros(n_p + n_c), np.concatenate([x_upper, np.ones(n_c)])),
        constraints=LinearConstraint(matrix, lower, upper),
        options={"time_limit": max(time_limit, 0.5), "mip_rel_gap": gap, "disp": False},
    )
    if result.x is None:
        return np.zeros(n_c, dtype=bool), np.zeros(n_p), int(result.status), 0.0, 0.0, np.nan
    y = result.x[n_p:] > 0.5
    x = np.where(result.x[:n_p] > _TOL, result.x[:n_p], 0.0)
    x = _shortest_placement(y, x, pair_i, pair_j, distance, need, cap, link_r, link_c)
    objective = float(saving @ y)
    dual = getattr(result, "mip_dual_bound", None)
    bound = objective if dual is None or np.isnan(dual) else max(-float(dual), objective)
    mip_gap = getattr(result, "mip_gap", None)
    return y, x, int(result.status), objective, bound, float(mip_gap or 0.0)


def _shortest_placement(
    y: np.ndarray,
    x: np.ndarray,
    pair_i: np.ndarray,
    pair_j: np.ndarray,
    distance: np.ndarray,
    need: np.ndarray,
    cap: np.ndarray,
    link_r: np.ndarray,
    link_c: np.ndarray,
) -> np.ndarray:
    """With the releases ``y`` fixed, re-place their floor area at least total distance."""
    closed_r = np.zeros(len(cap), dtype=bool)
    closed_r[link_r[y[link_c]]] = True
    use = y[pair_i] & ~closed_r[pair_j]
    sel = np.flatnonzero(use)
    if len(sel) == 0:
        return x
    released = np.flatnonzero(y)
    row_i = pd.Series(np.arange(len(released)), index=released)
    receivers = np.unique(pair_j[sel])
    row_j = pd.Series(np.arange(len(receivers)), index=receivers)
    cols = np.arange(len(sel))
    a_eq = coo_matrix(
        (np.ones(len(sel)), (row_i.loc[pair_i[sel]].to_numpy(), cols)),
        shape=(len(released), len(sel)),
    )
    a_ub = coo_matrix(
        (np.ones(len(sel)), (row_j.loc[pair_j[sel]].to_numpy(), cols)),
        shape=(len(receivers), len(sel)),
    )
    lp = linprog(
        distance[sel],
        A_ub=csr_matrix(a_ub),
        b_ub=cap[receivers],
        A_eq=csr_matrix(a_eq),
        b_eq=need[released],
        bounds=np.column_stack(
            [np.zeros(len(sel)), np.minimum(need[pair_i[sel]], cap[pair_j[sel]])]
        ),
        method="highs",
    )
    if lp.status != 0 or lp.x is None:  # keep the MILP's own placement, also valid
        log.debug("shortest placement LP did not solve (%s); keeping the MILP flows", lp.message)
        return x
    out = np.zeros_like(x)
    out[sel] = np.where(lp.x > _TOL, lp.x, 0.0)
    return out


def _solve(
    problem: _Problem,
    need: np.ndarray,
    capacity: np.ndarray,
    saving: np.ndarray,
    settings: AnalysisSettings,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Solve the MILP; return (release decision per candidate, flow per pair, solver info).

    The problem splits into independent parts (connected components of the graph whose
    nodes are sites and whose edges are candidate pairs); each part is solved on its own,
    a part with one candidate directly (release it, fill the nearest receivers first,
    which is the shortest placement for one site),
    the others with ``milp``. The time limit is shared out by part size.
    """
    n_c, n_p = len(problem.candidates), len(problem.pair_i)
    info: dict[str, Any] = {"status": "optimal", "mip_gap": 0.0, "variables": n_p + n_c}
    y = np.zeros(n_c, dtype=bool)
    x = np.zeros(n_p)
    if n_c == 0:
        info["parts"] = 0
        return y, x, info
    started = time.perf_counter()
    cand_need = need[problem.candidates]
    cand_saving = saving[problem.candidates]
    cap = capacity[problem.receivers]
    # Nodes are row positions in the site frame: a site that is both candidate and receiver
    # is one node, which is what links their constraints.
    nodes = np.unique(np.concatenate([problem.candidates, problem.receivers]))
    node_c = np.searchsorted(nodes, problem.candidates)
    node_r = np.searchsorted(nodes, problem.receivers)
    edges = coo_matrix(
        (np.ones(n_p), (node_c[problem.pair_i], node_r[problem.pair_j])),
        shape=(len(nodes), len(nodes)),
    )
    _, label = connected_components(edges, directed=False)
    comp_c = label[node_c]
    comp_p = comp_c[problem.pair_i]
    position_c = pd.Series(np.arange(n_c), index=problem.candidates)
    receiver_as_candidate = pd.Series(problem.receivers).map(position_c).to_numpy(dtype="float64")
    order_p = np.argsort(comp_p, kind="stable")
    bounds_p = np.searchsorted(comp_p[order_p], np.arange(label.max() + 2))
    sizes = np.bincount(comp_p, minlength=label.max() + 1) + np.bincount(
        comp_c, minlength=label.max() + 1
    )
    cands_per_part = np.bincount(comp_c, minlength=label.max() + 1)
    remaining_size = float(sizes[cands_per_part > 1].sum())
    statuses: list[int] = []
    objective = bound = 0.0
    worst_gap = 0.0
    parts = 0
    # Small parts first: they finish early and leave their unused time to the large ones.
    parts_in_order = np.unique(comp_c)
    parts_in_order = parts_in_order[np.argsort(sizes[parts_in_order], kind="stable")]
    for comp in parts_in_order:
        cs = np.flatnonzero(comp_c == comp)
        ps = order_p[bounds_p[comp] : bounds_p[comp + 1]]
        parts += 1
        if len(cs) == 1:
            # One candidate: feasible by construction, so release it; nearest receivers first.
            y[cs[0]] = True
            remaining = cand_need[cs[0]]
            for p in ps[np.argsort(problem.distance[ps], kind="stable")]:
                take = min(remaining, cap[problem.pair_j[p]])
                x[p] = take
                remaining -= take
                if remaining <= _TOL:
                    break
            objective += cand_saving[cs[0]]
            bound += cand_saving[cs[0]]
            continue
        rs = np.unique(problem.pair_j[ps])
        local_c = pd.Series(np.arange(len(cs)), index=cs)
        local_r = pd.Series(np.arange(len(rs)), index=rs)
        link = receiver_as_candidate[rs]
        linked = np.flatnonzero(~np.isnan(link) & np.isin(link, cs))
        left = settings.time_limit_s - (time.perf_counter() - started)
        limit = left * sizes[comp] / max(remaining_size, 1.0)
        remaining_size -= sizes[comp]
        y_k, x_k, status, obj, bnd, gap = _solve_component(
            len(cs),
            len(rs),
            local_c.loc[problem.pair_i[ps]].to_numpy(),
            local_r.loc[problem.pair_j[ps]].to_numpy(),
            problem.distance[ps],
            cand_need[cs],
            cap[rs],
            cand_saving[cs],
            linked,
            local_c.loc[link[linked].astype(np.int64)].to_numpy(),
            limit,
            settings.mip_rel_gap,
        )
        y[cs] = y_k
        x[ps] = x_k
        statuses.append(status)
        objective += obj
        bound += bnd
        worst_gap = max(worst_gap, 0.0 if np.isnan(gap) else gap)
    x[~y[problem.pair_i]] = 0.0
    # Re-scale each released site's flows so they sum to its need exactly (solver tolerance).
    totals = np.bincount(problem.pair_i, weights=x, minlength=n_c)
    scale = np.divide(cand_need, totals, out=np.zeros(n_c), where=totals > 0)
    x = x * scale[problem.pair_i]
    failed = [s for s in statuses if s != 0]
    if failed:
        names = {1: "time limit reached", 2: "infeasible", 3: "unbounded", 4: "solver error"}
        info["status"] = "; ".join(
            f"{names.get(s, f'status {s}')} in {failed.count(s)} of {parts} parts"
            for s in sorted(set(failed))
        )
    info["mip_gap"] = (bound - objective) / abs(objective) if objective else 0.0
    info["worst_part_gap"] = worst_gap
    info["parts"] = parts
    info["solve_seconds"] = round(time.perf_counter() - started, 3)
    return y, x, info


def pool_footprint(
    sites: gpd.GeoDataFrame,
    settings: AnalysisSettings,
    *,
    areas: gpd.GeoDataFrame | None = None,
    max_distance_m: float | None = None,
) -> PoolingScenario:
    """Build the one-body pooling scenario for a footprint's sites.

    Parameters
    ----------
    sites
        Every public site of the footprint (canonical frame, EPSG:27700), with measures;
        flagged with :func:`estates.analysis.flags.flag_sites` if not already.
    settings
        Thresholds and assumptions (release flags, protection, compatibility, receipts,
        access threshold, solver limits).
    areas
        Small areas (``code``, ``name``, polygon geometry, EPSG:27700), e.g. LSOAs, for
        the access impact; None for no access figures.
    max_distance_m
        Overrides ``settings.max_distance_m``.

    Returns
    -------
    PoolingScenario
        ``sites`` with ``role`` and ``pool_reason`` and the per-site figures; ``flows``
        (LineStrings released -> receiving); ``access`` per area and sector; ``headline``.
    """
    require_working_crs(sites, "the site frame")
    if areas is not None:
        require_working_crs(areas, "the small-area frame")
    distance = float(settings.max_distance_m if max_distance_m is None else max_distance_m)
    if not distance > 0:
        raise ValueError(f"max_distance_m must be a positive number of metres, got {distance!r}")
    frame = sites.copy() if "flags" in sites else flag_sites(sites, settings)
    frame = frame.reset_index(drop=True)
    n = len(frame)
    located = located_mask(frame)
    non_geo = (
        frame["non_geographic"].fillna(False).astype(bool).to_numpy()
        if "non_geographic" in frame
        else np.zeros(n, dtype=bool)
    )
    release_flag_cols = [f"flag_{f}" for f in settings.release_flags]
    flagged = np.zeros(n, dtype=bool)
    for column in release_flag_cols:
        flagged |= (frame[column] == FLAGGED).to_numpy()
    release_flags_of = [
        ";".join(f for f in settings.release_flags if frame.at[i, f"flag_{f}"] == FLAGGED)
        for i in range(n)
    ]
    protection = _protection(frame, settings)
    protected = protection != ""

    occupied = numeric_column(frame, "occupied_floor_area_m2")
    vacant = (
        (frame["flag_vacant"] == FLAGGED).to_numpy()
        if "flag_vacant" in frame
        else np.zeros(n, dtype=bool)
    )
    need = np.where(vacant, 0.0, occupied)
    running = numeric_column(frame, "running_cost_gbp")
    saving = running - settings.receiving_cost_gbp_per_m2 * np.nan_to_num(need)
    capacity = settings.receiving_capacity_share * np.nan_to_num(numeric_column(frame, "spare_m2"))
    capacity[~located] = 0.0

    candidate = flagged & located & ~protected & ~non_geo
    need_known = ~np.isnan(need)
    zero_need = candidate & need_known & (need <= _TOL)
    saving_known = ~np.isnan(saving)
    by_rule = zero_need & ~((capacity > 0) & saving_known & (saving > 0))
    in_milp = candidate & need_known & ~by_rule & saving_known & (saving > 0)
    receivers = np.flatnonzero(located & ~non_geo & (capacity > _TOL) & ~by_rule)
    milp_rows = np.flatnonzero(in_milp)
    problem = _pairs(frame, milp_rows, receivers, distance, settings)

    # Candidates that cannot possibly be released (no pair / too little reachable space).
    n_c = len(milp_rows)
    reach_cap = np.bincount(
        problem.pair_i, weights=capacity[receivers][problem.pair_j], minlength=n_c
    )
    reach_sites = np.bincount(problem.pair_i, minlength=n_c)
    feasible = reach_cap + _TOL >= need[milp_rows]
    keep_pairs = feasible[problem.pair_i]
    solvable = milp_rows[feasible]
    remap = np.full(n_c, -1, dtype=np.int64)
    remap[feasible] = np.arange(feasible.sum())
    sub = _Problem(
        solvable,
        receivers,
        remap[problem.pair_i[keep_pairs]],
        problem.pair_j[keep_pairs],
        problem.distance[keep_pairs],
    )
    started = time.perf_counter()
    y, x, info = _solve(sub, need, capacity, np.nan_to_num(saving), settings)
    info["pairs"] = len(sub.pair_i)
    log.info(
        "pooling: %d candidates in the MILP (%d pairs), %d released; %s in %.2f s",
        len(solvable),
        len(sub.pair_i),
        int(y.sum()),
        info["status"],
        time.perf_counter() - started,
    )

    released = np.zeros(n, dtype=bool)
    released[solvable[y]] = True
    released |= by_rule
    flow_mask = x > _TOL
    from_rows = solvable[sub.pair_i[flow_mask]]
    to_rows = receivers[sub.pair_j[flow_mask]]
    flow_area = x[flow_mask]
    flow_distance = sub.distance[flow_mask]
    received = np.bincount(to_rows, weights=flow_area, minlength=n)

    frame = _site_results(
        frame,
        settings,
        distance,
        released=released,
        protected=protected,
        protection=protection,
        flagged=flagged,
        located=located,
        non_geo=non_geo,
        need=need,
        saving=saving,
        capacity=capacity,
        received=received,
        release_flags_of=release_flags_of,
        milp_rows=milp_rows,
        reach_cap=reach_cap,
        reach_sites=reach_sites,
        by_rule=by_rule,
        status=info["status"],
        flows=(from_rows, to_rows, flow_area, flow_distance),
    )
    flows = _flows(frame, from_rows, to_rows, flow_area, flow_distance)
    # Vacant assets serve nobody: they count neither before nor after.
    serving = located & ~vacant
    access = _access(frame, released, serving, areas)
    headline = _headline(frame, flows, access, settings, info, candidate, distance)
    return PoolingScenario(frame, flows, access, headline)


def _receipt(frame: pd.DataFrame, settings: AnalysisSettings) -> tuple[np.ndarray, np.ndarray]:
    """Indicative receipt per site and its basis (land / gia / not freehold / unknown)."""
    land = numeric_column(frame, "land_ha")
    gia = numeric_column(frame, "gia_m2")
    tenure = text_column(frame, "tenure")
    freehold = np.array([isinstance(t, str) and "freehold" in t.lower() for t in tenure])
    value = np.where(
        land > 0,
        land * settings.receipt_gbp_per_ha,
        np.where(gia > 0, gia * settings.receipt_gbp_per_m2, np.nan),
    )
    basis = np.where(land > 0, "land", np.where(gia > 0, "gia", "unknown")).astype(object)
    if settings.receipt_freehold_only:
        value = np.where(freehold, value, 0.0)
        basis = np.where(freehold, basis, "not freehold").astype(object)
    value = np.where(basis == "unknown", np.nan, value)
    return value, basis


def _site_results(
    frame: pd.DataFrame,
    settings: AnalysisSettings,
    distance: float,
    *,
    released: np.ndarray,
    protected: np.ndarray,
    protection: np.ndarray,
    flagged: np.ndarray,
    located: np.ndarray,
    non_geo: np.ndarray,
    need: np.ndarray,
    saving: np.ndarray,
    capacity: np.ndarray,
    received: np.ndarray,
    release_flags_of: list[str],
    milp_rows: np.ndarray,
    reach_cap: np.ndarray,
    reach_sites: np.ndarray,
    by_rule: np.ndarray,
    status: str,
    flows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> pd.DataFrame:
    n = len(frame)
    receipt, basis = _receipt(frame, settings)
    names = text_column(frame, "name")
    site_ids = frame["site_id"].to_numpy() if "site_id" in frame else np.arange(n)
    from_rows, to_rows, area, dist = flows
    destinations: dict[int, list[str]] = {}
    for f, t, a, d in zip(from_rows, to_rows, area, dist, strict=True):
        destinations.setdefault(int(f), []).append(
            f"{a:,.0f} m2 to {names[t] or site_ids[t]} ({d:,.0f} m)"
        )
    sources = pd.Series(from_rows).groupby(to_rows).nunique() if len(to_rows) else pd.Series()
    milp_pos = pd.Series(np.arange(len(milp_rows)), index=milp_rows)
    running = numeric_column(frame, "running_cost_gbp")
    role = np.full(n, "retained", dtype=object)
    reason = np.full(n, "", dtype=object)
    for i in range(n):
        if released[i]:
            role[i] = "released"
            save = saving[i] if not np.isnan(saving[i]) else np.nan
            money = f"saves £{save:,.0f} a year" if not np.isnan(save) else "running cost unknown"
            if by_rule[i]:
                what = "vacant" if "vacant" in release_flags_of[i] else "no occupied floor area"
                reason[i] = (
                    f"released (flagged: {release_flags_of[i]}): nothing to re-provide "
                    f"({what}); {money}"
                )
            else:
                reason[i] = (
                    f"released (flagged: {release_flags_of[i]}): {need[i]:,.0f} m2 re-provided: "
                    + "; ".join(destinations.get(i, []))
                    + f"; {money}"
                )
        elif received[i] > _TOL:
            role[i] = "receiving"
            reason[i] = (
                f"receives {received[i]:,.0f} m2 from {int(sources.get(i, 0))} released site(s) "
                f"into {capacity[i]:,.0f} m2 of spare floor area"
            )
            if protected[i]:
                reason[i] += f" ({protection[i]})"
            elif flagged[i]:
                reason[i] += (
                    f"; flagged ({release_flags_of[i]}) but kept open: its spare floor area "
                    "saves more by receiving"
                )
        elif protected[i]:
            role[i] = "protected"
            reason[i] = protection[i] + (f"; flagged: {release_flags_of[i]}" if flagged[i] else "")
        elif flagged[i]:
            role[i] = "not_released"
            reason[i] = _why_not(
                i,
                located=located,
                non_geo=non_geo,
                need=need,
                running=running,
                saving=saving,
                milp_pos=milp_pos,
                reach_cap=reach_cap,
                reach_sites=reach_sites,
                distance=distance,
                status=status,
            )
        elif non_geo[i]:
            reason[i] = "pooled non-geographic row: not part of the scenario"
        elif not located[i]:
            reason[i] = "not located: not part of the scenario"
        else:
            reason[i] = "not flagged: stays"
    out = frame.copy()
    out["role"] = role
    out["pool_reason"] = reason
    out["floor_area_moved_m2"] = np.where(released, np.nan_to_num(need), 0.0)
    out["floor_area_received_m2"] = received
    out["receiving_capacity_m2"] = capacity
    out["running_cost_saved_gbp"] = np.where(released, np.nan_to_num(saving), 0.0)
    for risk in RISKS:
        out[f"backlog_avoided_{risk}_gbp"] = np.where(
            released, np.nan_to_num(numeric_column(frame, f"backlog_{risk}_gbp")), 0.0
        )
    out["land_released_ha"] = np.where(
        released, np.nan_to_num(numeric_column(frame, "land_ha")), 0.0
    )
    out["indicative_receipt_gbp"] = np.where(released, np.nan_to_num(receipt), 0.0)
    out["receipt_basis"] = pd.Series(basis, index=out.index).where(released, None)
    return out


def _why_not(
    i: int,
    *,
    located: np.ndarray,
    non_geo: np.ndarray,
    need: np.ndarray,
    running: np.ndarray,
    saving: np.ndarray,
    milp_pos: pd.Series,
    reach_cap: np.ndarray,
    reach_sites: np.ndarray,
    distance: float,
    status: str,
) -> str:
    if non_geo[i]:
        return "not released: pooled non-geographic row"
    if not located[i]:
        return "not released: site not located, so no receiving site can be found"
    if np.isnan(need[i]):
        return "not released: occupied floor area unknown, so the move cannot be sized"
    if np.isnan(running[i]):
        return "not released: running cost unknown, so there is no saving to weigh"
    if not saving[i] > 0:
        return f"not released: no running cost saving (saving £{saving[i]:,.0f} a year)"
    k = int(milp_pos[i])
    if reach_sites[k] == 0:
        return f"not released: no compatible site with spare floor area within {distance:,.0f} m"
    if reach_cap[k] + _TOL < need[i]:
        return (
            f"not released: compatible spare floor area within {distance:,.0f} m is "
            f"{reach_cap[k]:,.0f} m2 at {reach_sites[k]} site(s), less than the "
            f"{need[i]:,.0f} m2 to re-provide"
        )
    if status != "optimal":
        return f"not released in the best scenario the solver found ({status})"
    return (
        f"not released: the compatible spare floor area within {distance:,.0f} m "
        f"({reach_cap[k]:,.0f} m2 at {reach_sites[k]} site(s)) saves more when used by "
        "other releases, or is needed by them"
    )


def _flows(
    frame: pd.DataFrame,
    from_rows: np.ndarray,
    to_rows: np.ndarray,
    area: np.ndarray,
    distance: np.ndarray,
) -> gpd.GeoDataFrame:
    geoms = np.asarray(frame.geometry.values, dtype=object)
    names = text_column(frame, "name")
    ids = frame["site_id"].to_numpy()
    lines = (
        shapely.linestrings(
            np.stack(
                [
                    shapely.get_coordinates(geoms[from_rows]),
                    shapely.get_coordinates(geoms[to_rows]),
                ],
                axis=1,
            )
        )
        if len(from_rows)
        else np.array([], dtype=object)
    )
    return gpd.GeoDataFrame(
        {
            "from_site_id": ids[from_rows].astype("int64"),
            "to_site_id": ids[to_rows].astype("int64"),
            "floor_area_m2": area.astype("float64"),
            "distance_m": distance.astype("float64"),
            "from_name": names[from_rows],
            "to_name": names[to_rows],
        },
        geometry=gpd.GeoSeries(lines, crs=WORKING_CRS),
        crs=WORKING_CRS,
    )


def _access(
    frame: pd.DataFrame,
    released: np.ndarray,
    located: np.ndarray,
    areas: gpd.GeoDataFrame | None,
) -> gpd.GeoDataFrame:
    """Per small area and sector: distance from its centroid to the nearest site, before/after."""
    columns = {
        c: pd.Series(dtype="float64" if c.endswith("_m") else object) for c in ACCESS_COLUMNS
    }
    if areas is None or len(areas) == 0:
        return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries([], crs=WORKING_CRS))
    centroids = shapely.centroid(np.asarray(areas.geometry.values, dtype=object))
    geoms = np.asarray(frame.geometry.values, dtype=object)
    sector = text_column(frame, "sector").astype(str)
    parts = []
    for name in sorted(set(sector[located])):
        before = _nearest(centroids, geoms[located & (sector == name)])
        after = _nearest(centroids, geoms[located & (sector == name) & ~released])
        parts.append(
            pd.DataFrame(
                {
                    "code": areas["code"].to_numpy(),
                    "name": areas["name"].to_numpy() if "name" in areas else None,
                    "sector": name,
                    "before_m": before,
                    "after_m": after,
                    "increase_m": after - before,
                    "geometry": np.asarray(areas.geometry.values, dtype=object),
                }
            )
        )
    if not parts:
        return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries([], crs=WORKING_CRS))
    return gpd.GeoDataFrame(
        pd.concat(parts, ignore_index=True), geometry="geometry", crs=WORKING_CRS
    )


def _nearest(points: np.ndarray, sites: np.ndarray) -> np.ndarray:
    if len(sites) == 0:
        return np.full(len(points), np.nan)
    tree = shapely.STRtree(sites)
    (which, _), dist = tree.query_nearest(points, return_distance=True, all_matches=False)
    out = np.full(len(points), np.nan)
    out[which] = dist
    return out


def _headline(
    frame: pd.DataFrame,
    flows: gpd.GeoDataFrame,
    access: gpd.GeoDataFrame,
    settings: AnalysisSettings,
    info: dict[str, Any],
    candidate: np.ndarray,
    distance: float,
) -> dict[str, Any]:
    released = (frame["role"] == "released").to_numpy()
    rel = frame.loc[released]
    backlog = {risk: float(rel[f"backlog_avoided_{risk}_gbp"].sum()) for risk in RISKS}
    access_summary = access_headline(access, frame, settings.access_threshold_m)
    not_released = frame.loc[frame["role"] == "not_released", "pool_reason"]
    why = not_released.str.replace(r"(?<![A-Za-z])\d[\d,.]*", "N", regex=True).value_counts()
    return {
        "max_distance_m": distance,
        "sites_in_portfolio": len(frame),
        "sites_considered": int(candidate.sum()),
        "sites_released": int(released.sum()),
        "sites_receiving": int((frame["role"] == "receiving").sum()),
        "flagged_protected": int(
            ((frame["role"] == "protected") & (frame["flag_count"] > 0)).sum()
        ),
        "flagged_not_released": int((frame["role"] == "not_released").sum()),
        "flagged_receiving": int(((frame["role"] == "receiving").to_numpy() & candidate).sum()),
        "not_released_reasons": {str(k): int(v) for k, v in why.items()},
        "floor_area_released_m2": float(np.nansum(numeric_column(rel, "gia_m2"))),
        "floor_area_moved_m2": float(flows["floor_area_m2"].sum()),
        "running_cost_saved_gbp": float(rel["running_cost_saved_gbp"].sum()),
        "backlog_avoided_gbp": backlog,
        "backlog_avoided_total_gbp": float(sum(backlog.values())),
        "land_released_ha": float(rel["land_released_ha"].sum()),
        "indicative_receipts_gbp": float(rel["indicative_receipt_gbp"].sum()),
        "receipt_unknown_sites": int((rel["receipt_basis"] == "unknown").sum()),
        "receipt_assumptions": settings.receipt_assumptions(),
        "access": access_summary,
        "status": info["status"],
        "mip_gap": info["mip_gap"],
        "milp_variables": info.get("variables", 0),
        "milp_pairs": info.get("pairs", 0),
        "milp_parts": info.get("parts", 0),
        "solve_seconds": info.get("solve_seconds", 0.0),
    }


def access_headline(
    access: pd.DataFrame, sites: pd.DataFrame, threshold_m: float
) -> dict[str, Any]:
    """Mean and worst increase and areas pushed beyond the threshold, over affected sectors."""
    released_sectors = sorted(set(sites.loc[sites["role"] == "released", "sector"].astype(str)))
    rows = access[access["sector"].isin(released_sectors)] if len(access) else access
    if len(rows) == 0:
        return {
            "mean_increase_m": 0.0,
            "worst_increase_m": 0.0,
            "areas_beyond_threshold": 0,
            "threshold_m": threshold_m,
            "sectors": released_sectors,
            "areas": int(access["code"].nunique()) if len(access) else 0,
        }
    after = rows["after_m"].fillna(np.inf)
    beyond = (rows["before_m"] <= threshold_m) & (after > threshold_m)
    increase = rows["increase_m"].fillna(np.inf)
    return {
        "mean_increase_m": float(increase.mean()),
        "worst_increase_m": float(increase.max()),
        "areas_beyond_threshold": int(rows.loc[beyond, "code"].nunique()),
        "threshold_m": threshold_m,
        "sectors": released_sectors,
        "areas": int(access["code"].nunique()),
    }
