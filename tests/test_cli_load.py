"""The load, sites, summary and rejected commands: JSON, exit codes, exports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from click.testing import CliRunner

from estates.cli import main
from tests.conftest import shared_file
from tests.ingest_data import ERIC, GM_LADS, TRAFFORD, real_lookup_subset


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "cli.gpkg")


def test_load_json_prints_exactly_one_object(db: str) -> None:
    result = run("--db", db, "load", "eric", str(shared_file(ERIC)), "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 1
    payload = json.loads(result.stdout)
    assert payload["rows_read"] == 1261 and payload["non_geographic"] == 176
    assert payload["rows_read"] == sum(
        payload[k] for k in ("inserted", "updated", "unchanged", "rejected")
    )
    assert isinstance(payload["batch_id"], int)
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_human_output_and_summary(db: str, tmp_path: Path) -> None:
    lookup = real_lookup_subset(tmp_path, ["M13 9WL"])
    assert run("--db", db, "load", "postcodes", str(lookup)).exit_code == 0
    council = run("--db", db, "load", "council", str(shared_file(TRAFFORD)))
    assert council.exit_code == 0
    lines = council.stdout.splitlines()
    assert lines[0].startswith("trafford_land_and_building_assets.csv: 608 rows read -> 608 new")
    assert any("TMBC0396/P0000036" in line and "wrong way round" in line for line in lines)
    assert (
        run("--db", db, "load", "boundaries", str(shared_file(GM_LADS)), "--kind", "lad").exit_code
        == 0
    )
    summary = json.loads(run("--db", db, "summary", "--json").stdout)
    assert summary["sectors"]["council"]["sites"] == 608
    assert summary["sectors"]["council"]["located"] == 373  # this lookup locates none of them
    assert [b["loader"] for b in summary["batches"]] == ["postcodes", "council", "boundaries"]
    in_trafford = json.loads(
        run("--db", db, "summary", "--footprint", "E08000009", "--json").stdout
    )
    assert in_trafford["sectors"]["council"]["sites"] == _published_points_in_trafford()
    table = run("--db", db, "summary").stdout
    assert table.splitlines()[0].split()[:2] == ["sector", "sites"]


def _published_points_in_trafford() -> int:
    """Independently: published coordinates (the one swapped pair swapped back) in Trafford."""
    with open(shared_file(TRAFFORD), encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["GeoX"] and r["GeoY"]]
    lon = [float(r["GeoX"]) if float(r["GeoX"]) < 40 else float(r["GeoY"]) for r in rows]
    lat = [float(r["GeoY"]) if float(r["GeoX"]) < 40 else float(r["GeoX"]) for r in rows]
    points = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=4326).to_crs(27700)
    districts = gpd.read_file(shared_file(GM_LADS)).to_crs(27700).set_index("lad17cd")
    return int(points.intersects(districts.loc["E08000009"].geometry).sum())


def test_unknown_footprint_and_broken_file_exit_1(db: str, tmp_path: Path) -> None:
    assert run("--db", db, "load", "council", str(shared_file(TRAFFORD))).exit_code == 0
    result = run("--db", db, "sites", "--footprint", "E99999999")
    assert result.exit_code == 1
    assert result.stderr.startswith("estates: error: footprint 'E99999999' not found")
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"AssetCode,PropertyName\nA1,Caf\x81\x8d\n")
    before = json.loads(run("--db", db, "summary", "--json").stdout)
    result = run("--db", db, "load", "council", str(broken), "--organisation", "X", "--json")
    assert result.exit_code == 1 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"estates: error: {broken}: cannot decode" in result.stderr
    assert json.loads(run("--db", db, "summary", "--json").stdout) == before


def test_usage_errors_exit_2(db: str) -> None:
    assert run("--db", db, "load", "points", str(shared_file(TRAFFORD))).exit_code == 2
    assert (
        run(
            "--db", db, "load", "points", "x.csv", "--organisation", "X", "--sector", "army"
        ).exit_code
        == 2
    )
    assert run("--db", db, "load", "boundaries", "x.json", "--kind", "county").exit_code == 2


def _formula_points(tmp_path: Path) -> Path:
    path = tmp_path / "risky.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "address", "lon", "lat"])
        writer.writerow(["1", '=HYPERLINK("http://evil","x")', "+44 161 000", "-2.309", "53.446"])
        writer.writerow(["2", "@SUM(A1:A9)", "-1 Road", "-2.244", "53.479"])
        writer.writerow(["3", "Plain Library", "1 High St", "-2.30", "53.45"])
    return path


def test_sites_export_csv_neutralises_formulas(db: str, tmp_path: Path) -> None:
    points = _formula_points(tmp_path)
    assert (
        run(
            "--db",
            db,
            "load",
            "points",
            str(points),
            "--organisation",
            "Risky",
            "--sector",
            "other",
        ).exit_code
        == 0
    )
    out = tmp_path / "sites.csv"
    result = run("--db", db, "sites", "-o", str(out))
    assert result.exit_code == 0 and "wrote 3 sites" in result.stdout
    with open(out, encoding="utf-8", newline="") as handle:
        rows = {r["source_key"]: r for r in csv.DictReader(handle)}
    first = rows["points:risky:1"]
    assert first["name"] == '\'=HYPERLINK("http://evil","x")'
    assert first["address"] == "'+44 161 000"
    assert rows["points:risky:2"]["name"] == "'@SUM(A1:A9)"
    assert rows["points:risky:2"]["address"] == "'-1 Road"
    assert rows["points:risky:3"]["name"] == "Plain Library"
    assert float(first["longitude"]) == pytest.approx(-2.309, abs=1e-6)  # numbers untouched
    assert float(first["easting"]) > 0


def test_sites_export_geojson_and_gpkg(db: str, tmp_path: Path) -> None:
    points = _formula_points(tmp_path)
    run("--db", db, "load", "points", str(points), "--organisation", "Risky", "--sector", "other")
    geojson = tmp_path / "sites.geojson"
    assert run("--db", db, "sites", "-o", str(geojson)).exit_code == 0
    data = json.loads(geojson.read_text(encoding="utf-8"))
    lon, lat = next(
        f["geometry"]["coordinates"]
        for f in data["features"]
        if f["properties"]["source_key"] == "points:risky:1"
    )
    assert lon == pytest.approx(-2.309, abs=1e-6) and lat == pytest.approx(53.446, abs=1e-6)
    gpkg = tmp_path / "sites.gpkg"
    assert run("--db", db, "sites", "-o", str(gpkg), "--json").exit_code == 0
    info = pyogrio.read_info(gpkg, layer="sites")
    assert info["crs"] == "EPSG:27700" and info["features"] == 3
    assert run("--db", db, "sites", "-o", str(tmp_path / "sites.xlsx")).exit_code == 1


def test_sites_unlocated_and_json(db: str, tmp_path: Path) -> None:
    lookup = real_lookup_subset(tmp_path, ["M13 9WL"])
    run("--db", db, "load", "postcodes", str(lookup))
    run("--db", db, "load", "eric", str(shared_file(ERIC)))
    result = run("--db", db, "sites", "--unlocated", "--sector", "nhs", "--json")
    payload = json.loads(result.stdout)
    assert payload["count"] == len(payload["sites"]) == 1261 - 176 - payload_located(db)
    reasons = {s["unlocated_reason"] for s in payload["sites"]}
    assert reasons <= {
        "no postcode",
        "postcode not in the loaded lookup",
        "partial or invalid postcode",
    }
    assert all(s["easting"] is None for s in payload["sites"])
    human = run("--db", db, "sites", "--unlocated", "--sector", "nhs")
    assert human.stdout.splitlines()[0] == f"{payload['count']} sites"
    assert "WRIGHTINGTON HOSPITAL" in human.stdout


def payload_located(db: str) -> int:
    summary = json.loads(run("--db", db, "summary", "--json").stdout)
    return int(summary["sectors"]["nhs"]["located"])


def test_rejected_and_dissolve(db: str, tmp_path: Path) -> None:
    register = tmp_path / "register.csv"
    register.write_text(
        "OrganisationLabel,AssetCode,PropertyName\nX Council,,Nameless\nX Council,A,Hall\n",
        encoding="utf-8",
    )
    loaded = json.loads(run("--db", db, "load", "council", str(register), "--json").stdout)
    assert loaded["rejected"] == 1
    rejected = json.loads(
        run("--db", db, "rejected", "--batch", str(loaded["batch_id"]), "--json").stdout
    )
    assert rejected["count"] == 1 and rejected["rows"][0]["row_number"] == 2
    assert rejected["rows"][0]["raw"]["PropertyName"] == "Nameless"
    assert run("--db", db, "rejected", "--batch", "999").exit_code == 1
    run("--db", db, "load", "boundaries", str(shared_file(GM_LADS)), "--kind", "lad")
    lookup = tmp_path / "lookup.csv"
    lookup.write_text(
        "LAD24CD,ICB24CD,ICB24NM\n"
        + "".join(f"E080000{i:02d},E54000057,NHS GM ICB\n" for i in range(1, 11)),
        encoding="utf-8",
    )
    result = run(
        "--db",
        db,
        "load",
        "boundaries",
        str(lookup),
        "--kind",
        "icb",
        "--dissolve-from",
        "lad",
        "--json",
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)["boundaries"] == 1


def test_load_several_councils(db: str, tmp_path: Path) -> None:
    register = tmp_path / "register.csv"
    register.write_text(
        "OrganisationLabel,AssetCode,PropertyName\nX Council,,Nameless\nX Council,A,Hall\n",
        encoding="utf-8",
    )
    trafford = str(shared_file(TRAFFORD))
    human = run("--db", db, "load", "council", trafford, str(register), "--no-progress")
    assert human.exit_code == 0, human.output
    lines = human.stdout.splitlines()
    assert lines[0].startswith("trafford_land_and_building_assets.csv: 608 rows read -> 608 new")
    assert any("TMBC0396/P0000036" in line and "wrong way round" in line for line in lines)
    second = next(i for i, line in enumerate(lines) if line.startswith("register.csv: "))
    assert lines[second].startswith(
        "register.csv: 2 rows read -> 1 new, 0 updated, 0 unchanged, 1 rejected"
    )
    assert lines[-1].startswith("  see the rejected rows: estates rejected --batch ")
    again = run("--db", db, "load", "council", trafford, str(register), "--json")
    assert again.exit_code == 0 and len(again.stdout.strip().splitlines()) == 1
    payload = json.loads(again.stdout)
    assert [(p["file"], p["rows_read"], p["unchanged"]) for p in payload] == [
        (trafford, 608, 608),
        (str(register), 2, 1),
    ]
    assert payload[1]["batch_id"] == payload[0]["batch_id"] + 1
    summary = json.loads(run("--db", db, "summary", "--json").stdout)
    assert [b["loader"] for b in summary["batches"]] == ["council"] * 4


def test_load_several_councils_stops_at_a_broken_one(db: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"AssetCode,PropertyName\nA1,Caf\x81\x8d\n")
    trafford = str(shared_file(TRAFFORD))
    result = run("--db", db, "load", "council", trafford, str(broken), trafford, "--json")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(f"estates: error: {broken}: cannot decode")
    summary = json.loads(run("--db", db, "summary", "--json").stdout)
    assert summary["sectors"]["council"]["sites"] == 608
    assert len(summary["batches"]) == 1
    assert run("--db", db, "load", "council").exit_code == 2  # at least one file
