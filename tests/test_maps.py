"""Maps without a browser: escaping, legend, layers, paths, sizes, figures, CLI.

No snapshot of whole pages (Folium ids are random): each test reads the one thing it
checks from the rendered HTML, the decoded fast-path payload or ``EstatesMap.info``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

import estates.maps as maps
from estates.cli import main
from estates.demo import demo_sites
from estates.errors import ConfigurationError, CrsError, MissingColumnError
from estates.maps import _areas, _escape, _fast
from estates.maps._model import SITE_STATUSES, flag_statuses
from estates.maps.pooling import headline_rows
from tests.browser.frames import (
    EVIL_NAME,
    TRAFFORD_CSV,
    TRAFFORD_WARDS,
    read_boundaries,
    synthetic_scenario,
    synthetic_sites,
    trafford_raw,
    trafford_sites,
)
from tests.conftest import shared_file

SCRIPT_BREAK = "</script><script>window.__pwned=2</script>"
#: (fast_threshold, grid_threshold) for each rendering path: Folium markers, the payload
#: with markercluster, the payload clustered per view in the browser
PATHS = {"folium": (1_000, None), "fast": (0, 10**9), "grid": (0, 0)}


def render(m: maps.EstatesMap) -> str:
    return str(m.get_root().render())


def fast_payload(html: str) -> dict:
    data = _fast.page_payload(html)
    assert data is not None, "fast-path payload elements not found"
    return data


@pytest.fixture(scope="module")
def trafford() -> gpd.GeoDataFrame:
    return trafford_sites(shared_file(TRAFFORD_CSV))


@pytest.fixture(scope="module")
def wards() -> gpd.GeoDataFrame:
    return read_boundaries(shared_file(TRAFFORD_WARDS), "ward")


def evil_frame(n: int = 12) -> gpd.GeoDataFrame:
    """Sites whose every text field tries to break out of HTML or JavaScript."""
    sites = synthetic_sites(n, evil_every=3)
    sites.loc[sites.index[1], "name"] = SCRIPT_BREAK
    sites.loc[sites.index[2], "name"] = "`${window.__pwned=3}` \\ $"
    sites["organisation_name"] = EVIL_NAME
    sites["address"] = SCRIPT_BREAK
    sites["reason_vacant"] = EVIL_NAME
    return sites


# -- escaping -------------------------------------------------------------------------------


def test_html_text_escapes_markup_and_template_literal_characters() -> None:
    escaped = _escape.html_text(EVIL_NAME + "`${x}`\\")
    assert "<" not in escaped and ">" not in escaped and '"' not in escaped
    assert "`" not in escaped and "$" not in escaped and "\\" not in escaped
    assert escaped.startswith("&lt;img src=x onerror=&quot;")
    assert _escape.html_text(None) == "" and _escape.html_text(float("nan")) == ""


def test_script_json_cannot_close_a_script_element() -> None:
    text = _escape.script_json({"name": SCRIPT_BREAK, "x": float("nan"), "sep": "\u2028"})
    assert "</script" not in text.lower() and "<" not in text and "\u2028" not in text
    assert json.loads(text) == {"name": SCRIPT_BREAK, "x": None, "sep": "\u2028"}


def _named_areas(
    sites: gpd.GeoDataFrame, area_name: str, cluster_names: str
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """A district around the sites and a cluster of the first three, with the given texts."""
    boundary = gpd.GeoDataFrame(
        {"code": ["E1"], "name": [area_name], "kind": ["lad"]},
        geometry=[sites.union_all().convex_hull.buffer(500)],
        crs=sites.crs,
    )
    clusters = gpd.GeoDataFrame(
        {"cluster_id": [1], "n_sites": [3], "organisations": [cluster_names], "sectors": ["nhs"]},
        geometry=[sites.geometry.iloc[:3].union_all().convex_hull],
        crs=sites.crs,
    )
    return boundary, clusters


@pytest.mark.parametrize(("fast_threshold", "grid_threshold"), PATHS.values(), ids=list(PATHS))
def test_source_strings_never_reach_the_page_unescaped(
    fast_threshold: int, grid_threshold: int | None
) -> None:
    sites = evil_frame()
    boundary, clusters = _named_areas(sites, EVIL_NAME, EVIL_NAME)
    m = maps.sites_map(
        sites,
        boundaries=boundary,
        clusters=clusters,
        title=EVIL_NAME,
        fast_threshold=fast_threshold,
        grid_threshold=grid_threshold,
        attribution=[SCRIPT_BREAK],
    )
    assert m.info.grid_path is (grid_threshold == 0)
    html = render(m)
    for raw in (EVIL_NAME, "<img src=x", SCRIPT_BREAK):
        assert raw not in html
    # backticks may only appear inside JSON strings (marker options), never in HTML
    # that Folium copies into template literals (tooltips, popups)
    for at in [m.start() for m in re.finditer(re.escape("`${window.__pwned=3}`"), html)]:
        assert html[max(0, at - 16) : at].endswith('"searchName": "')
    if fast_threshold != 0:
        assert "&#x60;&#x24;{window.__pwned=3}&#x60; &#x5C; &#x24;" in html  # tooltip and popup
    assert html.lower().count("</script>") == html.lower().count("<script")
    assert "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;" in html  # title, shown as text
    if fast_threshold == 0:
        data = fast_payload(html)  # the raw names travel as data, drawn with textContent
        assert EVIL_NAME in data["title"] and SCRIPT_BREAK in data["title"]


@pytest.mark.parametrize(("fast_threshold", "grid_threshold"), PATHS.values(), ids=list(PATHS))
def test_template_syntax_in_source_strings_stays_text(
    fast_threshold: int, grid_threshold: int | None
) -> None:
    """Branca re-reads rendered output as a Jinja2 template: source text must not be code.

    "{{ 6*7 }}" must not become 42, and an unbalanced "{{" must not stop the render.
    """
    sites = synthetic_sites(12)
    sites.loc[sites.index[0], "name"] = "Site {{ 6*7 }}"
    sites.loc[sites.index[1], "name"] = "Site {% if true %}yes{% endif %} {# hidden #}"
    sites.loc[sites.index[2], "name"] = "Unbalanced {{"
    sites["organisation_name"] = "Org {{ 6*7 }}"
    sites["reason_vacant"] = "Reason {{ 6*7 }}"
    boundary, clusters = _named_areas(sites, "Area {{ 6*7 }}", "Cluster {{ 6*7 }}")
    m = maps.sites_map(
        sites,
        boundaries=boundary,
        clusters=clusters,
        title="Title {{ 6*7 }}",
        attribution=["Attribution {{ 6*7 }}"],
        fast_threshold=fast_threshold,
        grid_threshold=grid_threshold,
    )
    html = render(m)
    for word in ("Site", "Org", "Reason", "Area", "Cluster", "Title", "Attribution"):
        assert f"{word} 42" not in html
    block = "Site {% if true %}yes{% endif %} {# hidden #}"
    if fast_threshold == 0:
        titles = fast_payload(html)["title"]
        assert {"Site {{ 6*7 }}", "Unbalanced {{", block} <= set(titles)
    else:  # in popups and tooltips as entities; raw only inside JSON (search names)
        assert "Site &#x7B;{ 6*7 }}" in html and "Unbalanced &#x7B;&#x7B;" in html
        assert "Site &#x7B;% if true %}yes&#x7B;% endif %} &#x7B;# hidden #}" in html
        assert f'"searchName": "{block}"' in html
    scenario = synthetic_scenario(40)
    scenario.sites.loc[scenario.sites.index[0], "role"] = "role {{ 6*7 }}"
    pooling = render(
        maps.pooling_map(scenario, fast_threshold=fast_threshold, grid_threshold=grid_threshold)
    )
    assert "role 42" not in pooling.lower()


def test_pooling_map_escapes_scenario_strings() -> None:
    scenario = synthetic_scenario(60, evil=True)
    scenario.headline["receipt_assumptions"] = EVIL_NAME
    html = render(maps.pooling_map(scenario, title=SCRIPT_BREAK))
    assert EVIL_NAME not in html and SCRIPT_BREAK not in html and "<img src=x" not in html


# -- legend, layers, attribution ------------------------------------------------------------


def test_trafford_legend_layers_and_attribution(trafford, wards) -> None:
    m = maps.sites_map(trafford, boundaries=wards, title="Trafford")
    html = render(m)
    located = trafford.geometry.notna().sum()
    legend = html[html.index('id="estates-legend"') :]
    legend = legend[: legend.index("</details>")]
    assert f'data-site-count="{located}"' in legend
    assert f"Council ({located:,})" in legend
    for words in ("Flagged", "Assessed, no flag raised", "Not assessed", "close together"):
        assert words in legend
    assert "Spare floor area (m²): not assessed" in legend  # no spare_m2 column yet
    assert m.info.layers == [
        "Boundaries: spare floor area (m²)",
        f"Council sites ({located:,})",
        "Flagged sites only",
    ]
    for line in (
        "Contains public sector information licensed under the Open Government Licence v3.0",
        "Contains National Statistics and OS data © Crown copyright and database right",
    ):
        assert line in html
    assert "NHS Digital" not in html  # no NHS sites on this map


def test_legend_ramp_spans_the_summed_spare_space() -> None:
    sites = synthetic_sites(200)
    box = gpd.GeoDataFrame(
        {"code": ["A", "B"], "name": ["West", "East"], "kind": ["lad", "lad"]},
        geometry=[
            shapely.box(300_000, 300_000, 383_000, 500_000),
            shapely.box(383_000, 300_000, 500_000, 500_000),
        ],
        crs=sites.crs,
    )
    html = render(maps.sites_map(sites, boundaries=box))
    west = sites.geometry.x < 383_000
    top = max(sites.loc[west, "spare_m2"].sum(), sites.loc[~west, "spare_m2"].sum())
    assert f"{top:,.0f} m²" in html


# -- which path, size --------------------------------------------------------------------------


def test_fast_path_is_chosen_only_above_the_threshold(monkeypatch) -> None:
    sites = synthetic_sites(30)
    at = maps.sites_map(sites, fast_threshold=30)
    above = maps.sites_map(sites, fast_threshold=29)
    assert not at.info.fast_path and above.info.fast_path
    assert "estates-site-data" not in render(at)
    assert len(fast_payload(render(above))["id"]) == 30
    monkeypatch.setenv(maps.FAST_THRESHOLD_ENV, "10")
    assert maps.sites_map(sites).info.fast_path
    monkeypatch.setenv(maps.FAST_THRESHOLD_ENV, "many")
    with pytest.raises(ConfigurationError, match="ESTATES_MAP_FAST_THRESHOLD"):
        maps.sites_map(sites)
    monkeypatch.delenv(maps.FAST_THRESHOLD_ENV)
    assert maps.resolve_fast_threshold() == maps.DEFAULT_FAST_THRESHOLD


def test_grid_path_is_chosen_only_above_its_threshold(monkeypatch) -> None:
    sites = synthetic_sites(30)
    at = maps.sites_map(sites, fast_threshold=0, grid_threshold=30)
    above = maps.sites_map(sites, fast_threshold=0, grid_threshold=29)
    assert at.info.fast_path and not at.info.grid_path
    assert above.info.fast_path and above.info.grid_path and above.info.grid_threshold == 29
    clustered, grid = render(at), render(above)
    assert "leaflet.markercluster" in clustered and "leaflet.markercluster" not in grid
    assert '"clustering":"grid"' in grid and '"clustering":"markercluster"' in clustered
    assert fast_payload(grid)["id"] == fast_payload(clustered)["id"] == sites["site_id"].tolist()
    # the Folium path stays the Folium path, whatever the grid threshold
    assert not maps.sites_map(sites, fast_threshold=30, grid_threshold=0).info.grid_path
    monkeypatch.setenv(maps.GRID_THRESHOLD_ENV, "10")
    assert maps.sites_map(sites, fast_threshold=0).info.grid_path
    scenario = synthetic_scenario(30)
    assert maps.pooling_map(scenario, fast_threshold=0).info.grid_path
    monkeypatch.setenv(maps.GRID_THRESHOLD_ENV, "-3")
    with pytest.raises(ConfigurationError, match="ESTATES_MAP_GRID_THRESHOLD=-3"):
        maps.sites_map(sites)
    monkeypatch.delenv(maps.GRID_THRESHOLD_ENV)
    assert maps.resolve_grid_threshold() == maps.DEFAULT_GRID_THRESHOLD
    with pytest.raises(ConfigurationError, match="must be 0 or more"):
        maps.sites_map(sites, grid_threshold=-1)


def _many_hulls(sites: gpd.GeoDataFrame, n: int, name: str) -> gpd.GeoDataFrame:
    centres = sites.geometry.iloc[:n].to_numpy()
    return gpd.GeoDataFrame(
        {
            "cluster_id": np.arange(n),
            "n_sites": 2,
            "organisations": name,
            "sectors": "nhs;council",
        },
        geometry=shapely.buffer(centres, 60.0),
        crs=sites.crs,
    )


def test_large_area_layers_travel_as_escaped_data() -> None:
    """Over CULL_MIN_FEATURES features, a layer's features leave the script for a JSON element."""
    sites = synthetic_sites(1_200)
    small = maps.sites_map(sites, clusters=_many_hulls(sites, 50, EVIL_NAME))
    assert '"areas":[]' in render(small)
    hulls = _many_hulls(sites, _areas.CULL_MIN_FEATURES + 1, EVIL_NAME + SCRIPT_BREAK)
    m = maps.sites_map(sites, clusters=hulls, title="Many hulls")
    html = render(m)
    for raw in (EVIL_NAME, "<img src=x", SCRIPT_BREAK):
        assert raw not in html
    match = re.search(r'<script type="application/json" id="estates-areas-0">(.*?)</script>', html)
    assert match, "the hulls' data element is missing"
    features = json.loads(match.group(1))["features"]
    assert len(features) == len(hulls)
    assert EVIL_NAME not in match.group(1)  # escaped for HTML (tooltips) before JSON
    assert features[0]["properties"]["organisations"].startswith("&lt;img src=x onerror=")
    config = json.loads(
        re.search(r"estatesRuntime\(.*?(\{\"kind\".*\}), \[geo_json", html).group(1)
    )
    assert config["areas"] == [
        {"id": "estates-areas-0", "show": True, "minZoom": _areas.HULL_DETAIL_ZOOM}
    ]
    # the layer starts off the map (the runtime adds it) and still has its tick box
    assert "Co-location clusters" in m.info.layers
    assert "drawn once the map is zoomed in to a town" in html


def test_html_size_stays_in_check(trafford, tmp_path: Path) -> None:
    saved = maps.save_map(maps.sites_map(trafford), tmp_path / "trafford.html")
    assert not saved["fast_path"] and saved["bytes"] < 1_500_000
    big = maps.save_map(maps.sites_map(synthetic_sites(20_000)), tmp_path / "big.html")
    assert big["fast_path"] and big["sites_drawn"] == 20_000
    assert big["bytes"] < 3_000_000  # about 70 bytes a site, every popup figure included
    assert Path(big["path"]).stat().st_size == big["bytes"]


# -- what is drawn, and what the popups say -------------------------------------------------------


def test_unlocated_and_non_geographic_sites_are_counted_not_drawn() -> None:
    sites = synthetic_sites(10)
    sites.loc[sites.index[0], "geometry"] = None
    sites.loc[sites.index[1], "non_geographic"] = True
    sites.loc[sites.index[2], "geometry"] = shapely.Point()  # empty
    m = maps.sites_map(sites, fast_threshold=0)
    assert (m.info.sites_drawn, m.info.sites_unlocated, m.info.sites_non_geographic) == (7, 2, 1)
    drawn = fast_payload(render(m))["id"]
    assert sorted(drawn) == sorted(sites["site_id"].iloc[3:].tolist())
    assert "2 not located" in render(m)


def test_popup_figures_come_from_the_frame_and_missing_ones_say_so(trafford) -> None:
    raw = trafford_raw(shared_file(TRAFFORD_CSV))
    row = raw.loc[(raw["BuildingSize"] != "") & (raw["GeoX"] != "")].iloc[0]
    html = render(maps.sites_map(trafford, fast_threshold=0))
    data = fast_payload(html)
    i = data["title"].index(row["PropertyName"])
    popup = {r["label"]: _fast.text_at(r, i) for r in data["rows"]}
    assert popup["Gross internal area"] == f"{round(float(row['BuildingSize'])):,} m²"
    assert popup["Tenure"] == row["TenureType"]
    assert popup["Spare floor area"] == "not assessed"  # no analysis columns
    assert popup["Running cost"] == "not assessed"


def test_flag_status_from_flag_columns_and_summary_columns() -> None:
    frame = pd.DataFrame(
        {
            "flag_vacant": ["flagged", "pass", "not_assessable", "not_applicable"],
            "reason_vacant": ["empty", "in use", "no data", ""],
            "flag_poor_condition": ["flagged", "pass", "not_assessable", "not_applicable"],
        }
    )
    flags = flag_statuses(frame)
    assert [SITE_STATUSES[s] for s in flags.status] == [
        "flagged",
        "clear",
        "unassessed",
        "unassessed",
    ]
    assert flags.count.tolist() == [2, 0, 0, 0]
    assert [status for _label, status, _s in flags.lines(2) or []] == ["not_assessable"] * 2
    assert flags.lines(0) == [
        ("Vacant", "flagged", "empty"),
        ("Poor condition", "flagged", ""),
    ]
    assert flags.lines(3) == []
    summary = pd.DataFrame(
        {
            "flags": ["vacant;surplus_land", "", "vacant;surplus_land"],
            "flag_sentences": ["empty\nno use", "", "empty\nno use"],
            "flag_count": [2, 0, 2],
        }
    )
    flags = flag_statuses(summary)
    assert [SITE_STATUSES[s] for s in flags.status] == ["flagged", "clear", "flagged"]
    assert flags.count.tolist() == [2, 0, 2]
    assert flags.lines(2) == [("Vacant", "flagged", "empty"), ("Surplus land", "flagged", "no use")]
    assert flags.lines(1) == []
    nothing = flag_statuses(pd.DataFrame({"x": [1]}))
    assert [SITE_STATUSES[s] for s in nothing.status] == ["unassessed"] and nothing.lines(0) is None


def test_boundary_figures_by_code_column_equal_the_spatial_join() -> None:
    sites = synthetic_sites(300)
    box = gpd.GeoDataFrame(
        {"code": ["A", "B"], "kind": ["lad", "lad"]},
        geometry=[
            shapely.box(300_000, 300_000, 383_000, 500_000),
            shapely.box(383_000, 300_000, 500_000, 500_000),
        ],
        crs=sites.crs,
    )
    spatial = _areas.boundary_figures(box, sites)
    coded = sites.assign(lad_code=np.where(sites.geometry.x < 383_000, "A", "B"))
    by_code = _areas.boundary_figures(box, coded)
    assert (
        spatial["sites"].tolist()
        == by_code["sites"].tolist()
        == [
            int((sites.geometry.x < 383_000).sum()),
            int((sites.geometry.x >= 383_000).sum()),
        ]
    )
    west = sites.geometry.x < 383_000
    assert spatial["spare_m2"].iloc[0] == pytest.approx(sites.loc[west, "spare_m2"].sum())
    assert by_code["spare_share_pct"].iloc[1] == pytest.approx(
        sites.loc[~west, "spare_m2"].sum() / sites.loc[~west, "gia_m2"].sum() * 100
    )


def test_geojson_geometries_draw_what_the_shapes_are() -> None:
    square = shapely.Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (2, 1), (2, 2)]])
    cases = [
        [shapely.Point(1, 2), shapely.Point(3, 4)],
        [shapely.LineString([(0, 0), (1, 1)]), shapely.LineString([(2, 2), (3, 3), (4, 5)])],
        [square, shapely.box(5, 5, 6, 6)],
        [shapely.MultiPolygon([square, shapely.box(5, 5, 6, 6)]), shapely.box(7, 7, 8, 9)],
        [shapely.MultiLineString([[(0, 0), (1, 1)], [(2, 2), (3, 3)]])],
        [shapely.Point(0, 0), shapely.box(0, 0, 1, 1)],  # no shared layout: shape by shape
    ]
    for shapes in cases:
        drawn = _areas._geojson_geometries(np.asarray(shapes, dtype=object))
        assert len(drawn) == len(shapes)
        for geometry, shape in zip(drawn, shapes, strict=True):
            back = shapely.geometry.shape(json.loads(json.dumps(geometry)))
            assert back.equals(shape) and shapely.get_num_coordinates(back) == (
                shapely.get_num_coordinates(shape)
            )


def test_simplified_shapes_match_topology_preserving_simplification() -> None:
    rng = np.random.default_rng(5)
    hulls = [
        shapely.MultiPoint(rng.normal(0, 300, (40, 2)) + k * 2_000).convex_hull.buffer(40)
        for k in range(30)
    ]
    # concave, and narrower than the tolerance in places: plain Douglas-Peucker breaks it
    comb = shapely.Polygon([(0, 0), (10, 0), (10, 1), (1, 1), (1, 1.2), (10, 1.2), (10, 2), (0, 2)])
    sliver = shapely.box(0, 0, 100, 0.5)  # convex but thinner than the tolerance
    shapes = np.asarray([*hulls, comb, sliver, shapely.LineString([(0, 0), (5, 0.1), (9, 0)])])
    ours = _areas._simplified(shapes, 2.0)
    reference = shapely.simplify(shapes, 2.0, preserve_topology=True)
    assert shapely.equals(ours, reference).all()
    assert not shapely.is_empty(ours).any()


def test_cluster_hulls_are_one_layer() -> None:
    sites = synthetic_sites(200)
    points = np.asarray(sites.geometry.values, dtype=object)
    hulls = [shapely.MultiPoint(points[k : k + 5].tolist()).convex_hull for k in range(0, 200, 5)]
    clusters = gpd.GeoDataFrame(
        {"cluster_id": range(1, 41), "n_sites": 5, "organisations": "A;B", "sectors": "nhs"},
        geometry=hulls,
        crs=sites.crs,
    )
    html = render(maps.sites_map(sites, clusters=clusters))
    assert html.count("L.geoJson(") == 1
    data = re.search(r"_add\((\{\"features\".*?)\);\n", html)
    assert data and len(json.loads(data.group(1))["features"]) == 40


def test_maps_do_not_change_their_input() -> None:
    sites = synthetic_sites(50)
    before = sites.copy()
    maps.sites_map(sites, fast_threshold=0)
    maps.sites_map(sites)
    scenario = synthetic_scenario(50)
    flows_before = scenario.flows.copy()
    maps.pooling_map(scenario)
    pd.testing.assert_frame_equal(pd.DataFrame(sites), pd.DataFrame(before))
    pd.testing.assert_frame_equal(pd.DataFrame(scenario.flows), pd.DataFrame(flows_before))


# -- bad input ---------------------------------------------------------------------------------


def test_bad_frames_give_one_clear_error() -> None:
    sites = synthetic_sites(5)
    with pytest.raises(CrsError, match="no CRS"):
        plain = pd.DataFrame(sites).drop(columns="geometry")
        maps.sites_map(gpd.GeoDataFrame(plain, geometry=list(sites.geometry)))
    with pytest.raises(CrsError, match="EPSG:27700"):
        maps.sites_map(sites.to_crs(4326))
    with pytest.raises(MissingColumnError, match="sector"):
        maps.sites_map(sites.drop(columns=["sector"]))
    with pytest.raises(TypeError, match="GeoDataFrame"):
        maps.sites_map(pd.DataFrame(sites))


# -- pooling -----------------------------------------------------------------------------------


def test_pooling_headline_rows_format_figures_and_admit_gaps() -> None:
    scenario = synthetic_scenario(90)
    rows = dict(headline_rows(scenario.headline)[0])
    released = scenario.sites.loc[scenario.sites["role"] == "released", "gia_m2"].sum()
    assert rows["Floor area released"] == f"{released:,.0f} m²"
    assert rows["Backlog avoided"] == "£2,080,000"
    assert (
        rows["Sites released"] == f"{(scenario.sites['role'] == 'released').sum()} of 90 considered"
    )
    empty = dict(headline_rows({})[0])
    assert empty["Running cost saved per year"] == "not assessed"
    assert empty["Access change"] == "not assessed"


def test_pooling_map_draws_roles_flows_and_access() -> None:
    scenario = synthetic_scenario(120)
    m = maps.pooling_map(scenario)
    html = render(m)
    roles = scenario.sites["role"].value_counts()
    assert m.info.sites_drawn == 120
    assert f"Released (closes) ({roles['released']})" in m.info.layers
    assert "Floor area moves" in m.info.layers
    assert "Access change: nearest NHS site" in m.info.layers
    assert "Scenario figures" in html and "Indicative receipts" in html
    assert html.count('"origin":') == len(scenario.flows)


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_map_sites_writes_the_file(db_url: str, tmp_path: Path) -> None:
    import estates

    with estates.connect(db_url) as estate:
        estate.write_sites(demo_sites())
    out = tmp_path / "sites.html"
    result = CliRunner().invoke(
        main, ["--db", db_url, "map", "sites", "-o", str(out), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["sites_drawn"] == 240 and payload["path"] == str(out)
    assert out.stat().st_size == payload["bytes"]
    assert payload["flags_run"] and payload["colocation_run"]
    again = CliRunner().invoke(
        main,
        [
            "--db",
            db_url,
            "map",
            "sites",
            "--run",
            str(payload["flags_run"]),
            "-o",
            str(out),
            "--json",
        ],
        catch_exceptions=False,
    )
    assert again.exit_code == 0 and json.loads(again.stdout)["sites_drawn"] == 240


def test_cli_map_pooling_needs_a_footprint(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "e.gpkg"), "map", "pooling"])
    assert result.exit_code == 2
    assert "--footprint" in result.output
