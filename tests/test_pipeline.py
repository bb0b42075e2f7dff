"""Database -> analysis -> stored run, on the GeoPackage and on PostGIS, with real data."""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import shapely

import estates
from estates import parallel
from estates.analysis.flags import FLAG_NAMES
from estates.analysis.settings import load_settings
from estates.errors import NotFoundError
from estates.ingest import load_boundaries, load_council, load_eric, load_points, load_postcodes
from estates.parallel import forked
from estates.pipeline import (
    latest_run,
    load_run,
    run_colocation,
    run_flags,
    run_flags_and_colocation,
    run_pooling,
    run_sensitivity,
)
from tests.analysis_data import boundary
from tests.conftest import shared_file
from tests.test_analysis_colocation import _union_find_clusters
from tests.test_analysis_flags import _independent_eric_flags
from tests.test_analysis_pooling import check_scenario

TRAFFORD = "E08000009"


def test_eric_flags_run_is_stored_and_read_back(estate: estates.Estate) -> None:
    load_eric(estate, shared_file("eric_site_2019_20/ERIC_201920_SiteData_for_R.csv"))
    run = run_flags(estate)
    expected, total_spare = _independent_eric_flags()
    assert run.summary["flag_counts"] == expected
    assert run.summary["total_spare_m2"] == pytest.approx(total_spare, rel=1e-9)
    assert run.summary["sites_assessed"] == 1261 - 176
    assert run.summary["periods"] == ["2019/20"]
    assert run.summary["thresholds"]["underused_space_max_pct"] == 2.5

    stored = load_run(estate, run.run_id)
    assert stored.kind == "flags"
    assert stored.code_version == estates.__version__
    assert stored.parameters == load_settings().to_dict()
    assert stored.summary["flag_counts"] == expected
    assert len(stored.sites) == len(run.sites)
    fresh = run.sites.set_index("site_id")
    back = stored.sites.set_index("site_id").loc[fresh.index]
    for name in FLAG_NAMES:
        assert (back[f"flag_{name}"] == fresh[f"flag_{name}"]).all()
    assert (back["flag_sentences"] == fresh["flag_sentences"]).all()
    assert np.allclose(back["spare_m2"].astype(float), fresh["spare_m2"], equal_nan=True)
    assert latest_run(estate) == run.run_id


def _load_sites(estate: estates.Estate) -> None:
    """ERIC, the Trafford register and GP practices: NHS and council sites side by side."""
    load_eric(estate, shared_file("eric_site_2019_20/ERIC_201920_SiteData_for_R.csv"))
    load_council(
        estate, shared_file("trafford_council_assets/trafford_land_and_building_assets.csv")
    )
    load_points(
        estate,
        shared_file("nhs_tu_asset_mapping/gp_practices_geo.csv"),
        organisation="gp-practices",
        sector="nhs",
    )


def test_trafford_colocation_and_pooling_runs(estate: estates.Estate) -> None:
    load_postcodes(estate, shared_file("gm_postcodes_boundaries/ukpostcodes.csv"))
    load_boundaries(
        estate,
        shared_file("trafford_council_assets/boundaries/local_authority_district.geojson"),
        kind="lad",
    )
    load_boundaries(
        estate, shared_file("trafford_council_assets/boundaries/lsoa.geojson"), kind="lsoa"
    )
    _load_sites(estate)
    sites = estate.sites(footprint=TRAFFORD, measures=True)
    assert sites["sector"].nunique() == 2 and len(sites) > 300

    # Co-location at 800 m against brute force + union-find on the same sites.
    coloc = run_colocation(estate, footprint=TRAFFORD, distance_m=800.0)
    located = sites[sites.geometry.notna() & ~sites["non_geographic"]]
    expected = _union_find_clusters(
        shapely.get_coordinates(np.asarray(located.geometry.values, dtype=object)),
        located["organisation_code"].tolist(),
        located["site_id"].astype(int).tolist(),
        800.0,
    )
    assert {frozenset(c) for c in coloc.clusters["site_ids"]} == expected
    assert coloc.summary["cluster_count"] == len(expected)
    stored = load_run(estate, coloc.run_id)
    clusters = stored.layers["clusters"]
    assert len(clusters) == len(expected)
    assert {frozenset(c) for c in clusters["site_ids"]} == expected
    assert clusters.crs.to_epsg() == 27700
    assert (clusters.geom_type == "Polygon").all()
    assert str(stored.sites["cluster_id"].dtype) == "Int64"
    assert {"spare_m2", "empty_pct"} <= set(coloc.sites.columns)  # the measures found

    # Handed a flag run's sites, co-location finds the same clusters without reading the
    # sites again, keeps the flags on its sites and leaves them out of its stored run.
    flags = run_flags(estate, footprint=TRAFFORD)
    shared = run_colocation(estate, footprint=TRAFFORD, distance_m=800.0, sites=flags.sites)
    assert {frozenset(c) for c in shared.clusters["site_ids"]} == expected
    assert shared.sites["cluster_id"].equals(coloc.sites["cluster_id"])
    assert shared.sites["flags"].equals(flags.sites["flags"])
    again = load_run(estate, shared.run_id).sites
    assert again["flags"].isna().all() and "flag_vacant" not in again
    assert again.set_index("site_id")["cluster_id"].equals(
        stored.sites.set_index("site_id")["cluster_id"]
    )

    # Pooling: the checker on the scenario, and the stored layers read back whole.
    settings = load_settings()
    pool = run_pooling(estate, footprint=TRAFFORD, settings=settings)
    check_scenario(pool.scenario, sites, settings, settings.max_distance_m)
    district = boundary("trafford_council_assets/boundaries/local_authority_district.geojson")
    lsoa = boundary("trafford_council_assets/boundaries/lsoa.geojson")
    inside = int(district.geometry.iloc[0].covers(lsoa.geometry.centroid).sum())
    assert pool.summary["access_areas"].startswith(f"{inside} LSOA areas")
    assert pool.access["code"].nunique() == inside
    assert pool.summary["sites_released"] >= int((sites["occupancy"] == "vacant").sum()) - 1
    back = load_run(estate, pool.run_id)
    assert len(back.layers.get("access", [])) == len(pool.access)
    assert len(back.layers.get("flows", [])) == len(pool.flows)
    roles = back.sites.set_index("site_id")["role"]
    assert (roles.loc[pool.sites["site_id"]].to_numpy() == pool.sites["role"].to_numpy()).all()
    assert back.summary["running_cost_saved_gbp"] == pytest.approx(
        pool.summary["running_cost_saved_gbp"]
    )

    sens = run_sensitivity(estate, footprint=TRAFFORD)
    assert sens.summary["sites"] == len(sites)
    assert load_run(estate, sens.run_id).kind == "sensitivity"


def test_unknown_footprint_and_run_say_what_exists(estate: estates.Estate) -> None:
    with pytest.raises(estates.NotFoundError, match="footprint 'E99999999' has no sites"):
        run_flags(estate, footprint="E99999999")
    with pytest.raises(estates.NotFoundError, match="analysis run 12345 does not exist"):
        load_run(estate, 12345)
    with pytest.raises(LookupError, match="no analysis run"):
        latest_run(estate)


def _stored(estate: estates.Estate, run_id: int) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    run = load_run(estate, run_id)
    layers = {k: pd.DataFrame(v).drop(columns="geometry") for k, v in run.layers.items()}
    return pd.DataFrame(run.sites), layers


def test_flags_and_colocation_together_are_the_two_runs_in_turn(estate: estates.Estate) -> None:
    """One read of the sites, co-location in a forked process: the same runs, results,
    cluster ids and run order as run_flags then run_colocation of its sites."""
    _load_sites(estate)
    flags = run_flags(estate)
    coloc = run_colocation(estate, distance_m=800.0, sites=flags.sites)
    both = run_flags_and_colocation(estate, distance_m=800.0)
    assert [r.run_id for r in both] == [coloc.run_id + 1, coloc.run_id + 2]
    assert (load_run(estate, both[0].run_id).kind, load_run(estate, both[1].run_id).kind) == (
        "flags",
        "colocation",
    )
    assert coloc.clusters["n_sites"].sum() > 50  # a real test: many sites in clusters
    pd.testing.assert_frame_equal(
        pd.DataFrame(both[1].sites.drop(columns="geometry")),
        pd.DataFrame(coloc.sites.drop(columns="geometry")),
    )
    assert both[1].sites.geometry.equals(coloc.sites.geometry)
    pd.testing.assert_frame_equal(both[1].clusters, coloc.clusters)
    for ours, theirs in ((both[0], flags), (both[1], coloc)):
        ignore = ("run_id", "elapsed_s")
        assert {k: v for k, v in ours.summary.items() if k not in ignore} == {
            k: v for k, v in theirs.summary.items() if k not in ignore
        }
        (our_sites, our_layers), (their_sites, their_layers) = (
            _stored(estate, ours.run_id),
            _stored(estate, theirs.run_id),
        )
        pd.testing.assert_frame_equal(our_sites, their_sites)
        assert our_layers.keys() == their_layers.keys()
        for name, frame in our_layers.items():
            pd.testing.assert_frame_equal(frame, their_layers[name])


def test_a_forked_computation_returns_its_result_or_raises_its_error() -> None:
    """The child shares the parent's memory; results and errors come back through a pipe."""
    big = np.arange(2_000_000)  # not pickled to the child: shared by the fork

    def total(scale: int) -> int:
        return int(big.sum()) * scale

    def fails() -> None:
        raise NotFoundError("no such footprint 'X'")

    def exits() -> None:
        os._exit(3)

    with forked(total, 2) as result:
        assert result() == int(big.sum()) * 2
    with forked(fails) as result, pytest.raises(NotFoundError, match="no such footprint"):
        result()
    assert parallel.can_fork_now() == (sys.platform == "linux")  # no silent one-core tests
    if parallel.can_fork_now():
        with forked(os.getpid) as result:
            assert result() != os.getpid()
        with forked(exits) as result, pytest.raises(parallel.ForkedCallError, match="code 3"):
            result()
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:  # a second thread might hold a lock the child would need: run here
        with forked(os.getpid) as result:
            assert result() == os.getpid()
    finally:
        stop.set()
        other.join()
    with pytest.raises(ValueError, match="the block failed"), forked(time.sleep, 30):
        raise ValueError("the block failed")  # the child is stopped, not waited for
