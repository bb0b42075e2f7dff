"""One-body pooling: a from-scratch checker on real and synthetic footprints, known optima."""

from __future__ import annotations

import itertools
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.optimize import linprog

from estates.analysis.pooling import ROLES, PoolingScenario, pool_footprint
from estates.analysis.settings import AnalysisSettings, load_settings
from tests.analysis_data import boundary, eric_sites, gp_sites, trafford_sites, within

RISKS = ("high", "significant", "moderate", "low")


def _num(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def check_scenario(
    scenario: PoolingScenario,
    inputs: gpd.GeoDataFrame,
    settings: AnalysisSettings,
    max_distance: float,
) -> None:
    """Verify a scenario from the input frame alone (never from the code's own measures)."""
    out = scenario.sites
    by_id = inputs.set_index("site_id")
    ids = out["site_id"].to_numpy()
    assert sorted(ids) == sorted(inputs["site_id"])
    assert set(out["role"]) <= set(ROLES)
    raw = by_id.loc[ids]
    gia = _num(raw, "gia_m2")
    empty, under = _num(raw, "empty_pct"), _num(raw, "underused_pct")
    spare = gia * (empty + under) / 100
    given = _num(raw, "occupied_floor_area_m2")
    occupied = np.where(np.isnan(given), gia - spare, given)
    vacant = (raw["sector"].to_numpy() == "council") & (
        raw.get("occupancy", pd.Series(None, index=raw.index)).astype(str).str.lower() == "vacant"
    ).to_numpy()
    need = pd.Series(np.where(vacant, 0.0, occupied), index=ids)
    capacity = pd.Series(np.nan_to_num(spare) * settings.receiving_capacity_share, index=ids)
    released = pd.Series((out["role"] == "released").to_numpy(), index=ids)
    flows = scenario.flows

    # 1. Every released site's occupied floor area is re-provided in full, and only theirs.
    moved = flows.groupby("from_site_id")["floor_area_m2"].sum()
    for site_id in ids[released.to_numpy()]:
        assert moved.get(site_id, 0.0) == pytest.approx(need[site_id], abs=1e-3), site_id
    assert set(flows["from_site_id"]) <= set(ids[released.to_numpy()])
    # 2. No receiving site over its spare capacity; released sites receive nothing.
    received = flows.groupby("to_site_id")["floor_area_m2"].sum()
    for site_id, area in received.items():
        assert area <= capacity[site_id] + 1e-3, site_id
        assert not released[site_id]
    assert (flows["floor_area_m2"] > 0).all()
    # 3. Every flow within the distance limit, measured again from the input points.
    points = by_id.geometry
    for row in flows.itertuples():
        d = points[row.from_site_id].distance(points[row.to_site_id])
        assert d <= max_distance + 1e-6
        assert row.distance_m == pytest.approx(d)
        start, end = row.geometry.coords
        assert start == pytest.approx(points[row.from_site_id].coords[0])
        assert end == pytest.approx(points[row.to_site_id].coords[0])
    # 4. Protected sites are never released.
    protected = (
        raw["site_type"].isin(settings.protected_site_types)
        | raw["sector"].isin(settings.protected_sectors)
        | raw["source_key"].isin(settings.protected_source_keys)
    ).to_numpy()
    assert not (protected & released.to_numpy()).any()
    # 5. Compatibility: sectors and use groups, from the settings tables directly.
    for row in flows.itertuples():
        a, b = by_id.loc[row.from_site_id], by_id.loc[row.to_site_id]
        assert b["sector"] in settings.compatible_sectors[a["sector"]]
        group_a = settings.use_groups.get(a["site_type"], "general")
        group_b = settings.use_groups.get(b["site_type"], "general")
        assert group_b in settings.group_receivers[group_a]
    # 6. Released sites were flagged by a release rule and are located.
    flagged = np.zeros(len(out), dtype=bool)
    for rule in settings.release_flags:
        flagged |= (out[f"flag_{rule}"] == "flagged").to_numpy()
    assert not (released.to_numpy() & ~flagged).any()
    assert raw.geometry[released.to_numpy()].notna().all()
    # 7. Money: the saving equals the sum over released sites, from the inputs.
    running = pd.Series(_num(raw, "running_cost_gbp"), index=ids)
    expected_saving = sum(
        np.nan_to_num(running[i] - settings.receiving_cost_gbp_per_m2 * need[i])
        for i in ids[released.to_numpy()]
    )
    headline = scenario.headline
    assert headline["running_cost_saved_gbp"] == pytest.approx(expected_saving, abs=1e-3)
    for risk in RISKS:
        expected = np.nansum(_num(raw, f"backlog_{risk}_gbp")[released.to_numpy()])
        assert headline["backlog_avoided_gbp"][risk] == pytest.approx(expected, abs=1e-6)
    assert headline["land_released_ha"] == pytest.approx(
        np.nansum(_num(raw, "land_ha")[released.to_numpy()])
    )
    assert headline["sites_released"] == int(released.sum())
    assert headline["floor_area_moved_m2"] == pytest.approx(flows["floor_area_m2"].sum())
    # 8. A flagged site that stays says why.
    stays = out["role"] == "not_released"
    assert out.loc[stays, "pool_reason"].str.startswith("not released").all()
    assert (out.loc[stays, "flag_count"] > 0).all()


def _sites(rows: list[dict[str, Any]]) -> gpd.GeoDataFrame:
    """Hand-made sites: x, y in metres; NHS community sites unless told otherwise."""
    defaults = {
        "organisation_code": "N1",
        "organisation_name": "Trust",
        "sector": "nhs",
        "site_type": "7. Community hospital (with inpatient beds)",
        "tenure": "1. Freehold",
        "non_geographic": False,
        "empty_pct": 0.0,
        "underused_pct": 0.0,
        "not_functionally_suitable_pct": 50.0,  # flagged: a release candidate
        "backlog_high_gbp": 0.0,
        "backlog_significant_gbp": 0.0,
        "backlog_moderate_gbp": 0.0,
        "backlog_low_gbp": 0.0,
        "land_ha": 1.0,
        "land_not_delivering_ha": 0.0,
    }
    frame = pd.DataFrame([{**defaults, **r} for r in rows])
    frame["site_id"] = np.arange(1, len(frame) + 1)
    frame["source_key"] = [f"t:{i}" for i in frame["site_id"]]
    frame["name"] = [f"site {i}" for i in frame["site_id"]]
    geometry = shapely.points(400_000 + frame.pop("x"), 300_000 + frame.pop("y"))
    return gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:27700")


def _receiver(x: float, spare_m2: float, **extra: Any) -> dict[str, Any]:
    """A site with exactly ``spare_m2`` empty floor area and no release flag."""
    return {
        "x": x,
        "y": 0.0,
        "gia_m2": 10_000.0,
        "empty_pct": spare_m2 / 100.0,
        "not_functionally_suitable_pct": 0.0,
        "running_cost_gbp": 1.0,
        **extra,
    }


def _candidate(x: float, need: float, saving: float, **extra: Any) -> dict[str, Any]:
    return {"x": x, "y": 0.0, "gia_m2": need, "running_cost_gbp": saving, **extra}


def test_known_optimum_of_a_tiny_case() -> None:
    # One receiver with 100 m2; candidates need 60 (saves 10), 50 (8), 40 (7): the best
    # subset that fits is {60, 40} = 17 (not {60} = 10 or {50, 40} = 15).
    sites = _sites(
        [
            _receiver(0, 100.0),
            _candidate(500, 60, 10.0),
            _candidate(600, 50, 8.0),
            _candidate(700, 40, 7.0),
            _candidate(9_000, 10, 99.0),  # out of reach
            _candidate(400, 10, 50.0, site_type="1. General acute hospital"),  # protected
            _candidate(
                300, 10, 50.0, site_type="4. Mental Health (including Specialist services)"
            ),  # mental health floor area may go only to mental health sites
        ]
    )
    settings = load_settings()
    scenario = pool_footprint(sites, settings, max_distance_m=3000)
    roles = scenario.sites.set_index("site_id")["role"]
    assert roles[2] == "released" and roles[4] == "released"
    assert roles[3] == "not_released"
    assert roles[1] == "receiving"
    assert roles[5] == "not_released"
    assert roles[6] == "protected"
    assert roles[7] == "not_released"
    assert scenario.headline["running_cost_saved_gbp"] == pytest.approx(17.0)
    assert scenario.headline["status"] == "optimal"
    reasons = scenario.sites.set_index("site_id")["pool_reason"]
    assert "no compatible site with spare floor area within 3,000 m" in reasons[5]
    assert "no compatible site" in reasons[7]
    assert "saves more when used by other releases" in reasons[3]
    assert reasons[6].startswith("protected: site type '1. General acute hospital'")
    check_scenario(scenario, sites, settings, 3000)


def test_a_candidate_can_receive_or_be_released_but_not_both() -> None:
    # A needs 50, saves 100 and has 80 m2 spare; B needs 70, saves 30; R has 50 m2.
    # Releasing A into R (100) beats keeping A to receive B (30): B then has nowhere to go.
    sites = _sites(
        [
            {**_candidate(0, 0, 100.0), "gia_m2": 130.0, "empty_pct": 80 / 1.3},
            _candidate(500, 70, 30.0),
            _receiver(1000, 50.0),
        ]
    )
    settings = load_settings()
    scenario = pool_footprint(sites, settings, max_distance_m=3000)
    roles = scenario.sites.set_index("site_id")["role"]
    assert roles.tolist() == ["released", "not_released", "receiving"]
    assert scenario.headline["running_cost_saved_gbp"] == pytest.approx(100.0)
    check_scenario(scenario, sites, settings, 3000)


def test_floor_area_goes_to_the_nearest_capacity() -> None:
    # Two candidates compete for two receivers; both fit either way, so the placement
    # must be the least total distance: each to the receiver next to it.
    sites = _sites(
        [
            _candidate(0, 60, 10.0),
            _candidate(2000, 60, 10.0),
            _receiver(100, 60.0),
            _receiver(1900, 60.0),
        ]
    )
    settings = load_settings()
    scenario = pool_footprint(sites, settings, max_distance_m=3000)
    pairs = set(zip(scenario.flows["from_site_id"], scenario.flows["to_site_id"], strict=True))
    assert pairs == {(1, 3), (2, 4)}
    assert scenario.flows["distance_m"].tolist() == pytest.approx([100.0, 100.0])
    check_scenario(scenario, sites, settings, 3000)


def test_vacant_council_assets_are_released_without_moves() -> None:
    sites = _sites(
        [
            {
                "x": 0,
                "y": 0,
                "sector": "council",
                "organisation_code": "C1",
                "site_type": "Office",
                "occupancy": "vacant",
                "gia_m2": 400.0,
                "land_ha": np.nan,
                "tenure": "Freehold",
                "not_functionally_suitable_pct": np.nan,
                "running_cost_gbp": np.nan,
            }
        ]
    )
    settings = load_settings()
    scenario = pool_footprint(sites, settings)
    row = scenario.sites.iloc[0]
    assert row["role"] == "released"
    assert "nothing to re-provide (vacant)" in row["pool_reason"]
    assert scenario.flows.empty
    assert scenario.headline["indicative_receipts_gbp"] == pytest.approx(
        400.0 * settings.receipt_gbp_per_m2
    )
    check_scenario(scenario, sites, settings, settings.max_distance_m)


def _brute_force_best(
    sites: gpd.GeoDataFrame, settings: AnalysisSettings, distance: float
) -> float:
    """Best saving over every subset of candidates, each checked with an LP transport model."""
    gia = sites["gia_m2"].to_numpy()
    spare = gia * (sites["empty_pct"] + sites["underused_pct"]).to_numpy() / 100
    need = gia - spare
    saving = sites["running_cost_gbp"].to_numpy()
    candidate = (sites["not_functionally_suitable_pct"] > 10).to_numpy() & (saving > 0)
    xy = shapely.get_coordinates(np.asarray(sites.geometry.values, dtype=object))
    d = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(axis=2))
    best = 0.0
    cands = np.flatnonzero(candidate)
    for k in range(len(cands) + 1):
        for subset in itertools.combinations(cands, k):
            chosen = list(subset)
            receivers = [j for j in range(len(sites)) if j not in chosen and spare[j] > 0]
            pairs = [(i, j) for i in chosen for j in receivers if i != j and d[i, j] <= distance]
            if chosen and not pairs:
                continue
            if chosen:
                a_eq = np.array([[1.0 if p[0] == i else 0.0 for p in pairs] for i in chosen])
                a_ub = np.array([[1.0 if p[1] == j else 0.0 for p in pairs] for j in receivers])
                lp = linprog(
                    np.zeros(len(pairs)),
                    A_eq=a_eq,
                    b_eq=need[chosen],
                    A_ub=a_ub,
                    b_ub=spare[receivers],
                    bounds=(0, None),
                )
                if lp.status != 0:
                    continue
            best = max(best, float(saving[chosen].sum()))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_random_small_cases_reach_the_brute_force_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 9
    rows = []
    for _ in range(n):
        flagged = rng.random() < 0.6
        rows.append(
            {
                "x": float(rng.uniform(0, 4000)),
                "y": float(rng.uniform(0, 4000)),
                "gia_m2": float(rng.integers(100, 1000)),
                "empty_pct": float(rng.choice([0.0, 5.0, 20.0, 40.0])),
                "underused_pct": float(rng.choice([0.0, 10.0])),
                "not_functionally_suitable_pct": 50.0 if flagged else 0.0,
                "running_cost_gbp": float(rng.integers(1, 100)),
            }
        )
    sites = _sites(rows)
    settings = load_settings().replace(release_flags=("not_functionally_suitable",))
    scenario = pool_footprint(sites, settings, max_distance_m=2500)
    check_scenario(scenario, sites, settings, 2500)
    assert scenario.headline["status"] == "optimal"
    assert scenario.headline["running_cost_saved_gbp"] == pytest.approx(
        _brute_force_best(sites, settings, 2500), rel=1e-6
    )


def test_access_before_and_after_by_brute_force() -> None:
    # Two community sites; the west one is released into the east one. Areas are 1 km
    # squares along the line: the west squares now reach the east site.
    sites = _sites([_candidate(0, 50, 10.0), _receiver(3000, 100.0)])
    areas = gpd.GeoDataFrame(
        {"code": ["A", "B", "C"], "name": ["a", "b", "c"]},
        geometry=[
            shapely.box(400_000 + x - 500, 299_500, 400_000 + x + 500, 300_500)
            for x in (0, 1500, 3000)
        ],
        crs="EPSG:27700",
    )
    settings = load_settings().replace(access_threshold_m=2000.0)
    scenario = pool_footprint(sites, settings, areas=areas, max_distance_m=5000)
    access = scenario.access.set_index("code")
    centroids = {"A": 0.0, "B": 1500.0, "C": 3000.0}
    for code, x in centroids.items():
        assert access.loc[code, "before_m"] == pytest.approx(min(abs(x - 0), abs(x - 3000)))
        assert access.loc[code, "after_m"] == pytest.approx(abs(x - 3000))
    a = scenario.headline["access"]
    assert a["worst_increase_m"] == pytest.approx(3000.0)
    assert a["mean_increase_m"] == pytest.approx((3000.0 + 0.0 + 0.0) / 3)
    assert a["areas_beyond_threshold"] == 1  # A: 0 m -> 3,000 m
    check_scenario(scenario, sites, settings, 5000)


@pytest.fixture(scope="module")
def greater_manchester() -> gpd.GeoDataFrame:
    """Every located public site in the 10 GM districts: ERIC, GP practices, Trafford's register."""
    districts = boundary("gm_postcodes_boundaries/GM_LADS.geojson")
    frame = pd.concat([eric_sites(), gp_sites(), trafford_sites()], ignore_index=True)
    frame = gpd.GeoDataFrame(frame, geometry="geometry", crs="EPSG:27700")
    return within(frame[frame.geometry.notna()], districts).reset_index(drop=True)


def test_greater_manchester_scenario_passes_the_checker(
    greater_manchester: gpd.GeoDataFrame,
) -> None:
    settings = load_settings()
    scenario = pool_footprint(greater_manchester, settings)
    check_scenario(scenario, greater_manchester, settings, settings.max_distance_m)
    assert scenario.headline["status"] == "optimal"
    assert scenario.headline["sites_considered"] > 0


def test_greater_manchester_relaxed_rules_move_floor_area(
    greater_manchester: gpd.GeoDataFrame,
) -> None:
    # Let mental health and community services use acute hospitals' spare space, 5 km.
    base = load_settings()
    receivers = dict(base.group_receivers)
    receivers["mental_health"] = ("mental_health", "acute", "community")
    settings = base.replace(group_receivers=receivers)
    scenario = pool_footprint(greater_manchester, settings, max_distance_m=5000)
    check_scenario(scenario, greater_manchester, settings, 5000)
    assert len(scenario.flows) > 0
    assert scenario.headline["running_cost_saved_gbp"] > 0


def test_synthetic_footprint_with_linked_candidates(greater_manchester: gpd.GeoDataFrame) -> None:
    rng = np.random.default_rng(7)
    n = 300
    rows = [
        {
            "x": float(rng.normal(0, 2500)),
            "y": float(rng.normal(0, 2500)),
            "gia_m2": float(rng.integers(200, 5000)),
            "empty_pct": float(rng.choice([0.0, 0.0, 3.0, 8.0, 15.0])),
            "underused_pct": float(rng.choice([0.0, 0.0, 2.0, 6.0])),
            "not_functionally_suitable_pct": float(rng.choice([0.0, 0.0, 30.0])),
            "running_cost_gbp": float(rng.integers(10_000, 500_000)),
            "site_type": str(
                rng.choice(
                    [
                        "7. Community hospital (with inpatient beds)",
                        "1. General acute hospital",
                        "4. Mental Health (including Specialist services)",
                    ]
                )
            ),
        }
        for _ in range(n)
    ]
    sites = _sites(rows)
    settings = load_settings()
    scenario = pool_footprint(sites, settings, max_distance_m=2000)
    check_scenario(scenario, sites, settings, 2000)
    # Some released sites had spare space of their own: they were candidates and receivers.
    released = scenario.sites[scenario.sites["role"] == "released"]
    assert (released["spare_m2"] > 0).any()
    assert scenario.headline["sites_released"] > 10


def test_pooling_does_not_mutate_its_input() -> None:
    sites = _sites([_receiver(0, 100.0), _candidate(500, 60, 10.0)])
    before = sites.copy()
    pool_footprint(sites, load_settings())
    pd.testing.assert_frame_equal(pd.DataFrame(sites), pd.DataFrame(before))
