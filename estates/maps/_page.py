"""Assembling a page: the base map, the site layers (any path), controls, runtime.

Up to the grid threshold, site layers are one marker cluster with one Folium
``FeatureGroupSubGroup`` per layer (sector, or pooling role), so clusters mix layers
where sites are dense and each layer still has its own tick box. The sub-groups start
off the map; the runtime adds the visible ones in one batch each, which keeps even the
Folium-object path fast. Above the grid threshold there is no marker cluster: each
layer is an empty ``FeatureGroup`` that only carries its tick box, and the runtime
clusters the payload's points itself (:mod:`._runtime`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import folium
import numpy as np
from folium import plugins
from folium.map import Layer

from estates.maps import _areas, _fast, _style
from estates.maps._escape import html_text
from estates.maps._model import SitePoints, popup_html
from estates.maps._render import RawDivIcon, RawMarker, RawPopup, RawTooltip
from estates.maps._runtime import Runtime

log = logging.getLogger(__name__)

DEFAULT_TILES = "OpenStreetMap"

#: Folium's default assets that these maps use. The others (Bootstrap JS, Font Awesome,
#: awesome-markers, Bootstrap 3 glyphicons) serve only ``folium.Icon``, which these maps
#: never draw; leaving them out saves requests when the map opens.
_KEEP_JS = ("leaflet", "jquery")
_KEEP_CSS = ("leaflet_css", "bootstrap_css")

#: popups pan clear of the title box at the top of the map
POPUP_PAN_PADDING = [40, 90]
#: grid clustering (pixels): cells are merged into a bubble within the radius, so
#: bubbles stand about as far apart as markercluster's (radius 50 px) do
GRID_CELL_PX = 20
GRID_RADIUS_PX = 60
LEGEND_ID = "estates-legend"
TITLE_ID = "estates-title"
PANEL_ID = "estates-panel"


@dataclass
class MapInfo:
    """What a map drew, for reports and tests (``EstatesMap.info``)."""

    kind: str
    sites_drawn: int
    sites_unlocated: int
    sites_non_geographic: int
    fast_path: bool
    fast_threshold: int
    layers: list[str] = field(default_factory=list)
    #: clustered in the browser per view (no marker per site), above ``grid_threshold``
    grid_path: bool = False
    grid_threshold: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class EstatesMap(folium.Map):
    """A ``folium.Map`` that also says what it drew (:attr:`info`)."""

    info: MapInfo


@dataclass
class GroupSpec:
    """One site layer: key (sector or role), tick-box label, shown when the map opens."""

    key: str
    label: str
    show: bool = True


def new_map(tiles: str | None, kind: str, bounds: list[list[float]] | None) -> EstatesMap:
    """A map with the scale bar and only the Folium assets we use, centred on ``bounds``.

    Starting at the centre (then fitting the bounds) avoids fetching world tiles first.
    """
    if bounds:
        centre = [(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2]
        zoom = 12
    else:
        centre, zoom = [52.8, -1.6], 6  # England, when there is nothing to fit
    m = EstatesMap(location=centre, tiles=None, control_scale=True, zoom_start=zoom)
    if tiles:
        folium.TileLayer(tiles, name="Background map", control=False).add_to(m)
    m.default_js = [(n, u) for n, u in folium.Map.default_js if n in _KEEP_JS]
    m.default_css = [(n, u) for n, u in folium.Map.default_css if n in _KEEP_CSS]
    m.info = MapInfo(kind, 0, 0, 0, False, 0)
    return m


def add_site_layers(
    m: folium.Map,
    points: SitePoints,
    groups: Sequence[GroupSpec],
    *,
    fast: bool,
    grid: bool = False,
    disable_clustering_at_zoom: int,
) -> tuple[plugins.MarkerCluster | None, list[Layer], str]:
    """The cluster, one layer per group, and the markers (Folium objects or payload).

    Returns the cluster (None on the grid path), the layers in ``groups`` order and the
    extra body HTML (the payload's elements, else empty).
    """
    keys = [g.key for g in groups]
    if grid:
        layers: list[Layer] = []
        for group in groups:
            # layer names reach the layer control's innerHTML (and a pooling role may be data)
            layer = folium.FeatureGroup(name=html_text(group.label), show=False)
            m.add_child(layer)
            layers.append(layer)
        return None, layers, _fast.payload_html(points, keys)
    cluster = plugins.MarkerCluster(
        control=False,
        options={
            "showCoverageOnHover": False,
            "disableClusteringAtZoom": disable_clustering_at_zoom,
            "maxClusterRadius": 50,
            "chunkedLoading": True,
        },
    )
    m.add_child(cluster)
    subgroups: list[Layer] = []
    for group in groups:
        # layer names reach the layer control's innerHTML (and a pooling role may be data)
        subgroup = plugins.FeatureGroupSubGroup(cluster, name=html_text(group.label), show=False)
        m.add_child(subgroup)
        subgroups.append(subgroup)
    if fast:
        return cluster, subgroups, _fast.payload_html(points, keys)
    index = {key: i for i, key in enumerate(keys)}
    lat, lon, ids = points.lat.tolist(), points.lon.tolist(), points.site_id.tolist()
    flagged, symbol_of = points.flagged.tolist(), points.symbol.tolist()
    for i in range(len(points)):
        symbol = points.symbols[symbol_of[i]]
        icon = RawDivIcon(
            html=symbol.svg,
            icon_size=(symbol.size, symbol.size),
            icon_anchor=(symbol.anchor, symbol.anchor),
            popup_anchor=(0, -symbol.anchor),
            class_name="estates-marker",
        )
        marker = RawMarker(
            location=[lat[i], lon[i]],
            icon=icon,
            popup=RawPopup(
                popup_html(points, i),
                lazy=True,
                max_width=400,
                min_width=240,
                auto_pan_padding_top_left=POPUP_PAN_PADDING,
            ),
            tooltip=RawTooltip(html_text(points.title[i])),
            site_id=ids[i],
            search_name=points.search[i],
            flagged=flagged[i],
        )
        subgroups[index[points.group[i]]].add_child(marker)
    return cluster, subgroups, ""


def title_html(title: str, subtitle: str) -> str:
    return (
        f'<div id="{TITLE_ID}" class="estates-title"><b>{html_text(title)}</b>'
        f"<br><span>{html_text(subtitle)}</span></div>"
    )


def legend_html(sections: Sequence[str], note: str, site_count: int) -> str:
    """The legend panel (sections are trusted markup built by :mod:`._style`)."""
    return (
        f'<div id="{LEGEND_ID}" class="estates-legend leaflet-control" style="display:none" '
        f'data-site-count="{site_count}"><details open><summary>Legend</summary>'
        f"{''.join(sections)}"
        f'<div class="estates-legend-note">{html_text(note)}</div></details></div>'
    )


def drawn_note(points: SitePoints) -> str:
    parts = [f"{len(points):,} sites drawn"]
    if points.unlocated:
        parts.append(f"{points.unlocated:,} not located (no coordinates or postcode match)")
    if points.non_geographic:
        parts.append(f"{points.non_geographic:,} with no single location (not drawn)")
    return "; ".join(parts) + "."


def finish(
    m: EstatesMap,
    *,
    kind: str,
    points: SitePoints,
    cluster: plugins.MarkerCluster | None,
    subgroups: list[Layer],
    groups: Sequence[GroupSpec],
    fast: bool,
    threshold: int,
    grid: bool = False,
    grid_threshold: int = 0,
    body_html: str,
    flag_filter: str | None,
    attribution: Sequence[str],
    controls: Sequence[tuple[str, str]],
    bounds: list[list[float]] | None,
    unclustered_zoom: int,
) -> EstatesMap:
    """Layer control, runtime (last, so it runs after everything else) and the view.

    Area layers of more than :data:`._areas.CULL_MIN_FEATURES` features travel as data
    the runtime adds once the sites are drawn, and only where the map is looking.
    """
    control = folium.LayerControl(collapsed=False, position="topright")
    m.add_child(control)
    areas: list[_areas.GeoJsonLayer] = []
    area_config = []
    for child in list(m._children.values()):
        if isinstance(child, _areas.GeoJsonLayer) and (
            child.feature_count() > _areas.CULL_MIN_FEATURES
        ):
            element_id = f"estates-areas-{len(areas)}"
            element, shown = child.defer(element_id)
            body_html += element
            areas.append(child)
            area_config.append({"id": element_id, "show": shown, "minZoom": child.detail_zoom})
    config = {
        "kind": kind,
        "siteCount": len(points),
        "groups": [{"key": g.key, "label": g.label, "show": g.show} for g in groups],
        "points": _fast.POINTS_ELEMENT_ID if fast else None,
        "data": _fast.DATA_ELEMENT_ID if fast else None,
        "clustering": "grid" if grid else "markercluster",
        "gridCellPx": GRID_CELL_PX,
        "gridRadiusPx": GRID_RADIUS_PX,
        "flagFilter": flag_filter if flag_filter and bool(points.flagged.any()) else None,
        "search": True,
        "attribution": [html_text(line) for line in attribution],
        "controls": [{"id": element_id, "position": position} for element_id, position in controls],
        "unclusteredZoom": unclustered_zoom,
        "titleId": TITLE_ID,
        "bounds": bounds,
        "popupPanPadding": POPUP_PAN_PADDING,
        "areas": area_config,
    }
    m.add_child(
        Runtime(
            map_element=m,
            cluster=cluster,
            control=control,
            layers=list(subgroups),
            areas=list(areas),
            config=config,
            css=_style.CSS,
            body_html=body_html,
        )
    )
    layers = [
        child.layer_name
        for child in m._children.values()
        if isinstance(child, folium.map.Layer) and child.control and child.overlay
    ]
    m.info = MapInfo(
        kind=kind,
        sites_drawn=len(points),
        sites_unlocated=points.unlocated,
        sites_non_geographic=points.non_geographic,
        fast_path=fast,
        fast_threshold=threshold,
        layers=layers + ([str(config["flagFilter"])] if config["flagFilter"] else []),
        grid_path=grid,
        grid_threshold=grid_threshold,
    )
    log.info(
        "%s map: %d sites drawn (%s path), %d not located, %d non-geographic",
        kind,
        len(points),
        "grid" if grid else "fast" if fast else "Folium",
        points.unlocated,
        points.non_geographic,
    )
    return m


def bounds_of(lat: np.ndarray, lon: np.ndarray) -> list[list[float]] | None:
    if not len(lat):
        return None
    return [
        [float(np.min(lat)), float(np.min(lon))],
        [float(np.max(lat)), float(np.max(lon))],
    ]


def merge_bounds(*boxes: list[list[float]] | None) -> list[list[float]] | None:
    real = [b for b in boxes if b]
    if not real:
        return None
    return [
        [min(b[0][0] for b in real), min(b[0][1] for b in real)],
        [max(b[1][0] for b in real), max(b[1][1] for b in real)],
    ]
