"""Measures, flags and settings, checked against independent pandas computations on real data."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from estates.analysis.flags import (
    FLAG_NAMES,
    PEER_RULES,
    flag_sites,
    flag_statuses,
    peer_thresholds,
)
from estates.analysis.measures import RUNNING_COST_DEFINITION, site_measures
from estates.analysis.settings import AnalysisSettings, load_settings
from estates.errors import ConfigurationError
from tests.analysis_data import (
    eric_number,
    eric_raw,
    eric_running_cost,
    eric_sites,
    trafford_sites,
)


@pytest.fixture(scope="module")
def eric() -> gpd.GeoDataFrame:
    return eric_sites()


@pytest.fixture(scope="module")
def eric_flagged(eric: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return flag_sites(eric, load_settings())


def _independent_eric_flags() -> tuple[dict[str, int], float]:
    """Per-flag counts and total spare m2 for ERIC 2019/20, straight from the CSV."""
    raw = eric_raw()
    pooled = (raw["Site Name"].str.upper() == "OTHER REPORTABLE SITES") | (
        raw["Site Type"].str.upper() == "OTHER REPORTABLE SITE"
    )
    raw = raw[~pooled].reset_index(drop=True)
    gia = eric_number(raw, "Gross internal floor area (m²)")
    empty = eric_number(raw, "Floor area - empty (%)")
    under = eric_number(raw, "Floor area - under used (%)")
    # Decimal-safe comparison: percentages have at most 2 decimals, so compare in hundredths.
    spare_hundredths = (empty * 100).round() + (under * 100).round()
    counts = {"underused_space": int(((spare_hundredths > 250) & (gia > 0)).sum())}
    counts["vacant"] = 0
    land = eric_number(raw, "Land area not delivering services (Hectares)")
    counts["surplus_land"] = int((land > 0).sum())
    nfs = eric_number(raw, "Not functionally suitable - occupied floor area (%)")
    counts["not_functionally_suitable"] = int((nfs > 10).sum())
    high = eric_number(raw, "Cost to eradicate high risk backlog (£)")
    significant = eric_number(raw, "Cost to eradicate significant risk backlog (£)")
    per_m2 = {
        "poor_condition": (high + significant) / gia.where(gia > 0),
        "high_running_cost": eric_running_cost(raw) / gia.where(gia > 0),
    }
    for rule, values in per_m2.items():
        n = 0
        for _site_type, group in values.groupby(raw["Site Type"]):
            known = group.dropna().to_numpy()
            if len(known) < 4:
                continue
            n += int((known > np.percentile(known, 75)).sum())
        counts[rule] = n
    total_spare = float((gia * (empty + under) / 100).sum())
    return counts, total_spare


def test_eric_flag_counts_and_spare_match_an_independent_computation(
    eric_flagged: gpd.GeoDataFrame,
) -> None:
    expected, total_spare = _independent_eric_flags()
    got = {name: int((eric_flagged[f"flag_{name}"] == "flagged").sum()) for name in FLAG_NAMES}
    assert got == expected
    assessed = ~eric_flagged["non_geographic"]
    assert eric_flagged.loc[assessed, "spare_m2"].sum() == pytest.approx(total_spare, rel=1e-9)
    # The published total GIA, to check the frame itself was read whole.
    assert eric_flagged["gia_m2"].sum() == pytest.approx(26_808_908)


def test_missing_inputs_are_never_a_pass(eric_flagged: gpd.GeoDataFrame) -> None:
    assessed = ~eric_flagged["non_geographic"]
    no_land = assessed & eric_flagged["land_not_delivering_ha"].isna()
    assert no_land.sum() > 100  # 'Not Applicable' in the file
    assert (eric_flagged.loc[no_land, "flag_surplus_land"] == "not_assessable").all()
    assert eric_flagged.loc[no_land, "reason_surplus_land"].str.startswith("not assessable").all()
    no_backlog = assessed & eric_flagged["backlog_high_gbp"].isna()
    assert no_backlog.sum() > 0
    assert (eric_flagged.loc[no_backlog, "flag_poor_condition"] == "not_assessable").all()


def test_pooled_rows_are_not_assessed(eric_flagged: gpd.GeoDataFrame) -> None:
    pooled = eric_flagged[eric_flagged["non_geographic"]]
    assert len(pooled) == 176
    for name in FLAG_NAMES:
        assert (pooled[f"flag_{name}"] == "not_applicable").all()
    assert (pooled["flag_count"] == 0).all()
    assert (pooled["flags"] == "").all()


def test_sentences_carry_the_numbers(eric_flagged: gpd.GeoDataFrame) -> None:
    raw = eric_raw().set_index("Site Code")
    row = eric_flagged[eric_flagged["source_key"] == "eric:R0A01"].iloc[0]
    assert row["flag_underused_space"] == "flagged"
    gia = float(eric_number(raw.reset_index(), "Gross internal floor area (m²)").iloc[0])
    spare = gia * (5 + 0) / 100
    assert row["reason_underused_space"] == (
        f"empty 5.0% + under-used 0.0% of {gia:,.0f} m2 GIA = {spare:,.0f} m2 spare; target <= 2.5%"
    )
    assert row["reason_underused_space"] in row["flag_sentences"].split("\n")
    flagged_cost = eric_flagged[eric_flagged["flag_high_running_cost"] == "flagged"].iloc[0]
    sentence = flagged_cost["reason_high_running_cost"]
    assert "excluding capital charges" in sentence
    assert f"£{flagged_cost['running_cost_gbp']:,.0f}" in sentence
    assert "top quartile of" in sentence
    # Joined names and sentences agree with the per-rule columns.
    multi = eric_flagged[eric_flagged["flag_count"] >= 2].iloc[0]
    names = [n for n in FLAG_NAMES if multi[f"flag_{n}"] == "flagged"]
    assert multi["flags"] == ";".join(names)
    assert multi["flag_sentences"].split("\n") == [multi[f"reason_{n}"] for n in names]


def test_flagging_does_not_mutate_its_input(eric: gpd.GeoDataFrame) -> None:
    before = eric.copy()
    flag_sites(eric, load_settings())
    site_measures(eric)
    pd.testing.assert_frame_equal(pd.DataFrame(eric), pd.DataFrame(before))


def test_trafford_vacant_assets_are_flagged() -> None:
    sites = trafford_sites()
    raw_vacant = int((sites["occupancy"] == "vacant").sum())
    assert raw_vacant == 187  # TenureDetail = Vacant in the published register
    flagged = flag_sites(sites, load_settings())
    assert int((flagged["flag_vacant"] == "flagged").sum()) == raw_vacant
    # Council rows have no ERIC measures: not assessable, never passing.
    assert (flagged["flag_underused_space"] == "not_assessable").all()
    sentence = flagged.loc[flagged["flag_vacant"] == "flagged", "reason_vacant"].iloc[0]
    assert sentence.startswith("council asset recorded as vacant")


def _frame(**columns: list[object]) -> gpd.GeoDataFrame:
    n = len(next(iter(columns.values())))
    base: dict[str, object] = {
        "site_id": list(range(1, n + 1)),
        "organisation_code": ["X"] * n,
        "sector": ["nhs"] * n,
        "site_type": ["T"] * n,
        "non_geographic": [False] * n,
    }
    base.update(columns)
    return gpd.GeoDataFrame(
        base, geometry=[shapely.Point(380_000 + i, 390_000) for i in range(n)], crs="EPSG:27700"
    )


def test_threshold_is_strict_and_float_safe() -> None:
    sites = _frame(
        gia_m2=[1000.0, 1000.0, 1000.0, 1000.0],
        empty_pct=[1.5, 2.4, 2.5, 2.5],
        underused_pct=[1.0, 0.1, 0.0, 0.01],
    )
    flagged = flag_sites(sites, load_settings())
    assert flagged["flag_underused_space"].tolist() == ["pass", "pass", "pass", "flagged"]


def test_unutilised_years_and_given_occupied_area() -> None:
    sites = _frame(
        gia_m2=[2000.0, 2000.0],
        empty_pct=[np.nan, 10.0],
        underused_pct=[np.nan, 0.0],
        unutilised_pct=[9.0, np.nan],
        occupied_floor_area_m2=[np.nan, 1500.0],
    )
    measured = site_measures(sites)
    assert measured["spare_m2"].tolist() == pytest.approx([180.0, 200.0])
    assert measured["occupied_floor_area_m2"].tolist() == pytest.approx([1820.0, 1500.0])
    reason = flag_sites(sites, load_settings())["reason_underused_space"].iloc[0]
    assert reason.startswith("un-utilised 9.0% of 2,000 m2 GIA = 180 m2 spare")


def test_small_peer_group_is_not_assessable() -> None:
    sites = _frame(
        gia_m2=[100.0, 100.0, 100.0],
        running_cost_gbp=[1000.0, 2000.0, 90000.0],
    )
    flagged = flag_sites(sites, load_settings())
    assert (flagged["flag_high_running_cost"] == "not_assessable").all()
    assert "peer comparison needs 4" in flagged["reason_high_running_cost"].iloc[2]
    wider = flag_sites(sites, load_settings().replace(min_peer_group=3))
    assert wider["flag_high_running_cost"].tolist() == ["pass", "pass", "flagged"]


def test_peers_can_come_from_a_wider_frame() -> None:
    peers = _frame(gia_m2=[100.0] * 8, running_cost_gbp=[float(v) for v in range(1, 9)])
    one = peers.iloc[[0]].copy()
    alone = flag_sites(one, load_settings())
    assert alone["flag_high_running_cost"].iloc[0] == "not_assessable"
    compared = flag_sites(peers.iloc[[7]].copy(), load_settings(), peers=peers)
    assert compared["flag_high_running_cost"].iloc[0] == "flagged"  # 8/100 > q75 of 1..8/100


def test_settings_defaults_and_overrides(tmp_path: Path) -> None:
    defaults = load_settings()
    assert defaults.underused_space_max_pct == 2.5
    assert defaults.peer_quantile == 0.75
    assert defaults.not_functionally_suitable_max_pct == 10.0
    assert "1. General acute hospital" in defaults.protected_site_types
    config = tmp_path / "mine.toml"
    config.write_text(
        '[flags]\nunderused_space_max_pct = 5\n[pooling.use_groups]\n"Clinic" = "community"\n',
        encoding="utf-8",
    )
    mine = load_settings(config)
    assert mine.underused_space_max_pct == 5.0
    assert mine.use_group("Clinic") == "community"
    assert mine.use_group("1. General acute hospital") == "acute"  # merged, not replaced
    assert mine.source == str(config)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[flags]\nunderused_max = 3\n", "unknown setting 'underused_max' in \\[flags\\]"),
        ("[flag]\nx = 1\n", "unknown section \\[flag\\]"),
        ('[flags]\npeer_quantile = "high"\n', "peer_quantile must be a number"),
        ("[flags]\npeer_quantile = 1.5\n", "peer_quantile must be between 0 and 1"),
        ('[pooling]\nrelease_flags = ["empty"]\n', "unknown flag\\(s\\) \\['empty'\\]"),
        ("[flags\n", "not valid TOML"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_settings(config)
    assert str(config) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_missing_settings_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def _per_row_sentences(frame: pd.DataFrame, settings: AnalysisSettings) -> dict[str, list[object]]:
    """Independent: each flagged site's sentence built from its own row (``iloc``), the way
    the sentences were first written, to hold the column-wise version to its words."""
    statuses = flag_statuses(frame, settings)
    rows = frame.reset_index(drop=True)
    q = settings.peer_quantile
    peers = {name: peer_thresholds(frame, column, q) for name, column in PEER_RULES.items()}

    def value(row: pd.Series, column: str) -> float:
        v = row.get(column)
        return float(v) if v is not None and pd.notna(v) else float("nan")

    def pct(v: float) -> str:
        text = f"{v:.2f}".rstrip("0")
        return text + "0" if text.endswith(".") else text

    def sentence(name: str, row: pd.Series) -> str:
        gia = value(row, "gia_m2")
        if name == "underused_space":
            target = f"target <= {pct(settings.underused_space_max_pct)}%"
            if not np.isnan(value(row, "unutilised_pct")):
                return (
                    f"un-utilised {pct(value(row, 'unutilised_pct'))}% of {gia:,.0f} m2 GIA = "
                    f"{value(row, 'spare_m2'):,.0f} m2 spare; {target}"
                )
            return (
                f"empty {pct(value(row, 'empty_pct'))}% + under-used "
                f"{pct(value(row, 'underused_pct'))}% of {gia:,.0f} m2 GIA = "
                f"{value(row, 'spare_m2'):,.0f} m2 spare; {target}"
            )
        if name == "vacant":
            parts = ["council asset recorded as vacant in the asset register"]
            if gia > 0:
                parts.append(f"{gia:,.0f} m2 building")
            if value(row, "land_ha") > 0:
                parts.append(f"{value(row, 'land_ha'):,.2f} ha land")
            return "; ".join(parts)
        if name == "surplus_land":
            return (
                f"{value(row, 'land_not_delivering_ha'):,.2f} ha of land not delivering "
                f"services; target {settings.surplus_land_min_ha:g} ha"
            )
        if name == "not_functionally_suitable":
            return (
                f"{pct(value(row, 'not_functionally_suitable_pct'))}% of occupied floor area "
                "not functionally suitable; threshold "
                f"{pct(settings.not_functionally_suitable_max_pct)}%"
            )
        t = peers[name].loc[row["site_type"]]
        if name == "poor_condition":
            what = "high + significant risk backlog"
            amount = value(row, "backlog_high_gbp") + value(row, "backlog_significant_gbp")
        else:
            what, amount = RUNNING_COST_DEFINITION, value(row, "running_cost_gbp")
        words = "top quartile" if q == 0.75 else f"top {100 * (1 - q):g}%"
        return (
            f"{what} £{amount:,.0f} = £{value(row, PEER_RULES[name]):,.2f} per m2 of "
            f"{gia:,.0f} m2 GIA; {words} of {int(t['n'])} '{row['site_type']}' sites is "
            f"above £{t['threshold']:,.2f} per m2"
        )

    out: dict[str, list[object]] = {}
    for name in FLAG_NAMES:
        out[name] = [
            sentence(name, rows.iloc[i]) if statuses[name][i] == "flagged" else None
            for i in range(len(rows))
        ]
    return out


@pytest.mark.parametrize("which", ["eric", "trafford", "both"])
def test_sentences_equal_the_per_row_ones_word_for_word(eric: gpd.GeoDataFrame, which: str) -> None:
    parts = {"eric": [eric], "trafford": [trafford_sites()]}
    parts["both"] = parts["eric"] + parts["trafford"]
    sites = gpd.GeoDataFrame(
        pd.concat(parts[which], ignore_index=True), geometry="geometry", crs="EPSG:27700"
    )
    settings = load_settings()
    flagged = flag_sites(sites, settings)
    expected = _per_row_sentences(site_measures(sites), settings)
    counts = 0
    for name in FLAG_NAMES:
        got = flagged[f"reason_{name}"].where(flagged[f"flag_{name}"] == "flagged", None)
        assert got.tolist() == expected[name], name
        counts += sum(s is not None for s in expected[name])
    assert counts > (100 if which != "trafford" else 150)
    joined = [
        "\n".join(str(expected[n][i]) for n in FLAG_NAMES if expected[n][i] is not None)
        for i in range(len(sites))
    ]
    assert flagged["flag_sentences"].tolist() == joined
    assert flagged["flags"].tolist() == [
        ";".join(n for n in FLAG_NAMES if expected[n][i] is not None) for i in range(len(sites))
    ]
    assert (flagged["flag_count"] == [s.count(";") + 1 if s else 0 for s in flagged["flags"]]).all()


def test_not_assessable_reasons_name_what_is_missing() -> None:
    sites = _frame(
        gia_m2=[100.0, 100.0, 100.0, 100.0, np.nan],
        running_cost_gbp=[1000.0, 2000.0, 3000.0, np.nan, 5.0],
        site_type=["T", "T", None, "U", "T"],
    )
    reasons = flag_sites(sites, load_settings())["reason_high_running_cost"].tolist()
    assert (
        reasons[0]
        == reasons[1]
        == (
            "not assessable: only 2 'T' site(s) have the running cost figures "
            "(a peer comparison needs 4)"
        )
    )
    assert reasons[2] == "not assessable: site type missing"
    assert reasons[3] == reasons[4] == "not assessable: running cost or GIA missing"
