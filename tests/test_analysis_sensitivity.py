"""Threshold sensitivity on ERIC 2019/20, against shares computed independently."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from estates.analysis.flags import FLAG_NAMES, flag_sites
from estates.analysis.sensitivity import flag_sensitivity, sweep_settings
from estates.analysis.settings import load_settings
from tests.analysis_data import eric_number, eric_raw, eric_sites


@pytest.fixture(scope="module")
def eric() -> gpd.GeoDataFrame:
    return eric_sites()


@pytest.fixture(scope="module")
def shares(eric: gpd.GeoDataFrame) -> pd.DataFrame:
    return flag_sensitivity(eric, load_settings())


def test_one_setting_per_combination() -> None:
    settings = load_settings()
    variants = sweep_settings(settings)
    sizes = [
        len(settings.sweep_underused_space_max_pct),
        len(settings.sweep_peer_quantile),
        len(settings.sweep_not_functionally_suitable_max_pct),
        len(settings.sweep_surplus_land_min_ha),
    ]
    assert len(variants) == int(np.prod(sizes)) == 192
    assert len({(v.underused_space_max_pct, v.peer_quantile) for v in variants}) == 12


def test_single_threshold_shares_match_the_csv(shares: pd.DataFrame) -> None:
    settings = load_settings()
    raw = eric_raw()
    empty = eric_number(raw, "Floor area - empty (%)")
    under = eric_number(raw, "Floor area - under used (%)")
    hundredths = (empty * 100).round() + (under * 100).round()
    expected = np.mean(
        [(hundredths > round(v * 100)).to_numpy() for v in settings.sweep_underused_space_max_pct],
        axis=0,
    )
    assessed = ~shares.index.isin(shares.index[shares["share_underused_space"].isna()])
    assert np.allclose(shares.loc[assessed, "share_underused_space"], expected[assessed])
    nfs = eric_number(raw, "Not functionally suitable - occupied floor area (%)").to_numpy()
    expected_nfs = np.mean(
        [nfs > v for v in settings.sweep_not_functionally_suitable_max_pct], axis=0
    )
    assert np.allclose(
        shares.loc[assessed, "share_not_functionally_suitable"], expected_nfs[assessed]
    )


def test_any_flag_share_and_own_setting(eric: gpd.GeoDataFrame, shares: pd.DataFrame) -> None:
    assert shares["share_flagged"].dropna().between(0, 1).all()
    # A site's any-flag share is at least each of its single-rule shares.
    per_rule = shares[[f"share_{n}" for n in FLAG_NAMES]].fillna(0).max(axis=1)
    assert (shares["share_flagged"].fillna(0) + 1e-12 >= per_rule).all()
    # The default thresholds are one of the swept settings: flagged there => share > 0.
    own = flag_sites(eric, load_settings())["flag_count"] > 0
    assert (shares.loc[own, "share_flagged"] > 0).all()
    assert (shares["flagged_at_settings"] == own.astype(float)).all()
    # Robust flags: flagged under every setting.
    robust = shares[shares["robustness"] == "robust"]
    assert len(robust) > 0 and (robust["share_flagged"] >= 0.8).all()
    never = shares[shares["robustness"] == "never flagged"]
    assert (never["share_flagged"] == 0).all()


def test_pooled_rows_are_not_assessable(eric: gpd.GeoDataFrame, shares: pd.DataFrame) -> None:
    pooled = eric["non_geographic"].to_numpy()
    assert shares.loc[pooled, "share_flagged"].isna().all()
    assert (shares.loc[pooled, "robustness"] == "not assessable").all()


def test_sensitivity_does_not_mutate_its_input(eric: gpd.GeoDataFrame) -> None:
    small = eric.head(50).copy()
    before = small.copy()
    flag_sensitivity(small, load_settings())
    pd.testing.assert_frame_equal(pd.DataFrame(small), pd.DataFrame(before))
