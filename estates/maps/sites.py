"""The site map: every located site by sector and flag status, with its figures and reasons."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import geopandas as gpd
import pandas as pd

from estates.maps import _areas, _fast, _page, _style
from estates.maps._model import SitePoints, Text, require_frame, site_points

log = logging.getLogger(__name__)

#: zoom from which every site has its own marker (no cluster bubbles)
UNCLUSTERED_ZOOM = 16

SITE_COLUMNS = ("site_id", "name", "sector")


def _sector_groups(frame: pd.DataFrame) -> Text:
    return Text.of(frame["sector"].to_numpy(dtype=object), _style.sector_of)


def _legend_sections(points: SitePoints) -> list[str]:
    grey = "#777777"
    sectors = [
        _style.legend_row(
            _style.circle(colour).svg, f"{label} ({points.group_counts.get(code, 0):,})"
        )
        for code, (label, colour) in _style.SECTORS.items()
        if points.group_counts.get(code)
    ]
    status = [
        _style.legend_row(
            _style.diamond(grey, "2").svg, "Flagged: the number is how many flags (click for why)"
        ),
        _style.legend_row(_style.circle(grey).svg, "Assessed, no flag raised"),
        _style.legend_row(_style.ring(grey).svg, "Not assessed (no figures to test)"),
    ]
    groups = [
        _style.legend_row(
            _style.CLUSTER_SAMPLE, "12 sites close together, 3 of them flagged: zoom in or click"
        )
    ]
    return [
        _style.section("Sites by sector (colour)", sectors or ["<div>No located sites</div>"]),
        _style.section("Flag status (shape)", status),
        _style.section("Dense areas", groups),
    ]


def _attribution(sites: pd.DataFrame, boundaries_drawn: bool, extra: Sequence[str]) -> list[str]:
    lines = [_style.DATA_ATTRIBUTION["ogl"]]
    nhs = "sector" in sites and bool(sites["sector"].eq("nhs").any())
    if not nhs and "source_key" in sites:
        nhs = bool(sites["source_key"].astype(str).str.startswith("eric:").any())
    if nhs:
        lines.append(_style.DATA_ATTRIBUTION["nhs"])
    if boundaries_drawn:
        lines.append(_style.DATA_ATTRIBUTION["os"])
    return lines + [line for line in extra if line]


def sites_map(
    sites: gpd.GeoDataFrame,
    *,
    boundaries: gpd.GeoDataFrame | None = None,
    clusters: gpd.GeoDataFrame | None = None,
    title: str | None = None,
    choropleth: str = "spare_m2",
    fast_threshold: int | None = None,
    grid_threshold: int | None = None,
    tiles: str | None = _page.DEFAULT_TILES,
    attribution: Sequence[str] = (),
) -> _page.EstatesMap:
    """Draw every located site as a marker coloured by sector and shaped by flag status.

    Parameters
    ----------
    sites
        The canonical site frame (EPSG:27700), optionally with the analysis columns
        (``spare_m2``, ``flag_<name>``, ``reason_<name>``, ``cluster_id``, ...). Missing
        analysis columns show as "not assessed". Unlocated and non-geographic sites are
        counted in the legend, never drawn.
    boundaries
        Footprint polygons (``code``, ``name``, ``kind``) drawn as a choropleth of spare
        floor area summed over their sites (or, with ``choropleth="spare_share"``, of the
        spare share of floor area).
    clusters
        Co-location clusters (hull polygons with their combined figures). More than
        1,000 hulls are drawn only where the map is looking, from zoom 11 (a town).
    fast_threshold
        Above this many drawn sites the map carries one data payload instead of one
        Folium marker per site (default 1,000, or ``ESTATES_MAP_FAST_THRESHOLD``).
    grid_threshold
        Above this many drawn sites (on the payload path) the browser clusters the
        sites in view itself instead of handing a marker per site to
        Leaflet.markercluster, which cannot keep up with national estates (default
        20,000, or ``ESTATES_MAP_GRID_THRESHOLD``).
    tiles
        Basemap (any Folium tiles name or URL), or None for no basemap.
    attribution
        Extra data attribution lines, after the OGL / NHS Digital / ONS-OS lines.

    Returns
    -------
    EstatesMap
        A ``folium.Map``; ``.info`` says how many sites were drawn and which path.

    Examples
    --------
    >>> from estates.demo import demo_sites
    >>> m = sites_map(demo_sites().assign(site_id=range(240)), title="Demoshire")
    >>> m.info.sites_drawn, m.info.fast_path
    (240, False)
    """
    require_frame(sites, "sites", SITE_COLUMNS)
    points = site_points(sites, group_of=_sector_groups, symbol_of=_style.site_symbol)
    threshold = _fast.resolve_fast_threshold(fast_threshold)
    fast = len(points) > threshold
    grid_at = _fast.resolve_grid_threshold(grid_threshold)
    grid = fast and len(points) > grid_at
    groups = [
        _page.GroupSpec(code, f"{label} sites ({points.group_counts[code]:,})")
        for code, (label, _colour) in _style.SECTORS.items()
        if points.group_counts.get(code)
    ]
    bounds = _page.bounds_of(points.lat, points.lon)
    extra_layers: list[tuple[object, str, list[list[float]] | None]] = []
    if boundaries is not None and len(boundaries):
        extra_layers.append(_areas.boundary_layer(boundaries, sites, choropleth))
    if clusters is not None and len(clusters):
        extra_layers.append(_areas.cluster_layer(clusters))
    if not bounds:
        bounds = _page.merge_bounds(*(b for _layer, _legend, b in extra_layers))
    m = _page.new_map(tiles, "sites", bounds)
    for layer, _legend, _bounds in extra_layers:
        m.add_child(layer)  # type: ignore[arg-type]
    cluster, subgroups, data_html = _page.add_site_layers(
        m, points, groups, fast=fast, grid=grid, disable_clustering_at_zoom=UNCLUSTERED_ZOOM
    )
    legend = _page.legend_html(
        _legend_sections(points) + [legend for _layer, legend, _b in extra_layers],
        _page.drawn_note(points),
        len(points),
    )
    heading = title or "Public estate"
    subtitle = _page.drawn_note(points).rstrip(".")
    flagged = int(points.flagged.sum())
    if any(f"flag_{name}" in sites.columns for name in _style.FLAGS) or "flags" in sites.columns:
        subtitle += f"; {flagged:,} flagged"
    body = _page.title_html(heading, subtitle) + legend + data_html
    return _page.finish(
        m,
        kind="sites",
        points=points,
        cluster=cluster,
        subgroups=subgroups,
        groups=groups,
        fast=fast,
        threshold=threshold,
        grid=grid,
        grid_threshold=grid_at,
        body_html=body,
        flag_filter="Flagged sites only",
        attribution=_attribution(
            sites, boundaries is not None and len(boundaries) > 0, attribution
        ),
        controls=[(_page.LEGEND_ID, "bottomright")],
        bounds=bounds,
        unclustered_zoom=UNCLUSTERED_ZOOM,
    )
