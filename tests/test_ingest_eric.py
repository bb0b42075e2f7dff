"""ERIC site-level CSV: every row accounted for, pooled rows, measures, reloads, other years."""

# The session fixture `real_estate` is imported from tests.ingest_data; its use as a
# test parameter is what pytest expects, not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

import estates
from estates.ingest import load_eric
from estates.ingest.eric import LAYOUTS, choose_layout, normalise_period, period_from_name
from tests.conftest import shared_file
from tests.ingest_data import ERIC, GM_TRUSTS, RealEstate, real_estate  # noqa: F401


def _eric_rows() -> tuple[list[str], list[list[str]]]:
    with open(shared_file(ERIC), encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, list(reader)


def _number(text_value: str) -> float:
    return (
        float(text_value.replace(",", "")) if text_value not in ("", "Not Applicable") else np.nan
    )


# --- the real file, loaded once per backend --------------------------------------------


def test_every_row_is_accounted_for(real_estate: RealEstate) -> None:
    header, rows = _eric_rows()
    report = real_estate.reports["eric"]
    pooled = [r for r in rows if r[header.index("Site Name")] == "OTHER REPORTABLE SITES"]
    assert len(rows) == 1261 and len(pooled) == 176
    assert report.rows_read == 1261
    assert (report.inserted, report.updated, report.unchanged, report.rejected) == (1261, 0, 0, 0)
    assert report.non_geographic == 176
    assert report.located + report.unlocated + report.non_geographic == 1261
    assert report.extra["period"] == "2019/20"
    assert report.extra["organisations"] == len({r[0] for r in rows}) == 224
    sites = real_estate.estate.sites(sector="nhs")
    eric = sites[sites["source_key"].str.startswith("eric:")]
    assert len(eric) == 1261
    assert int(eric["non_geographic"].sum()) == 176
    # Pooled rows are never placed on a map, even though they carry a postcode.
    assert eric.loc[eric["non_geographic"], "geometry"].isna().all()


def test_second_load_changes_nothing(real_estate: RealEstate) -> None:
    again = real_estate.reports["eric_again"]
    assert (again.rows_read, again.unchanged, again.inserted, again.updated) == (1261, 1261, 0, 0)
    with real_estate.estate.read() as c:
        changes = c.execute(
            text("SELECT count(*) FROM site_change WHERE batch_id = :b"), {"b": again.batch_id}
        ).scalar_one()
    assert changes == 0


def test_greater_manchester_trusts_located_from_the_lookup(real_estate: RealEstate) -> None:
    sites = real_estate.estate.sites(sector="nhs")
    gm = sites[
        sites["organisation_code"].isin(GM_TRUSTS) & sites["source_key"].str.startswith("eric:")
    ]
    assert len(gm) == 47
    assert int(gm["non_geographic"].sum()) == 5
    real = gm[~gm["non_geographic"]]
    assert len(real) == 42
    located = real[real.geometry.notna()]
    assert len(located) == 41
    assert set(located["located_by"]) == {"postcode"}
    unlocated = real[real.geometry.isna()]
    assert unlocated["name"].tolist() == ["WRIGHTINGTON HOSPITAL"]
    assert unlocated["postcode"].tolist() == ["WN6 9EP"]  # published as "WN6  9EP"
    assert unlocated["located_by"].tolist() == ["none"]


def test_postcodes_are_normalised(real_estate: RealEstate) -> None:
    header, rows = _eric_rows()
    col = header.index("Post Code")
    padded = [r for r in rows if "  " in r[col]]
    assert len(padded) == 343
    sites = real_estate.estate.sites(sector="nhs").set_index("source_key")
    for row in padded[:25]:
        stored = sites.loc["eric:" + row[header.index("Site Code")], "postcode"]
        assert stored == " ".join(row[col].split())
        assert "  " not in stored


def test_total_gia_in_summary(real_estate: RealEstate) -> None:
    header, rows = _eric_rows()
    expected = sum(_number(r[header.index("Gross internal floor area (m²)")]) for r in rows)
    assert expected == 26_808_908
    summary = real_estate.estate.summary()
    assert summary["sectors"]["nhs"]["gia_m2"] == 26_808_908
    assert summary["sectors"]["nhs"]["non_geographic"] == 176


def test_measures_match_the_published_row(real_estate: RealEstate) -> None:
    header, rows = _eric_rows()
    by_code = {r[header.index("Site Code")]: r for r in rows}
    frame = real_estate.estate.sites(period="2019/20").set_index("source_key")
    eric = frame[frame.index.str.startswith("eric:")]
    assert eric["period"].eq("2019/20").all()

    def published(code: str, column: str) -> float:
        return _number(by_code[code][header.index(column)])

    for code in ("R0A01", "RBS25", "RRF53", "R0AORS"):
        row = eric.loc["eric:" + code]
        assert row["gia_m2"] == published(code, "Gross internal floor area (m²)")
        assert np.isclose(
            row["empty_pct"], published(code, "Floor area - empty (%)"), equal_nan=True
        )
        assert np.isclose(
            row["underused_pct"], published(code, "Floor area - under used (%)"), equal_nan=True
        )
        assert np.isclose(
            row["backlog_high_gbp"],
            published(code, "Cost to eradicate high risk backlog (£)"),
            equal_nan=True,
        )
        assert np.isnan(row["unutilised_pct"])  # a pre-2019/20 field


def test_running_cost_sums_running_lines_and_excludes_capital(real_estate: RealEstate) -> None:
    header, rows = _eric_rows()
    excluded = {
        "Depreciation (£)",
        "PDC (£)",
        "Interest on Capital (£)",
        "Indirect accommodation subsidies (£)",
    }
    cost_cols = [
        i
        for i, h in enumerate(header)
        if h.endswith("(£)")
        and h not in excluded
        and not h.startswith("Cost to eradicate")
        and not h.startswith("Average fee")
    ]
    report = real_estate.reports["eric"]
    assert not set(report.extra["running_cost_columns"]) & excluded
    frame = real_estate.estate.sites(period="2019/20").set_index("source_key")
    for row in rows[:40]:
        values = [_number(row[i]) for i in cost_cols]
        expected = np.nansum(values) if not np.all(np.isnan(values)) else np.nan
        got = frame.loc["eric:" + row[header.index("Site Code")], "running_cost_gbp"]
        assert np.isclose(got, expected, equal_nan=True), row[header.index("Site Code")]


def test_raw_row_keeps_repeated_headers_apart(real_estate: RealEstate) -> None:
    header, _ = _eric_rows()
    with real_estate.estate.read() as c:
        raw = c.execute(
            text(
                "SELECT m.raw FROM site_measure m JOIN site s ON s.id = m.site_id "
                "WHERE s.source_key = 'eric:R0A01'"
            )
        ).scalar_one()
    raw = json.loads(raw) if isinstance(raw, str) else raw
    pfi = [k for k in raw if k.startswith("PFI Contractor (SPV) costs (£)")]
    assert len(pfi) == header.count("PFI Contractor (SPV) costs (£)") == 9
    assert "PFI Contractor (SPV) costs (£) [energy]" in raw
    assert raw["Site Name"] == "ISLAND SITE"
    assert raw["Gross internal floor area (m²)"] == "292,119"  # as published


# --- a changed file updates only what changed ------------------------------------------


def _write_changed(tmp_path: Path, changes: dict[tuple[str, str], str]) -> Path:
    header, rows = _eric_rows()
    for (code, column), value in changes.items():
        row = next(r for r in rows if r[header.index("Site Code")] == code)
        row[header.index(column)] = value
    path = tmp_path / "ERIC_201920_SiteData_v2.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_changed_file_updates_changed_sites_and_records_them(
    estate: estates.Estate, tmp_path: Path
) -> None:
    first = load_eric(estate, shared_file(ERIC))
    assert first.inserted == 1261
    changed = _write_changed(
        tmp_path,
        {
            ("RBS25", "Gross internal floor area (m²)"): "50,001",
            ("R0A07", "Cost to eradicate high risk backlog (£)"): "1,234,567",
        },
    )
    second = load_eric(estate, changed)
    assert (second.inserted, second.updated, second.unchanged) == (0, 2, 1259)
    sites = estate.sites(period="2019/20").set_index("source_key")
    assert sites.loc["eric:RBS25", "gia_m2"] == 50_001
    assert sites.loc["eric:R0A07", "backlog_high_gbp"] == 1_234_567
    with estate.read() as c:
        rows = c.execute(
            text(
                "SELECT s.source_key, c.action, c.changed_fields FROM site_change c "
                "JOIN site s ON s.id = c.site_id WHERE c.batch_id = :b"
            ),
            {"b": second.batch_id},
        ).fetchall()
    touched = {key for key, _, _ in rows}
    assert touched == {"eric:RBS25", "eric:R0A07"}
    fields = {
        (key, action): (json.loads(f) if isinstance(f, str) else f) for key, action, f in rows
    }
    assert "gia_m2" in fields[("eric:RBS25", "update")]
    assert "2019/20:backlog_high_gbp" in fields[("eric:R0A07", "measure_update")]
    # The same file again: nothing changes.
    third = load_eric(estate, changed)
    assert third.unchanged == 1261


# --- layouts and periods ----------------------------------------------------------------


def test_period_from_file_name_and_option() -> None:
    assert period_from_name("ERIC_201920_SiteData_for_R.csv") == "2019/20"
    assert period_from_name("eric-2021-22-site.csv") == "2021/22"
    assert period_from_name("eric.csv") is None
    assert normalise_period("2019-20") == normalise_period("201920") == "2019/20"
    with pytest.raises(estates.ConfigurationError, match="2019/20"):
        normalise_period("2019/21")


def test_every_year_has_a_mapping_and_the_drift_is_encoded() -> None:
    assert list(LAYOUTS) == [
        "2016/17",
        "2017/18",
        "2018/19",
        "2019/20",
        "2020/21",
        "2021/22",
        "2022/23",
        "2023/24",
    ]
    assert "Un-utilised space (%)" in LAYOUTS["2018/19"].fields["unutilised_pct"]
    assert "empty_pct" not in LAYOUTS["2018/19"].fields
    assert "Floor area - empty (%)" in LAYOUTS["2019/20"].fields["empty_pct"]
    assert "occupied_floor_area_m2" not in LAYOUTS["2020/21"].fields
    assert "Occupied floor area (m²)" in LAYOUTS["2021/22"].fields["occupied_floor_area_m2"]


def _older_header() -> list[str]:
    """A header in the 2016/17-2018/19 naming, made from the 2019/20 file's columns."""
    header, _ = _eric_rows()
    renamed = {
        "Floor area - empty (%)": "Un-utilised space (%)",
        "Land area owned (Hectares)": "Site land area (Hectare)",
    }
    return [renamed.get(h, h) for h in header if h != "Floor area - under used (%)"]


def test_layout_detection_per_year(tmp_path: Path) -> None:
    header, _ = _eric_rows()
    assert choose_layout("ERIC_201920.csv", header, None).period == "2019/20"
    assert choose_layout("x.csv", header, "2020/21").period == "2020/21"
    older = _older_header()
    assert choose_layout("ERIC_201718_site.csv", older, None).period == "2017/18"
    newer = [*header, "Occupied floor area (m²)"]
    assert choose_layout("ERIC-2122-site.csv", newer, "2021/22").family == "2021/22-"
    with pytest.raises(estates.UnknownLayoutError, match="--period"):
        choose_layout("eric.csv", header, None)  # fits 2019/20 and 2020/21: which?
    with pytest.raises(estates.UnknownLayoutError, match=r"Occupied floor area \(m²\)"):
        choose_layout("x.csv", header, "2022/23")


def test_older_year_file_loads_unutilised_space(estate: estates.Estate, tmp_path: Path) -> None:
    header, rows = _eric_rows()
    older = _older_header()
    keep = [header.index(h) for h in header if h != "Floor area - under used (%)"]
    path = tmp_path / "ERIC_201819_SiteData.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(older)
        writer.writerows([[r[i] for i in keep] for r in rows[:30]])
    report = load_eric(estate, path)
    assert report.extra["period"] == "2018/19" and report.rows_read == 30
    measures = estate.sites(period="2018/19").set_index("source_key")
    first = rows[0]
    assert measures.loc["eric:" + first[header.index("Site Code")], "unutilised_pct"] == _number(
        first[header.index("Floor area - empty (%)")]
    )
    assert measures["empty_pct"].isna().all()
