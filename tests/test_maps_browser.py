"""The maps in real headless Chromium, network off, assets from npm copies.

Each test opens a saved map as a user would (``file://``), with every CDN request
answered from ``tests/browser/node_modules`` and everything else refused, then checks
what really rendered: no JavaScript errors, one Leaflet marker per located site, the
right popup for a clicked site, legend, layer control, search, and that a site named
like an HTML tag shows as text. Screenshots go to ``maps/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

import estates.maps as maps
from tests.browser.assets import (
    browser_unavailable_reason,
    chromium_browser,
    goto_map,
    open_map,
    skip_or_fail,
)
from tests.browser.frames import (
    EVIL_NAME,
    FLAG_NAMES,
    TRAFFORD_CSV,
    TRAFFORD_WARDS,
    read_boundaries,
    synthetic_scenario,
    synthetic_sites,
    trafford_raw,
    trafford_sites,
)
from tests.conftest import ROOT, shared_file

pytestmark = pytest.mark.browser
log = logging.getLogger(__name__)
SCREENSHOTS = ROOT / "maps" / "screenshots"
TEMPLATE_BREAK = "`${window.__pwned=3}`"
#: Jinja2 syntax: Branca reads rendered output as a template again (estates.maps._render)
TEMPLATE_TAGS = "{{ 7*7 }} {% if true %}x{% endif %} {#"
#: (fast_threshold, grid_threshold) for each rendering path: Folium markers, the payload
#: with markercluster, the payload clustered per view in the browser
PATHS = {"folium": (1_000, None), "fast": (0, 10**9), "grid": (0, 0)}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = browser_unavailable_reason()
    if reason:
        skip_or_fail(reason)
    with chromium_browser() as instance:
        yield instance


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000  # a real picture, not a blank page
    return path


def marker_ids(page: Any) -> list[int]:
    return [int(i) for i in page.evaluate("estatesMap.markerIds()")]


def click_site(page: Any, site_id: int) -> str:
    """Zoom to a site, click it with the mouse and return the popup's text.

    On the grid path sites are painted on a canvas: the click goes to the pixel where
    the runtime says it painted the site.
    """
    if page.evaluate("!!estatesMap.grid"):
        page.evaluate(
            """id => { const f = estatesMap.findMarker(id);
                       estatesMap.map.closePopup();
                       estatesMap.map.setView(f.latlng, 17, {animate: false}); }""",
            site_id,
        )
        page.wait_for_function(f"!!estatesMap.sitePoint({int(site_id)})", timeout=10_000)
        point = page.evaluate(f"estatesMap.sitePoint({int(site_id)})")
        origin = page.locator(".folium-map").bounding_box()
        page.mouse.click(origin["x"] + point["x"], origin["y"] + point["y"])
        return _popup_text(page, site_id)
    page.evaluate(
        """id => { const m = estatesMap.findMarker(id).marker;
                   estatesMap.map.closePopup();
                   estatesMap.map.setView(m.getLatLng(), 17, {animate: false}); }""",
        site_id,
    )
    page.wait_for_function(
        f"!!estatesMap.findMarker({int(site_id)}).marker._icon && !estatesMap.cluster._inZoomAnimation",
        timeout=10_000,
    )
    page.wait_for_timeout(400)  # marker-cluster's own 0.3 s transitions
    box = page.evaluate_handle(f"estatesMap.findMarker({int(site_id)}).marker._icon")
    bounds = box.as_element().bounding_box()
    page.mouse.click(bounds["x"] + bounds["width"] / 2, bounds["y"] + bounds["height"] / 2)
    return _popup_text(page, site_id)


def _popup_text(page: Any, site_id: int) -> str:
    popup = f'.leaflet-popup-content .estates-popup[data-site-id="{int(site_id)}"]'
    page.wait_for_selector(popup, timeout=10_000)
    page.wait_for_timeout(300)  # let the popup finish fading in (for screenshots)
    return str(page.inner_text(popup))


def popup_title(page: Any, site_id: int) -> str:
    return str(
        page.inner_text(f'.leaflet-popup-content .estates-popup[data-site-id="{int(site_id)}"] h4')
    )


def assert_clean(log_: Any) -> None:
    assert log_.problems() == []
    assert any("leaflet@1.9.3/dist/leaflet.js" in url for url in log_.served)


# -- Trafford, real data ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def trafford(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, gpd.GeoDataFrame, pd.DataFrame]:
    sites = trafford_sites(shared_file(TRAFFORD_CSV))
    wards = read_boundaries(shared_file(TRAFFORD_WARDS), "ward")
    path = tmp_path_factory.mktemp("maps") / "trafford.html"
    maps.save_map(maps.sites_map(sites, boundaries=wards, title="Trafford Council"), path)
    return path, sites, trafford_raw(shared_file(TRAFFORD_CSV))


def test_trafford_map_holds_one_marker_per_located_site(browser, trafford) -> None:
    path, _sites, raw = trafford
    located = raw.loc[(raw["GeoX"] != "") & (raw["GeoY"] != "")]  # counted from the CSV itself
    with open_map(browser, path) as (page, log_):
        load_ms = goto_map(page, path)
        assert page.evaluate("estatesMap.siteCount") == len(located)
        assert page.evaluate("estatesMap.countMarkers()") == len(located)
        assert page.evaluate("estatesMap.countMarkersOnLayers()") == len(located)
        assert len(set(marker_ids(page))) == len(located)
        assert page.get_attribute(".folium-map", "data-estates-site-count") == str(len(located))
        assert not page.evaluate("estatesMap.fastPath")
        legend = page.inner_text("#estates-legend")
        assert f"Council ({len(located):,})" in legend and "Boundaries" in legend
        layers = page.inner_text(".leaflet-control-layers")
        for name in (f"Council sites ({len(located):,})", "Flagged sites only", "Boundaries"):
            assert name in layers
        assert "Contains National Statistics and OS data" in page.inner_text(
            ".leaflet-control-attribution"
        )
        assert page.is_visible(".leaflet-control-scale")
        assert page.is_visible(".leaflet-control-search input.search-input")
        page.wait_for_timeout(300)
        screenshot(page, "trafford_sites")
        assert_clean(log_)
    log.info("Trafford map: %d bytes, ready in %.0f ms", path.stat().st_size, load_ms)


def test_clicking_a_trafford_site_opens_its_own_figures(browser, trafford) -> None:
    path, sites, raw = trafford
    alone = ~raw.duplicated(["GeoX", "GeoY"], keep=False)  # a click hits only this marker
    row = raw.loc[(raw["BuildingSize"] != "") & (raw["GeoX"] != "") & alone].iloc[3]
    site_id = int(
        sites.loc[sites["source_key"] == "lgtc:trafford:" + row["AssetCode"], "site_id"].iloc[0]
    )
    with open_map(browser, path) as (page, log_):
        goto_map(page, path)
        text = click_site(page, site_id)
        assert popup_title(page, site_id) == row["PropertyName"]
        assert f"{round(float(row['BuildingSize'])):,} m²" in text
        assert row["TenureType"] in text and row["TenureDetail"] in text
        assert "Vacant (" in text  # the flag line, with its status
        screenshot(page, "trafford_popup")
        assert_clean(log_)


def test_search_box_finds_and_opens_a_site(browser, trafford) -> None:
    path, _sites, raw = trafford
    name = raw.loc[raw["GeoX"] != "", "PropertyName"].iloc[0]
    with open_map(browser, path) as (page, log_):
        goto_map(page, path)
        page.locator(".leaflet-control-search input.search-input").press_sequentially(
            name[:-2], delay=15
        )
        tip = page.locator(".leaflet-control-search .search-tip", has_text=name).first
        tip.wait_for(timeout=10_000)
        tip.click()
        page.wait_for_selector(".leaflet-popup-content .estates-popup", timeout=10_000)
        assert page.inner_text(".leaflet-popup-content h4") == name
        assert_clean(log_)


def test_flagged_only_layer_hides_the_others(browser, trafford) -> None:
    path, sites, _raw = trafford
    located = sites.loc[sites.geometry.notna()]
    flagged = int((located["flag_vacant"] == "flagged").sum())
    with open_map(browser, path) as (page, log_):
        goto_map(page, path)
        toggle = page.locator(".leaflet-control-layers label", has_text="Flagged sites only")
        toggle.locator("input").check()
        assert page.evaluate("estatesMap.countMarkersOnLayers()") == flagged
        assert page.evaluate("estatesMap.countMarkers()") == len(located)  # held, not dropped
        toggle.locator("input").uncheck()
        assert page.evaluate("estatesMap.countMarkersOnLayers()") == len(located)
        assert_clean(log_)


# -- hostile names, both rendering paths ---------------------------------------------------------


@pytest.mark.parametrize(("fast_threshold", "grid_threshold"), PATHS.values(), ids=list(PATHS))
def test_a_site_named_like_html_shows_as_text(
    browser, tmp_path: Path, fast_threshold: int, grid_threshold: int | None
) -> None:
    sites = synthetic_sites(40, evil_every=4)
    sites.loc[sites.index[1], "name"] = TEMPLATE_BREAK
    sites["organisation_name"] = EVIL_NAME
    path = tmp_path / "evil.html"
    saved = maps.save_map(
        maps.sites_map(sites, fast_threshold=fast_threshold, grid_threshold=grid_threshold), path
    )
    assert saved["fast_path"] is (fast_threshold == 0)
    assert saved["grid_path"] is (grid_threshold == 0)
    evil_id = int(sites["site_id"].iloc[0])
    with open_map(browser, path) as (page, log_):
        goto_map(page, path)
        assert page.evaluate("estatesMap.countMarkers()") == 40
        text = click_site(page, evil_id)
        assert popup_title(page, evil_id) == EVIL_NAME
        assert EVIL_NAME in text  # organisation, also as text
        click_site(page, int(sites["site_id"].iloc[1]))
        assert popup_title(page, int(sites["site_id"].iloc[1])) == TEMPLATE_BREAK
        page.locator(".leaflet-control-search input.search-input").press_sequentially(
            "img src", delay=15
        )
        tip = page.locator(".leaflet-control-search .search-tip").first
        tip.wait_for(timeout=10_000)
        assert EVIL_NAME in tip.inner_text()
        kind = "grid" if grid_threshold == 0 else "fast" if fast_threshold == 0 else "folium"
        screenshot(page, f"escaped_names_{kind}")
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
        assert_clean(log_)


def test_every_path_shows_the_same_popup(browser, tmp_path: Path) -> None:
    """The Folium path's popup HTML and the payload's ``buildPopup`` say the same thing."""
    sites = synthetic_sites(60, evil_every=9)
    sites.loc[sites.index[1], "name"] = TEMPLATE_TAGS
    sites.loc[sites.index[2], "reason_vacant"] = TEMPLATE_TAGS
    sites.loc[sites.index[2], "flag_vacant"] = "flagged"
    sites.loc[sites.index[3], ["gia_m2", "address"]] = [float("nan"), None]
    texts: dict[str, list[str]] = {}
    picked = [int(sites["site_id"].iloc[k]) for k in (0, 1, 2, 3, 17)]
    for kind, (threshold, grid_threshold) in PATHS.items():
        path = tmp_path / f"{kind}.html"
        saved = maps.save_map(
            maps.sites_map(sites, fast_threshold=threshold, grid_threshold=grid_threshold), path
        )
        assert saved["fast_path"] is (threshold == 0)
        assert saved["grid_path"] is (grid_threshold == 0)
        with open_map(browser, path) as (page, log_):
            goto_map(page, path)
            texts[kind] = [click_site(page, site_id) for site_id in picked]
            assert popup_title(page, picked[-1]) == sites["name"].iloc[17]
            assert page.evaluate("typeof window.__pwned") == "undefined"
            assert_clean(log_)
    assert texts["fast"] == texts["folium"]
    assert texts["grid"] == texts["folium"]
    assert TEMPLATE_TAGS in texts["fast"][1] and TEMPLATE_TAGS in texts["fast"][2]
    assert "Vacant (flagged): " + TEMPLATE_TAGS in texts["fast"][2]


# -- large estate --------------------------------------------------------------------------------


@pytest.mark.slow
def test_twenty_thousand_sites_open_on_the_fast_path(
    browser, tmp_path: Path, record_property
) -> None:
    sites = synthetic_sites(20_000)
    path = tmp_path / "large.html"
    saved = maps.save_map(maps.sites_map(sites, title="20,000 synthetic sites"), path)
    assert saved["fast_path"] and not saved["grid_path"]  # markercluster copes with this many
    with open_map(browser, path) as (page, log_):
        load_ms = goto_map(page, path, timeout_ms=120_000)
        assert page.evaluate("estatesMap.clustering") == "markercluster"
        assert page.evaluate("estatesMap.countMarkers()") == 20_000
        assert page.evaluate("estatesMap.countMarkersOnLayers()") == 20_000
        # a cluster bubble, not 20,000 DOM nodes
        assert page.evaluate("document.querySelectorAll('.leaflet-marker-icon').length") < 2_000
        row = sites.iloc[12_345]
        text = click_site(page, int(row["site_id"]))
        assert popup_title(page, int(row["site_id"])) == row["name"]
        assert f"{row['spare_m2']:,.0f} m²" in text
        assert f"£{row['running_cost_per_m2']:,.2f} per m²" in text
        screenshot(page, "large_fast_path")
        assert_clean(log_)
    record_property("html_bytes", saved["bytes"])
    record_property("ready_ms", load_ms)
    log.info("20,000-site map: %d bytes, ready in %.0f ms", saved["bytes"], load_ms)


GRID_SITES = 60_000


def _hulls_around(sites: gpd.GeoDataFrame, n: int) -> gpd.GeoDataFrame:
    """``n`` small co-location hulls (more than the runtime draws at once)."""
    picked = sites.iloc[:: len(sites) // n][:n]
    return gpd.GeoDataFrame(
        {
            "cluster_id": np.arange(n),
            "n_sites": 2,
            "n_organisations": 2,
            "organisations": "Organisation 1;Organisation 2",
            "sectors": "nhs;council",
            "combined_gia_m2": 1_000.0,
        },
        geometry=picked.geometry.buffer(150.0).to_numpy(),
        crs=sites.crs,
    )


def _boxes_over(sites: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A 3 x 3 grid of districts over the sites (a choropleth to draw)."""
    x0, y0, x1, y1 = sites.total_bounds
    dx, dy = (x1 - x0) / 3, (y1 - y0) / 3
    boxes = [
        shapely.box(x0 + i * dx, y0 + j * dy, x0 + (i + 1) * dx, y0 + (j + 1) * dy)
        for i in range(3)
        for j in range(3)
    ]
    return gpd.GeoDataFrame(
        {"code": [f"E0700000{k}" for k in range(9)], "name": [f"District {k}" for k in range(9)]},
        geometry=boxes,
        crs=sites.crs,
    ).assign(kind="lad")


@pytest.fixture(scope="module")
def grid_estate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, gpd.GeoDataFrame]:
    """60,000 sites (more than markercluster keeps up with), hostile names among them."""
    sites = synthetic_sites(GRID_SITES, seed=3, evil_every=7_919)
    sites.loc[sites.index[5], "name"] = TEMPLATE_TAGS
    path = tmp_path_factory.mktemp("grid") / "grid.html"
    drawn = maps.sites_map(
        sites,
        boundaries=_boxes_over(sites),
        clusters=_hulls_around(sites, 1_500),
        title="60,000 synthetic sites",
    )
    saved = maps.save_map(drawn, path)
    assert saved["grid_path"] and saved["sites_drawn"] == GRID_SITES
    log.info("%d-site grid map: %d bytes", GRID_SITES, saved["bytes"])
    return path, sites


def drawn_total(page: Any) -> int:
    drawn = page.evaluate("estatesMap.drawn()")
    return int(drawn["sitesInBubbles"] + drawn["sites"])


@pytest.mark.slow
def test_a_large_estate_draws_bubbles_at_once(browser, grid_estate, record_property) -> None:
    path, sites = grid_estate
    with open_map(browser, path) as (page, log_):
        ready_ms = goto_map(page, path, timeout_ms=120_000)
        assert ready_ms < 60_000  # markercluster never got there with a national estate
        assert page.evaluate("estatesMap.clustering") == "grid"
        assert page.evaluate("estatesMap.countMarkers()") == GRID_SITES
        drawn = page.evaluate("estatesMap.drawn()")
        assert 0 < drawn["bubbles"] < 500  # bubbles, not 60,000 markers
        assert drawn_total(page) == GRID_SITES  # the whole estate is in view: each site once
        assert page.evaluate("document.querySelectorAll('.leaflet-marker-icon').length") == 0
        flagged = sum(i["flagged"] for i in page.evaluate("estatesMap.drawnItems()"))
        any_flag = np.column_stack([sites[f"flag_{n}"] == "flagged" for n in FLAG_NAMES])
        assert flagged == int(any_flag.any(axis=1).sum())  # the bubbles' black diamonds
        legend = page.inner_text("#estates-legend")
        nhs = int((sites["sector"] == "nhs").sum())
        assert f"NHS ({nhs:,})" in legend and "Co-location" in legend
        layers = page.inner_text(".leaflet-control-layers")
        for name in (f"NHS sites ({nhs:,})", "Flagged sites only", "Co-location clusters"):
            assert name in layers
        assert page.is_visible(".leaflet-control-scale")
        assert page.is_visible(".leaflet-control-search input.search-input")
        assert "Contains National Statistics and OS data" in page.inner_text(
            ".leaflet-control-attribution"
        )
        # the nine districts; the 1,500 hulls wait until the map is zoomed in to a town
        page.wait_for_function("estatesMap.timings.areas !== undefined", timeout=30_000)
        assert page.evaluate("document.querySelectorAll('.leaflet-overlay-pane path').length") == 9
        screenshot(page, "grid_national")
        assert_clean(log_)
    record_property("ready_ms", ready_ms)
    log.info("%d-site grid map drawn in %.0f ms", GRID_SITES, ready_ms)


@pytest.mark.slow
def test_zooming_in_on_a_large_estate_shows_its_sites_and_their_popups(
    browser, grid_estate, tmp_path: Path
) -> None:
    path, sites = grid_estate
    picked = [0, 5, 12_345, 40_000]  # a hostile name, template syntax, two ordinary sites
    ids = [int(sites["site_id"].iloc[k]) for k in picked]
    folium_path = tmp_path / "picked.html"
    maps.save_map(maps.sites_map(sites.iloc[picked], fast_threshold=1_000), folium_path)
    with open_map(browser, folium_path) as (page, log_):
        goto_map(page, folium_path)
        expected = [click_site(page, site_id) for site_id in ids]
        assert_clean(log_)
    with open_map(browser, path) as (page, log_):
        goto_map(page, path, timeout_ms=120_000)
        page.wait_for_function("estatesMap.detailsReady === true", timeout=60_000)
        # one click on the biggest bubble zooms in to its sites
        zoom = page.evaluate("estatesMap.map.getZoom()")
        biggest = max(
            (i for i in page.evaluate("estatesMap.drawnItems()") if i["kind"] == "bubble"),
            key=lambda i: i["count"],
        )
        origin = page.locator(".folium-map").bounding_box()
        page.mouse.click(origin["x"] + biggest["x"], origin["y"] + biggest["y"])
        page.wait_for_function(f"estatesMap.map.getZoom() > {zoom}", timeout=10_000)
        page.wait_for_function(f"estatesMap.grid.last.zoom > {zoom}", timeout=10_000)
        assert drawn_total(page) < GRID_SITES
        texts = [click_site(page, site_id) for site_id in ids]
        drawn = page.evaluate("estatesMap.drawn()")
        assert drawn["bubbles"] == 0 and 0 < drawn["sites"] < 2_000  # each site on its own
        assert popup_title(page, ids[-1]) == sites["name"].iloc[40_000]
        page.wait_for_timeout(200)
        screenshot(page, "grid_popup")
        # zoomed in to a town, the hulls there are drawn (and only those)
        hulls = page.evaluate("document.querySelectorAll('.leaflet-overlay-pane path').length") - 9
        assert 0 < hulls < 1_500
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert_clean(log_)
    assert texts == expected
    assert EVIL_NAME in texts[0] and TEMPLATE_TAGS in texts[1]


@pytest.mark.slow
def test_sector_layers_and_the_flag_filter_change_what_a_large_estate_counts(
    browser, grid_estate
) -> None:
    path, sites = grid_estate
    nhs = int((sites["sector"] == "nhs").sum())
    any_flag = np.column_stack([sites[f"flag_{n}"] == "flagged" for n in FLAG_NAMES])
    flagged = int(any_flag.any(axis=1).sum())
    with open_map(browser, path) as (page, log_):
        goto_map(page, path, timeout_ms=120_000)
        toggle = page.locator(".leaflet-control-layers label", has_text=f"NHS sites ({nhs:,})")
        toggle.locator("input").uncheck()
        assert drawn_total(page) == GRID_SITES - nhs
        assert page.evaluate("estatesMap.countMarkersOnLayers()") == GRID_SITES - nhs
        toggle.locator("input").check()
        assert drawn_total(page) == GRID_SITES
        only = page.locator(".leaflet-control-layers label", has_text="Flagged sites only")
        only.locator("input").check()
        assert drawn_total(page) == flagged
        assert page.evaluate("estatesMap.countMarkers()") == GRID_SITES  # held, not dropped
        only.locator("input").uncheck()
        assert drawn_total(page) == GRID_SITES
        assert_clean(log_)


@pytest.mark.slow
def test_search_finds_a_site_among_a_large_estate(browser, grid_estate) -> None:
    path, sites = grid_estate
    row = sites.iloc[43_210]
    with open_map(browser, path) as (page, log_):
        goto_map(page, path, timeout_ms=120_000)
        box = page.locator(".leaflet-control-search input.search-input")
        box.press_sequentially(row["name"], delay=15)
        tip = page.locator(".leaflet-control-search .search-tip", has_text=row["name"]).first
        tip.wait_for(timeout=20_000)
        assert page.locator(".leaflet-control-search .search-tip").count() == 1  # a unique name
        tip.click()
        page.wait_for_selector(
            f'.leaflet-popup-content .estates-popup[data-site-id="{int(row["site_id"])}"]',
            timeout=10_000,
        )
        assert popup_title(page, int(row["site_id"])) == row["name"]
        box.fill("")
        box.press_sequentially("img src", delay=15)  # the hostile names, found as text
        page.locator(".leaflet-control-search .search-tip").first.wait_for(timeout=20_000)
        tips = page.locator(".leaflet-control-search .search-tip").all_inner_texts()
        assert tips and all(EVIL_NAME in t for t in tips)
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert_clean(log_)


# -- pooling -------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid_threshold", [None, 0], ids=["markers", "grid"])
def test_pooling_map_renders_roles_flows_and_figures(
    browser, tmp_path: Path, grid_threshold: int | None
) -> None:
    scenario = synthetic_scenario(200, evil=True)
    path = tmp_path / "pooling.html"
    fast = None if grid_threshold is None else 0
    drawn = maps.pooling_map(
        scenario, title="Synthetic footprint", fast_threshold=fast, grid_threshold=grid_threshold
    )
    assert drawn.info.grid_path is (grid_threshold == 0)
    maps.save_map(drawn, path)
    released = scenario.sites["role"] == "released"
    with open_map(browser, path) as (page, log_):
        goto_map(page, path)
        assert page.evaluate("estatesMap.countMarkers()") == 200
        panel = page.inner_text("#estates-panel")
        assert f"{scenario.sites.loc[released, 'gia_m2'].sum():,.0f} m²" in panel
        assert f"{int(released.sum())} of 200" in panel
        paths = page.evaluate("document.querySelectorAll('.leaflet-overlay-pane path').length")
        assert paths >= len(scenario.flows) + len(scenario.access)
        layers = page.inner_text(".leaflet-control-layers")
        assert (
            "Floor area moves" in layers and f"Released (closes) ({int(released.sum())})" in layers
        )
        text = click_site(page, int(scenario.sites.loc[released, "site_id"].iloc[0]))
        assert "Released (closes)" in text
        page.wait_for_timeout(200)
        screenshot(page, "pooling" if grid_threshold is None else "pooling_grid")
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert_clean(log_)
