"""Co-location clusters: real Trafford sites against brute force + union-find, and edge cases."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

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
