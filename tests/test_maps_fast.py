"""The large-estate path's data: it must say what the Folium path says, site for site.

The Folium path writes each popup as HTML (``estates.maps._model.popup_html``); the fast
path ships columns that the browser turns into the same popup (``buildPopup`` in
``estates.maps._runtime``). Here both come out of real rendered pages: the popup HTML
from the Folium page, the decoded payload from the fast page, read back by
:func:`payload_popup`, which does what the runtime's ``buildPopup`` does. The browser
test ``test_every_path_shows_the_same_popup`` checks the real ``buildPopup`` in Chromium.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

import estates.maps as maps
from estates.maps import _fast, _model, _style
from tests.browser.frames import EVIL_NAME, FLAG_NAMES, synthetic_scenario, synthetic_sites

TEMPLATE_TAGS = "{{ 7*7 }} {% if true %}x{% endif %} {# c #} {{"


def render(m: maps.EstatesMap) -> str:
    return str(m.get_root().render())


def fast_payload(html: str) -> dict[str, Any]:
    data = _fast.page_payload(html)
    assert data is not None, "fast-path payload elements not found"
    return data


class _PopupText(HTMLParser):
    """The text a popup shows, one entry per heading, cell, flag line or note."""

    BLOCKS = ("h4", "th", "td", "li", "p")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCKS:
            self.parts.append("")
            self._open = True

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCKS:
            self._open = False

    def handle_data(self, data: str) -> None:
        if self._open:
            self.parts[-1] += data


def folium_popups(html: str) -> dict[int, list[str]]:
    """Site id -> popup text, from the Folium path's page."""
    popups = {}
    for site_id, body in re.findall(
        r'<div class="estates-popup" data-site-id="(\d+)">(.*?)</div>', html
    ):
        parser = _PopupText()
        parser.feed(body)
        popups[int(site_id)] = parser.parts
    return popups


def payload_popup(data: dict[str, Any], i: int) -> list[str]:
    """Site ``i``'s popup text from the payload, the way the runtime's ``buildPopup`` does."""
    parts = [data["title"][i]]
    for row in data["rows"]:
        parts += [row["label"], _fast.text_at(row, i)]
    if data["flags"] is None:
        return [*parts, "Flags: " + data["notAssessed"]]
    lines = []
    for s, _status in enumerate(data["flagStatuses"]):
        for column in data["flags"]:
            if column["status"][i] == s:
                sentence = _fast.text_at(column["sentence"], i)
                lines.append(
                    _fast.text_at(column["label"], i)
                    + f" ({data['flagStatusLabels'][s].lower()})"
                    + (f": {sentence}" if sentence else "")
                )
    return parts + (lines or ["Flags: none applicable"])


def _summary_only(sites: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The joined flag columns an export carries, without the per-rule ones."""
    flagged = np.column_stack([sites[f"flag_{n}"].to_numpy() == "flagged" for n in FLAG_NAMES])
    reasons = np.column_stack([sites[f"reason_{n}"].to_numpy() for n in FLAG_NAMES])
    names = np.array(FLAG_NAMES, dtype=object)
    out = sites.drop(columns=[c for c in sites.columns if c.startswith(("flag_", "reason_"))])
    out["flags"] = [";".join(names[row]) for row in flagged]
    out["flag_sentences"] = ["\n".join(r[row]) for r, row in zip(reasons, flagged, strict=True)]
    out["flag_count"] = flagged.sum(axis=1)
    return out


def _hostile(n: int) -> gpd.GeoDataFrame:
    sites = synthetic_sites(n, evil_every=7)
    sites.loc[sites.index[1], "name"] = TEMPLATE_TAGS
    sites.loc[sites.index[2], "organisation_name"] = "  padded organisation  "
    sites.loc[sites.index[3], ["address", "postcode"]] = [None, " M1 1AA "]
    sites.loc[sites.index[4], "gia_m2"] = np.nan
    sites.loc[sites.index[5], "spare_m2"] = -0.0
    sites.loc[sites.index[6], "reason_vacant"] = TEMPLATE_TAGS
    sites["cluster_id"] = np.where(np.arange(n) % 3 == 0, np.nan, np.arange(n) % 5)
    sites["backlog_high_significant_per_m2"] = np.where(
        np.arange(n) % 4 == 0, np.nan, np.round(np.arange(n) * 1.005, 3)
    )
    return sites


def _no_analysis(sites: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    analysis = [c for c in sites.columns if c.startswith(("flag_", "reason_"))]
    return sites.drop(columns=[*analysis, "spare_m2", "running_cost_per_m2", "backlog_per_m2"])


FRAMES = {
    "flag columns": lambda: _hostile(150),
    "summary columns only": lambda: _summary_only(_hostile(150)),
    "no analysis": lambda: _no_analysis(_hostile(150)),
}


@pytest.mark.parametrize("kind", list(FRAMES))
def test_payload_popups_say_what_the_folium_popups_say(kind: str) -> None:
    sites = FRAMES[kind]()
    folium_page = render(maps.sites_map(sites, fast_threshold=len(sites)))
    data = fast_payload(render(maps.sites_map(sites, fast_threshold=0)))
    expected = folium_popups(folium_page)
    assert sorted(expected) == sorted(data["id"]) == sorted(sites["site_id"].tolist())
    for i, site_id in enumerate(data["id"]):
        assert payload_popup(data, i) == expected[site_id], site_id
    if kind != "no analysis":  # the frames do say something about flags
        lines = [line for popup in expected.values() for line in popup]
        assert any(line.startswith("Vacant (flagged): ") for line in lines)


def test_pooling_payload_popups_say_what_the_folium_popups_say() -> None:
    scenario = synthetic_scenario(120, evil=True)
    scenario.sites.loc[scenario.sites.index[3], "role"] = TEMPLATE_TAGS
    expected = folium_popups(render(maps.pooling_map(scenario, fast_threshold=1_000)))
    data = fast_payload(render(maps.pooling_map(scenario, fast_threshold=0)))
    assert len(expected) == len(data["id"]) == 120
    for i, site_id in enumerate(data["id"]):
        assert payload_popup(data, i) == expected[site_id]
    roles = dict(zip(scenario.sites["site_id"], scenario.sites["role"], strict=True))
    assert all(p[1] == "Role in scenario" for p in expected.values())
    released = [sid for sid, role in roles.items() if role == "released"]
    assert released and {expected[sid][2] for sid in released} == {"Released (closes)"}


def test_payload_reads_back_what_was_packed() -> None:
    sites = _hostile(200)
    points = _model.site_points(sites, group_of=_sector_groups, symbol_of=_style.site_symbol)
    data = _fast.payload(points, list(_style.SECTORS))
    back = _fast.unpack(_fast.pack(data))
    assert back["id"] == points.site_id.tolist() == sites["site_id"].tolist()
    assert np.allclose(np.asarray(back["lat"]) / back["scale"], points.lat, atol=0, rtol=0)
    assert np.allclose(np.asarray(back["lon"]) / back["scale"], points.lon, atol=0, rtol=0)
    assert back["title"] == points.title.tolist()
    assert back["search"] == points.search
    assert back["flagged"] == points.flagged.astype(int).tolist()
    for column, flag in zip(back["flags"], points.flags.columns or [], strict=True):
        assert column["status"] == flag.status.tolist()
        assert [_fast.text_at(column["sentence"], i) for i in range(len(sites))] == (
            flag.sentence.tolist()
        )


def _sector_groups(frame: pd.DataFrame) -> _model.Text:
    return _model.Text.of(frame["sector"].to_numpy(dtype=object), _style.sector_of)


@pytest.mark.parametrize(
    "values",
    [
        [0],
        [-1, 0, 1, 2],
        [7, 7, 7],
        list(range(-5_000, 200_000, 37)),
        [2**40, -(2**33), 12],
        [2**53, -(2**53)],
        [],
    ],
)
def test_integer_columns_round_trip(values: list[int]) -> None:
    data = {"v": np.asarray(values, dtype=np.int64), "n": len(values)}
    assert _fast.unpack(_fast.pack(data)) == {"v": values, "n": len(values)}


def test_integer_columns_are_stored_narrow() -> None:
    """Ids in file order travel as one-byte steps; 32-bit coordinates as four bytes."""
    ids = np.arange(1_000_001, 1_000_001 + 5_000)
    coords = np.random.default_rng(1).integers(49_000_000, 56_000_000, 5_000)
    raw = _fast.encode({"id": ids, "lat": coords})
    size = int.from_bytes(raw[:4], "little")
    columns = json.loads(raw[4 : 4 + size])["columns"]
    assert [(c["type"], "delta" in c, c["out"]) for c in columns] == [
        ("u1", True, "i4"),
        ("u4", False, "i4"),
    ]
    assert len(raw) < 5_000 * 5 + 400
    with pytest.raises(ValueError, match="beyond what a browser holds exactly"):
        _fast.encode({"x": np.asarray([2**53 + 1])})


def test_text_columns_round_trip_whatever_the_characters() -> None:
    names = [f"Site {i}" for i in range(40)]
    names[3] = "Caf\u00e9 \u2014 Ysbyty Gwynedd"
    names[4] = "Emoji \U0001f3e5 and \U0001f9ea after"  # two UTF-16 units each
    names[5] = ""
    names[6] = EVIL_NAME + TEMPLATE_TAGS
    names[7] = "lone \ud800 surrogate"  # undecodable source bytes
    back = _fast.unpack(_fast.pack({"names": names, "short": ["a", "b"]}))
    assert back["short"] == ["a", "b"]  # short lists stay in the header
    assert back["names"][:7] == names[:7] and back["names"][8:] == names[8:]
    assert back["names"][7] == "lone ? surrogate"


def test_coordinates_in_the_payload_equal_the_folium_paths() -> None:
    sites = synthetic_sites(300)
    folium_page = render(maps.sites_map(sites, fast_threshold=1_000))
    data = fast_payload(render(maps.sites_map(sites, fast_threshold=0)))
    markers = re.findall(
        r'L\.marker\(\s*\[([-0-9.]+), ([-0-9.]+)\],\s*\{\s*"siteId": (\d+)', folium_page
    )
    assert len(markers) == 300
    folium_at = {int(i): (float(lat), float(lon)) for lat, lon, i in markers}
    for k, site_id in enumerate(data["id"]):
        # the browser divides by the scale: the same doubles as the Folium path's literals
        assert (data["lat"][k] / data["scale"], data["lon"][k] / data["scale"]) == (
            folium_at[site_id]
        )


# -- the columnar model ----------------------------------------------------------------------


def test_text_is_worked_out_once_per_distinct_value() -> None:
    values = np.array(["a", " a", "b", None, np.nan, "b", "a"], dtype=object)
    seen: list[Any] = []

    def show(value: Any) -> str:
        seen.append(value)
        return _model._stripped(value) or "none"

    text = _model.Text.of(values, show)
    assert text.tolist() == ["a", "a", "b", "none", "none", "b", "a"]
    assert len(seen) == 4  # "a", " a", "b" and one missing value
    assert sorted(text.uniques) == ["a", "b", "none"]  # " a" folded into "a"
    kept = text.take(np.array([2, 5]))
    assert kept.uniques == ["b"] and kept.tolist() == ["b", "b"]
    calls = []
    joined = _model.Text.combine(
        [text, _model.Text.of(np.array([1, 1, 2, 2, 2, 1, 1]), str)],
        lambda a, b: calls.append(1) or f"{a}-{b}",
    )
    assert joined.tolist() == ["a-1", "a-1", "b-2", "none-2", "none-2", "b-1", "a-1"]
    assert len(calls) == 4  # one per distinct pair


@pytest.mark.parametrize("fmt", [_style.fmt_m2, _style.fmt_gbp_per_m2])
def test_numbers_format_exactly_as_the_scalar_formatters(fmt: Any) -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate(
        [
            [0.5, 1.5, 2.5, -0.4, -0.0, 0.0, 1e6 + 0.5, 2.675, 1.005, np.nan, np.inf, -np.inf],
            np.round(rng.normal(0, 1e6, 2_000)) / 10.0 ** rng.integers(0, 4, 2_000),
        ]
    )
    frame = pd.DataFrame({"v": values})
    whole = fmt is _style.fmt_m2
    text = _model.number_column(frame, "v", fmt, "absent", whole_units=whole)
    # the one deliberate difference: what rounds to zero prints as 0, never as -0
    expected = [re.sub(r"^(£?)-(0(\.0+)?) ", r"\1\2 ", fmt(v)) for v in values.tolist()]
    assert text.tolist() == expected
    assert "0 m²" in expected or "£0.00 per m²" in expected
    mixed = pd.DataFrame({"v": np.array([1, "2.5", "x", None, 3.25], dtype=object)})
    assert _model.number_column(mixed, "v", fmt, "").tolist() == [
        fmt(v) for v in mixed["v"].tolist()
    ]
    assert _model.number_column(frame, "w", fmt, "absent").tolist() == ["absent"] * len(values)


def test_search_labels_are_unique_and_start_with_the_name() -> None:
    names = ["Town Hall", "Town Hall", "Depot", "Town Hall (M1 1AA)", "Clinic", "Clinic", "Solo"]
    codes = ["M1 1AA", "M2 2BB", "M3 3CC", "", "M4 4DD", "M4 4DD", "M5 5EE"]
    title = _model.Text.of(np.array(names, dtype=object), _model._stripped)
    postcode = _model.Text.per_row(np.array(codes, dtype=object), _model._stripped)
    ids = np.arange(10, 17)
    labels = _model.search_labels(title, postcode, ids)
    assert len(set(labels)) == len(labels)
    assert all(label.startswith(name) for label, name in zip(labels, names, strict=True))
    assert labels[2] == "Depot" and labels[6] == "Solo"  # unique names stay as they are
    assert labels[1] == "Town Hall (M2 2BB)"
    # "Town Hall" at M1 1AA reads like the site named "Town Hall (M1 1AA)": both get ids
    assert labels[0] == "Town Hall (M1 1AA) (site 10)"
    assert labels[3] == "Town Hall (M1 1AA) (site 13)"
    assert labels[4:6] == ["Clinic (M4 4DD) (site 14)", "Clinic (M4 4DD) (site 15)"]


def test_an_estate_with_nothing_located_draws_nothing() -> None:
    sites = synthetic_sites(5)
    sites["geometry"] = None
    sites = gpd.GeoDataFrame(sites, geometry="geometry", crs="EPSG:27700")
    for threshold in (0, 1_000):
        m = maps.sites_map(sites, fast_threshold=threshold)
        assert (m.info.sites_drawn, m.info.sites_unlocated) == (0, 5)
        assert "5 not located" in render(m)


def test_non_point_sites_are_drawn_at_a_point_on_their_surface() -> None:
    sites = synthetic_sites(4)
    square = shapely.box(383_000, 398_000, 383_100, 398_100)
    sites.loc[sites.index[0], "geometry"] = square
    lat, lon = _model.lat_lon(sites.geometry)
    inside = gpd.GeoSeries([shapely.Point(float(lon[0]), float(lat[0]))], crs="EPSG:4326").to_crs(
        27700
    )
    assert square.buffer(1).contains(inside.iloc[0])
    expected = sites.geometry.iloc[1:].to_crs(4326)
    assert np.allclose(lat[1:], expected.y, atol=1e-6) and np.allclose(
        lon[1:], expected.x, atol=1e-6
    )


def test_hostile_names_travel_as_data_on_the_fast_path() -> None:
    sites = _hostile(30)
    sites.loc[sites.index[8], "name"] = EVIL_NAME
    data = fast_payload(render(maps.sites_map(sites, fast_threshold=0)))
    assert TEMPLATE_TAGS in data["title"] and EVIL_NAME in data["title"]
    i = data["title"].index(TEMPLATE_TAGS)
    assert data["search"][i].startswith(TEMPLATE_TAGS)
