"""Bulk write and read of the site frame, on both backends."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

import estates
from estates.db import store
from estates.demo import demo_sites


def test_write_then_read_round_trips(estate: estates.Estate) -> None:
    sites = demo_sites(n_sites=300)
    sites.loc[sites.index[:7], "geometry"] = None
    result = estate.write_sites(sites)
    assert len(result.inserted) == 300
    back = estate.sites().set_index("source_key").loc[sites["source_key"]]
    assert back.crs.to_epsg() == 27700
    assert back.geometry.isna().sum() == 7
    located = sites.geometry.notna().to_numpy()
    assert shapely.equals_exact(
        back.geometry.values[located], sites.geometry.values[located], 1e-6
    ).all()
    assert np.allclose(back["gia_m2"].to_numpy(), sites["gia_m2"].to_numpy())
    assert (back["organisation_code"].to_numpy() == sites["organisation_code"].to_numpy()).all()
    assert len(estate.sites(located=False)) == 7
    assert set(estate.sites(sector="council")["sector"]) == {"council"}


def test_second_identical_write_changes_nothing(estate: estates.Estate) -> None:
    sites = demo_sites(n_sites=50)
    estate.write_sites(sites)
    again = estate.write_sites(sites)
    assert (len(again.inserted), len(again.updated), len(again.unchanged)) == (0, 0, 50)


def test_changed_rows_update_in_place(estate: estates.Estate) -> None:
    sites = demo_sites(n_sites=50)
    first = estate.write_sites(sites)
    changed = sites.copy()
    changed.loc[changed.index[0], "gia_m2"] = 123456.0
    changed.loc[changed.index[1], "geometry"] = shapely.Point(380_000, 392_000)
    result = estate.write_sites(changed)
    assert sorted(result.updated) == sorted(changed["source_key"].iloc[:2])
    assert result.site_ids == first.site_ids  # same surrogate ids
    back = estate.sites().set_index("source_key")
    assert back.loc[changed["source_key"].iloc[0], "gia_m2"] == 123456.0
    assert back.loc[changed["source_key"].iloc[1]].geometry.equals(shapely.Point(380_000, 392_000))


def test_wrong_crs_is_refused(estate: estates.Estate) -> None:
    sites = demo_sites(n_sites=5).to_crs(4326)
    with pytest.raises(estates.CrsError, match="EPSG:27700"):
        estate.write_sites(sites)
    with pytest.raises(ValueError):  # CrsError is also a ValueError
        estate.write_sites(
            gpd.GeoDataFrame(sites.drop(columns="geometry"), geometry=sites.geometry.values)
        )


def test_fetch_arrays_match_the_driver_rows(estate: estates.Estate) -> None:
    """Columns as object arrays, the same values as the rows; lists (PostGIS arrays) kept whole."""
    from estates.db.store import fetch_arrays, fetch_columns, is_sqlite

    sql = "SELECT 1 AS a, 'x' AS b, NULL AS c UNION ALL SELECT 2, 'y', 2.5 ORDER BY a"
    with estate.read() as connection:
        arrays = fetch_arrays(connection, sql)
        lists = fetch_columns(connection, sql)
        empty = fetch_arrays(connection, "SELECT 1 AS a WHERE 1 = 0")
        if not is_sqlite(connection):
            nested = fetch_arrays(connection, "SELECT ARRAY[1, 2] AS a, 3 AS b")
            assert nested["a"].shape == (1,) and nested["a"][0] == [1, 2]
            assert nested["b"].tolist() == [3]
    assert {k: v.tolist() for k, v in arrays.items()} == lists
    assert all(v.dtype == object for v in arrays.values())
    assert list(empty) == ["a"] and len(empty["a"]) == 0


def test_repeated_texts_are_read_as_one_object(estate: estates.Estate) -> None:
    """A column of repeated texts shares one string per value; keys and numbers as read."""
    from estates.db.store import fetch_arrays

    n = 3000
    sql = (
        f"WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < {n - 1}) "
        "SELECT i, CASE WHEN i % 7 = 0 THEN NULL WHEN i % 2 = 0 THEN 'Freehold' "
        "ELSE 'Leasehold' END AS tenure, 'key-' || i AS k, (i % 3) + 0.5 AS x, "
        # a column that starts with many missing values (one loader's sites first)
        "CASE WHEN i < 500 THEN NULL WHEN i % 2 = 0 THEN 'Clinic' ELSE 'Depot' END AS kind "
        "FROM seq ORDER BY i"
    )
    with estate.read() as connection:
        got = fetch_arrays(connection, sql)
    tenure = got["tenure"].tolist()
    expected = [None if i % 7 == 0 else ["Freehold", "Leasehold"][i % 2] for i in range(n)]
    assert tenure == expected
    assert len({id(v) for v in tenure if v is not None}) == 2  # one object per distinct text
    assert got["k"].tolist() == [f"key-{i}" for i in range(n)]
    assert [float(v) for v in got["x"]] == [i % 3 + 0.5 for i in range(n)]
    kind = got["kind"].tolist()
    assert kind == [None if i < 500 else ["Clinic", "Depot"][i % 2] for i in range(n)]
    assert len({id(v) for v in kind if v is not None}) == 2


def test_content_hash_is_pandas_hash_of_the_typed_cells_in_hex() -> None:
    """The hash stored with every site: text as text (other objects as their text), numbers
    as numbers, missing alike; 16 hex digits. Loads compare it with hashes stored earlier,
    so its value must not drift with how it is computed."""
    frame = pd.DataFrame(
        {
            "text": ["a", None, "é", "a"],
            "mixed": [1, "1", None, 2.5],  # objects that are not text are hashed as text
            "empty": [None] * 4,
            "number": [1.0, np.nan, 3.0, 1.0],
        }
    )
    expected_table = pd.DataFrame(
        {
            "text": pd.Series(["a", None, "é", "a"], dtype=object),
            "mixed": pd.Series(["1", "1", None, "2.5"], dtype=object),
            "empty": pd.Series([None] * 4, dtype=object),
            "number": frame["number"].to_numpy(),
        }
    )
    hashed = pd.util.hash_pandas_object(expected_table, index=False, categorize=False)
    expected = [format(h, "016x") for h in hashed.tolist()]
    got = store.content_hash(frame, list(frame.columns))
    assert got.tolist() == expected and got.index.equals(frame.index)
    assert all(type(h) is str and len(h) == 16 for h in got)


def _assign_footprints(estate: estates.Estate, site_ids: np.ndarray) -> dict[str, dict[int, str]]:
    """Two kinds of footprint on overlapping subsets of the sites: what each should read."""
    from estates.db.boundaries import replace_footprints

    expected = {
        "lad": {int(i): f"E0{int(i) % 7}" for i in site_ids[::2]},
        "icb": {int(i): f"Q{int(i) % 3}" for i in site_ids[::3]},
    }
    with estate.write() as connection:
        for kind, codes in expected.items():
            assignments = pd.DataFrame({"site_id": list(codes), "code": list(codes.values())})
            replace_footprints(connection, kind, assignments, None)
    return expected


def test_each_footprint_kind_is_a_column_placed_by_site(estate: estates.Estate) -> None:
    estate.write_sites(demo_sites(n_sites=200, seed=3))
    expected = _assign_footprints(estate, estate.sites()["site_id"].to_numpy())
    back = estate.sites().set_index("site_id")
    for kind, codes in expected.items():
        column = back[f"{kind}_code"]
        assert column.dtype == object
        assert column.dropna().to_dict() == codes  # each site's own code, none elsewhere
    assert len(back) == 200  # a site with two footprints is still one row


def test_a_large_site_table_is_read_in_two_halves_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Read in two processes (the upper half of the ids in a forked child), the frame is
    the one a single read gives; a child that fails has its half read here."""
    estate = estates.connect(tmp_path / "halves.gpkg")
    sites = demo_sites(n_sites=3_000, seed=8)
    sites.loc[sites.index[::40], "geometry"] = None
    estate.write_sites(sites)
    _assign_footprints(estate, estate.sites()["site_id"].to_numpy())
    monkeypatch.setattr(store, "SPLIT_READ_IDS", 10**9)
    whole = estate.sites(measures=True)
    monkeypatch.setattr(store, "SPLIT_READ_IDS", 100)
    halves = estate.sites(measures=True)
    pd.testing.assert_frame_equal(halves, whole)
    assert halves["site_id"].is_monotonic_increasing and len(halves) == 3_000
    assert halves.geometry.isna().sum() == 75
    assert halves["lad_code"].notna().sum() == 1_500 and halves["icb_code"].notna().sum() == 1_000

    def fails(*_: object) -> None:
        raise OSError("child could not open the file")

    monkeypatch.setattr(store, "_read_only_fetch", fails)
    pd.testing.assert_frame_equal(estate.sites(measures=True), whole)
    assert "reading the upper half of the sites here instead" in caplog.text
