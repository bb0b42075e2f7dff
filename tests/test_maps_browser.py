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
import pandas as pd
import pytest

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
    """Zoom to a site's marker, click it with the mouse and return the popup's text."""
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


@pytest.mark.parametrize("fast_threshold", [1000, 0], ids=["folium", "fast"])
def test_a_site_named_like_html_shows_as_text(browser, tmp_path: Path, fast_threshold: int) -> None:
    sites = synthetic_sites(40, evil_every=4)
    sites.loc[sites.index[1], "name"] = TEMPLATE_BREAK
    sites["organisation_name"] = EVIL_NAME
    path = tmp_path / "evil.html"
    saved = maps.save_map(maps.sites_map(sites, fast_threshold=fast_threshold), path)
    assert saved["fast_path"] is (fast_threshold == 0)
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
        screenshot(page, f"escaped_names_{'fast' if fast_threshold == 0 else 'folium'}")
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
        assert_clean(log_)


def test_both_paths_show_the_same_popup(browser, tmp_path: Path) -> None:
    """The Folium path's popup HTML and the fast path's ``buildPopup`` say the same thing."""
    sites = synthetic_sites(60, evil_every=9)
    sites.loc[sites.index[1], "name"] = TEMPLATE_TAGS
    sites.loc[sites.index[2], "reason_vacant"] = TEMPLATE_TAGS
    sites.loc[sites.index[2], "flag_vacant"] = "flagged"
    sites.loc[sites.index[3], ["gia_m2", "address"]] = [float("nan"), None]
    texts: dict[str, list[str]] = {}
    picked = [int(sites["site_id"].iloc[k]) for k in (0, 1, 2, 3, 17)]
    for kind, threshold in (("folium", 1_000), ("fast", 0)):
        path = tmp_path / f"{kind}.html"
        assert maps.save_map(maps.sites_map(sites, fast_threshold=threshold), path)[
            "fast_path"
        ] is (threshold == 0)
        with open_map(browser, path) as (page, log_):
            goto_map(page, path)
            texts[kind] = [click_site(page, site_id) for site_id in picked]
            assert popup_title(page, picked[-1]) == sites["name"].iloc[17]
            assert page.evaluate("typeof window.__pwned") == "undefined"
            assert_clean(log_)
    assert texts["fast"] == texts["folium"]
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
    assert saved["fast_path"]
    with open_map(browser, path) as (page, log_):
        load_ms = goto_map(page, path, timeout_ms=120_000)
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


# -- pooling -------------------------------------------------------------------------------------


def test_pooling_map_renders_roles_flows_and_figures(browser, tmp_path: Path) -> None:
    scenario = synthetic_scenario(200, evil=True)
    path = tmp_path / "pooling.html"
    maps.save_map(maps.pooling_map(scenario, title="Synthetic footprint"), path)
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
        screenshot(page, "pooling")
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert_clean(log_)
