"""Co-location clusters: real Trafford sites against brute force + union-find, and edge cases."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from estates.analysis import colocation
from estates.analysis.colocation import colocate
from tests.analysis_data import boundary, eric_sites, gp_sites, trafford_sites, within


def _union_find_clusters(
    xy: np.ndarray, orgs: list[str], ids: list[int], distance: float
) -> set[frozenset[int]]:
    """Independent: all pairwise distances, union-find, keep components of >= 2 organisations."""
    parent = list(range(len(xy)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2))
    for a, b in zip(*np.nonzero(np.triu(d <= distance, k=1)), strict=True):
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[ra] = rb
    groups: dict[int, list[int]] = {}
    for k in range(len(xy)):
        groups.setdefault(find(k), []).append(k)
    return {
        frozenset(ids[k] for k in members)
        for members in groups.values()
        if len({orgs[k] for k in members}) >= 2
    }


@pytest.fixture(scope="module")
def trafford() -> gpd.GeoDataFrame:
    """Trafford's public sites: council register, GP practices and ERIC sites in the district."""
    district = boundary("trafford_council_assets/boundaries/local_authority_district.geojson")
    council = trafford_sites()
    others = pd.concat([eric_sites(), gp_sites()], ignore_index=True)
    others = gpd.GeoDataFrame(others, geometry="geometry", crs="EPSG:27700")
    others = within(others[others.geometry.notna()], district)
    frame = pd.concat([council, others], ignore_index=True)
    return gpd.GeoDataFrame(frame, geometry="geometry", crs="EPSG:27700")


def test_trafford_clusters_at_800_m_match_brute_force(trafford: gpd.GeoDataFrame) -> None:
    sites, clusters = colocate(trafford, 800.0)
    located = trafford[trafford.geometry.notna() & ~trafford["non_geographic"]]
    assert located["organisation_code"].nunique() >= 3  # council, GP practices, NHS trusts
    xy = shapely.get_coordinates(np.asarray(located.geometry.values, dtype=object))
    expected = _union_find_clusters(
        xy,
        located["organisation_code"].tolist(),
        located["site_id"].astype(int).tolist(),
        800.0,
    )
    got = {frozenset(ids) for ids in clusters["site_ids"]}
    assert got == expected
    assert len(clusters) == len(expected) > 0
    # Per-site ids agree with the cluster table.
    members = sites[sites["cluster_id"].notna()]
    assert len(members) == sum(len(c) for c in expected)
    for row in clusters.itertuples():
        assert set(members.loc[members["cluster_id"] == row.cluster_id, "site_id"]) == set(
            row.site_ids
        )
        assert (
            row.n_organisations
            == members.loc[members["cluster_id"] == row.cluster_id, "organisation_code"].nunique()
        )


def test_cluster_figures_and_hulls(trafford: gpd.GeoDataFrame) -> None:
    sites, clusters = colocate(trafford, 800.0)
    assert clusters.crs.to_epsg() == 27700
    by_id = sites.set_index("site_id")
    for row in clusters.itertuples():
        members = by_id.loc[row.site_ids]
        assert row.combined_gia_m2 == pytest.approx(members["gia_m2"].sum())
        assert row.vacant_council_assets == int(
            ((members["sector"] == "council") & (members["occupancy"] == "vacant")).sum()
        )
        assert set(row.sectors.split(";")) == set(members["sector"])
        hull = row.geometry
        assert hull.geom_type == "Polygon"
        assert shapely.contains(hull, np.asarray(members.geometry.values, dtype=object)).all()


def _line(xs: list[float], orgs: list[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "site_id": list(range(1, len(xs) + 1)),
            "organisation_code": orgs,
            "organisation_name": orgs,
            "sector": ["nhs" if o.startswith("N") else "council" for o in orgs],
            "gia_m2": [100.0] * len(xs),
            "non_geographic": [False] * len(xs),
        },
        geometry=[shapely.Point(400_000 + x, 300_000) for x in xs],
        crs="EPSG:27700",
    )


def test_chains_link_and_the_distance_is_inclusive() -> None:
    # A-B 700 m, B-C 700 m (A-C 1,400 m): one component; D exactly 800 m from C joins;
    # E 800.01 m beyond D does not.
    sites = _line([0, 700, 1400, 2200, 3000.01], ["N1", "C1", "C1", "N1", "N2"])
    out, clusters = colocate(sites, 800.0)
    assert len(clusters) == 1
    assert sorted(clusters["site_ids"].iloc[0]) == [1, 2, 3, 4]
    assert out["cluster_id"].isna().tolist() == [False, False, False, False, True]
    assert str(out["cluster_id"].dtype) == "Int64"


def test_one_organisation_is_no_cluster_and_unlocated_sites_take_no_part() -> None:
    sites = _line([0, 100, 5000, 5100], ["C1", "C1", "N1", "C1"])
    sites.loc[3, "geometry"] = None
    sites.loc[2, "non_geographic"] = True
    before = sites.copy()
    out, clusters = colocate(sites, 800.0)
    assert clusters.empty
    assert out["cluster_id"].isna().all()
    pd.testing.assert_frame_equal(pd.DataFrame(sites), pd.DataFrame(before))


def test_wrong_crs_is_refused() -> None:
    with pytest.raises(ValueError, match="EPSG:27700"):
        colocate(_line([0, 10], ["N1", "C1"]).to_crs(4326))


def _brute_force_partition(xy: np.ndarray, distance: float) -> set[frozenset[int]]:
    """Independent: every pairwise distance, union-find; each component as a set of indices."""
    ids = list(range(len(xy)))
    orgs = [str(i) for i in ids]  # distinct organisations: every component counts
    components = _union_find_clusters(xy, orgs, ids, distance)
    singles = set(ids) - set().union(*components) if components else set(ids)
    return components | {frozenset([i]) for i in singles}


def _partition(labels: np.ndarray) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for i, label in enumerate(labels.tolist()):
        groups.setdefault(label, set()).add(i)
    return {frozenset(g) for g in groups.values()}


@pytest.mark.parametrize("distance", [60.0, 250.0, 800.0, 2500.0])
@pytest.mark.parametrize("grid", ["dense", "searched"])
def test_components_match_brute_force_on_real_points(
    trafford: gpd.GeoDataFrame, distance: float, grid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if grid == "searched":  # the look-up used for grids too large for an array
        monkeypatch.setattr(colocation, "_DENSE_GRID_MAX_CELLS", 0)
    located = trafford[colocation.located_mask(trafford)]
    geoms = np.asarray(located.geometry.values, dtype=object)
    expected = _brute_force_partition(shapely.get_coordinates(geoms), distance)
    assert 1 < len(expected) < len(geoms)  # some links, not one blob
    assert _partition(colocation.link_components(geoms, distance)) == expected


def test_components_at_exactly_the_distance_in_every_direction() -> None:
    # A lattice with spacing exactly the distance: each point links to its four
    # neighbours (inclusive) but not diagonally, across every cell offset of the grid;
    # jittered copies nudge pairs just inside and just outside the distance.
    rng = np.random.default_rng(7)
    lattice = np.array([(x, y) for x in range(12) for y in range(9)], dtype=float) * 800.0
    lattice += [431_000.0, 388_000.0]
    sparse = lattice[rng.random(len(lattice)) < 0.45]
    jitter = sparse + rng.normal(0.0, 0.02, sparse.shape)
    for xy in (lattice, sparse, jitter):
        geoms = shapely.points(xy)
        expected = _brute_force_partition(xy, 800.0)
        assert _partition(colocation.link_components(geoms, 800.0)) == expected
    assert len(_partition(colocation.link_components(shapely.points(lattice), 800.0))) == 1
    assert len(_brute_force_partition(jitter, 800.0)) > 1
    # Two sites just inside, at and just beyond the distance, straight and diagonal: the
    # farthest corners of touching grid cells are exactly where a shortcut would go wrong.
    linked = []
    for direction in ((1.0, 1.0), (1.0, -1.0), (1.0, 0.0), (0.0, 1.0)):
        unit = np.array(direction) / np.hypot(*direction)
        for r in (800.0 * (1 - 1e-7), 800.0, 800.0 * (1 + 1e-7), 800.0 * (1 + 1e-4)):
            xy = np.array([[431_000.0, 388_000.0], [431_000.0, 388_000.0] + r * unit])
            labels = colocation.link_components(shapely.points(xy), 800.0)
            assert _partition(labels) == _brute_force_partition(xy, 800.0), (direction, r)
            linked.append(bool(labels[0] == labels[1]))
    assert 0 < sum(linked) < len(linked)


def test_components_of_duplicates_and_a_grid_too_fine_to_number() -> None:
    xy = np.array([[400_000.0, 300_000.0]] * 3 + [[400_000.0, 300_000.5], [900_000.0, 1.0]])
    geoms = shapely.points(xy)
    # 1e-9 m: far too many cells to number, so the plain pair graph answers.
    assert _partition(colocation.link_components(geoms, 1e-9)) == {
        frozenset({0, 1, 2}),
        frozenset({3}),
        frozenset({4}),
    }
    assert _partition(colocation.link_components(geoms, 0.5)) == {
        frozenset({0, 1, 2, 3}),
        frozenset({4}),
    }
    assert colocation.link_components(geoms[:1], 800.0).tolist() == [0]
    assert colocation.link_components(geoms[:0], 800.0).tolist() == []
    with pytest.raises(ValueError, match="one point per site"):
        colocation.link_components(np.array([shapely.MultiPoint(xy[:2])]), 800.0)


@pytest.mark.parametrize(("distance", "at_least"), [(250.0, 20), (800.0, 3)])
def test_cluster_table_equals_a_per_cluster_computation(
    trafford: gpd.GeoDataFrame, distance: float, at_least: int
) -> None:
    # Some names, sectors and occupancies missing or in other words, to exercise the fallbacks.
    sites = trafford.copy()
    rng = np.random.default_rng(3)
    sites.loc[rng.random(len(sites)) < 0.2, "organisation_name"] = None
    sites.loc[rng.random(len(sites)) < 0.05, "sector"] = None
    sites.loc[rng.random(len(sites)) < 0.1, "occupancy"] = "Vacant (derelict)"
    out, clusters = colocate(sites, distance)
    assert len(clusters) >= at_least
    members = out[out["cluster_id"].notna()]
    for row in clusters.itertuples():
        group = members[members["cluster_id"] == row.cluster_id]
        labels = group["organisation_name"].fillna(group["organisation_code"])

        def joined(values: pd.Series) -> str:
            return ";".join(sorted({str(v) for v in values if pd.notna(v)}))

        assert row.organisations == joined(labels)
        assert row.organisation_codes == joined(group["organisation_code"])
        assert row.sectors == joined(group["sector"])
        assert row.n_sites == len(group)
        assert row.n_organisations == group["organisation_code"].nunique()
        assert row.site_ids == group["site_id"].astype(int).tolist()
        vacant = (group["sector"] == "council") & group["occupancy"].fillna(
            ""
        ).str.lower().str.contains("vacant")
        assert row.vacant_council_assets == int(vacant.sum())
        assert row.vacant_council_gia_m2 == pytest.approx(
            group.loc[vacant, "gia_m2"].fillna(0).sum()
        )
        assert row.combined_spare_m2 == pytest.approx(group["spare_m2"].sum())
        hull = shapely.convex_hull(shapely.multipoints(np.asarray(group.geometry.values)))
        assert row.geometry.equals_exact(shapely.buffer(hull, colocation.HULL_BUFFER_M), 0.0)
    # Clusters are numbered in the order of their first site.
    firsts = [
        members.index.get_loc(members.index[members["cluster_id"] == c][0])
        for c in clusters["cluster_id"]
    ]
    assert firsts == sorted(firsts)
    assert clusters["cluster_id"].tolist() == list(range(1, len(clusters) + 1))
