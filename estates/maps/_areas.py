"""Polygon and line layers: boundary choropleth, co-location hulls, floor-area flows, access.

Each layer is one Folium ``GeoJson`` whose feature properties are *display strings
already escaped* (Folium's GeoJSON tooltips build their table with ``innerHTML``), plus
style values we computed. Geometries are simplified in metres (EPSG:27700) and only
then reprojected to EPSG:4326, with coordinates rounded to about 10 cm, to keep the
page small.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.colormap import LinearColormap

from estates.maps import _style
from estates.maps._escape import html_text, plain, script_json
from estates.maps._model import located_mask, require_frame, wgs84_transformer
from estates.maps._render import RawMacroElement

log = logging.getLogger(__name__)

Bounds = list[list[float]]

#: a layer with more features than this is drawn only where the map is looking: its
#: features reach the page as data that the runtime adds once the sites are drawn.
#: Measured on the national map, Leaflet took 1.5 s to build and draw all 4,406
#: co-location hulls when the page opened and 100-400 ms to redraw them on each zoom
CULL_MIN_FEATURES = 1_000
#: from this zoom a culled layer of co-location hulls is drawn: below it a hull (a few
#: hundred metres across) is a few pixels, and a thousand of them in view cost 250 ms
#: a redraw (national map, London at zoom 10)
HULL_DETAIL_ZOOM = 11


class _WithoutFeatures:
    """A layer as its template sees it when its features travel as data."""

    def __init__(self, layer: GeoJsonLayer) -> None:
        self._layer = layer
        self.data = {"type": "FeatureCollection", "features": []}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)


class GeoJsonLayer(folium.GeoJson, RawMacroElement):
    """A Folium ``GeoJson`` layer whose script (the whole GeoJSON) is placed as it is.

    Rendered through Branca's default path, the national map's 4,406 cluster hulls
    (about 4 MB of GeoJSON) would be compiled as a Jinja2 template (see :mod:`._render`).
    A large layer can instead carry its features as data (:meth:`defer`).
    """

    #: when culled, the least zoom at which the layer draws anything
    detail_zoom = 0
    deferred = False

    def feature_count(self) -> int:
        return len(self.data.get("features", ()))

    def defer(self, element_id: str) -> tuple[str, bool]:
        """Move the features out of the script into an inert JSON element.

        Returns the element and whether the layer was to be shown: it now starts off
        the map, and the runtime adds it once its features are loaded.
        """
        shown = bool(self.show)
        self.show = False
        self.deferred = True
        element = (
            f'<script type="application/json" id="{element_id}">{script_json(self.data)}</script>'
        )
        return element, shown

    def template_subject(self) -> Any:
        # the style maps Folium works out at render time still see every feature
        return _WithoutFeatures(self) if self.deferred else self


def _simplified(geoms: np.ndarray, tolerance_m: float) -> np.ndarray:
    """Simplified shapes: what topology-preserving simplification gives, faster.

    On a convex polygon (every co-location hull) plain Douglas-Peucker keeps the same
    vertices, about ten times faster; every other shape, and any polygon that plain
    Douglas-Peucker would collapse, gets the topology-preserving kind.
    """
    polygon = shapely.get_type_id(geoms) == shapely.GeometryType.POLYGON
    convex = polygon & np.isclose(
        shapely.area(geoms), shapely.area(shapely.convex_hull(geoms)), rtol=1e-9, atol=0.0
    )
    out = np.empty(len(geoms), dtype=object)
    out[convex] = shapely.simplify(geoms[convex], tolerance_m, preserve_topology=False)
    careful = ~convex | (shapely.is_empty(out) & ~shapely.is_empty(geoms))
    out[careful] = shapely.simplify(geoms[careful], tolerance_m, preserve_topology=True)
    return out


_GEOJSON_TYPES = {
    shapely.GeometryType.POINT: "Point",
    shapely.GeometryType.LINESTRING: "LineString",
    shapely.GeometryType.POLYGON: "Polygon",
    shapely.GeometryType.MULTIPOINT: "MultiPoint",
    shapely.GeometryType.MULTILINESTRING: "MultiLineString",
    shapely.GeometryType.MULTIPOLYGON: "MultiPolygon",
}


def _geojson_geometries(geoms: np.ndarray) -> list[dict[str, Any]]:
    """GeoJSON geometries cut from one coordinate list, not built shape by shape.

    Polygons mixed with multipolygons all become multipolygons (same drawing); other
    mixtures of types take the slow path.
    """
    try:
        kind, coords, offsets = shapely.to_ragged_array(geoms)
    except ValueError:  # geometry types that share no ragged layout
        return [shapely.geometry.mapping(g) for g in geoms]
    nested: list[Any] = coords.tolist()
    for level in offsets:  # innermost first: rings, then polygons, then multipolygons
        cuts = level.tolist()
        nested = [nested[a:b] for a, b in itertools.pairwise(cuts)]
    return [{"type": _GEOJSON_TYPES[kind], "coordinates": c} for c in nested]


def _features(
    frame: gpd.GeoDataFrame, properties: Sequence[dict[str, Any]], *, simplify_m: float = 0.0
) -> tuple[dict[str, Any], Bounds | None]:
    """A GeoJSON FeatureCollection (EPSG:4326) of ``frame`` with the given properties.

    Coordinates are reprojected and rounded to 6 decimals in one pass.
    """
    geoms = np.asarray(frame.geometry.values, dtype=object)
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    geoms = geoms[keep]
    if simplify_m > 0:
        geoms = _simplified(geoms, simplify_m)
    transformer = wgs84_transformer(frame.crs)

    def to_wgs84(xy: np.ndarray) -> np.ndarray:
        lon, lat = transformer.transform(xy[:, 0], xy[:, 1])
        return np.round(np.column_stack([lon, lat]), 6)

    rounded = shapely.transform(geoms, to_wgs84)
    shapes = _geojson_geometries(rounded) if len(rounded) else []
    features = [
        {
            "type": "Feature",
            "id": str(i),
            "properties": properties[i],
            "geometry": shape,
        }
        for i, shape in zip(np.flatnonzero(keep).tolist(), shapes, strict=True)
    ]
    bounds = None
    if len(rounded):
        minx, miny, maxx, maxy = shapely.total_bounds(rounded)
        bounds = [[float(miny), float(minx)], [float(maxy), float(maxx)]]
    return {"type": "FeatureCollection", "features": features}, bounds


def _tooltip(fields: dict[str, str]) -> folium.GeoJsonTooltip:
    return folium.GeoJsonTooltip(
        fields=list(fields), aliases=[html_text(a) for a in fields.values()], sticky=True
    )


def _colour(scale: LinearColormap | None, value: float | None) -> tuple[str, float]:
    if scale is None or value is None or not np.isfinite(value):
        return _style.NO_DATA_COLOUR, 0.3
    return scale.rgb_hex_str(min(max(value, scale.vmin), scale.vmax)), 0.5


def _scale(values: Sequence[float | None], ramp: Sequence[str]) -> LinearColormap | None:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    if not finite:
        return None
    high = max(finite)
    return LinearColormap(list(ramp), vmin=0.0, vmax=high if high > 0 else 1.0)


def _style_from_properties(
    line: str, weight: float, dash: str | None = None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def style(feature: dict[str, Any]) -> dict[str, Any]:
        p = feature["properties"]
        out = {
            "fillColor": p["_fill"],
            "fillOpacity": p["_opacity"],
            "color": line,
            "weight": weight,
        }
        if dash:
            out["dashArray"] = dash
        return out

    return style


# -- boundaries ------------------------------------------------------------------------------


def boundary_figures(boundaries: gpd.GeoDataFrame, sites: gpd.GeoDataFrame) -> pd.DataFrame:
    """Per boundary row: sites, summed spare m2 and spare share of GIA.

    A site belongs to a boundary when its ``<kind>_code`` column equals the boundary's
    code (how the loaders assign footprints); without that column, when its point lies
    within the polygon (EPSG:27700).
    """
    n = len(boundaries)
    site_rows: list[np.ndarray] = [np.empty(0, dtype=int)] * n
    kinds = (
        boundaries["kind"].astype(object).where(boundaries["kind"].notna(), None).tolist()
        if "kind" in boundaries.columns
        else [None] * n
    )
    codes = boundaries["code"].astype(str).tolist()
    positions = np.arange(len(sites))
    spatial_needed = [i for i in range(n) if kinds[i] is None or f"{kinds[i]}_code" not in sites]
    for i in range(n):
        if i in spatial_needed:
            continue
        column = sites[f"{kinds[i]}_code"].astype(object)
        site_rows[i] = positions[(column == codes[i]).to_numpy()]
    if spatial_needed:
        mask = located_mask(sites)
        points = np.asarray(sites.geometry.values, dtype=object)[mask]
        located_positions = positions[mask]
        polygons = np.asarray(boundaries.geometry.values, dtype=object)[spatial_needed]
        tree = shapely.STRtree(points)
        poly_idx, point_idx = tree.query(polygons, predicate="contains")
        for j, original in enumerate(spatial_needed):
            site_rows[original] = located_positions[point_idx[poly_idx == j]]
    spare = (
        pd.to_numeric(sites["spare_m2"], errors="coerce").to_numpy(dtype=float)
        if "spare_m2" in sites
        else None
    )
    gia = (
        pd.to_numeric(sites["gia_m2"], errors="coerce").to_numpy(dtype=float)
        if "gia_m2" in sites
        else np.full(len(sites), np.nan)
    )
    records = []
    for i in range(n):
        rows = site_rows[i]
        total_spare = share = None
        if spare is not None and len(rows) and np.isfinite(spare[rows]).any():
            total_spare = float(np.nansum(spare[rows]))
            both = rows[np.isfinite(spare[rows]) & np.isfinite(gia[rows]) & (gia[rows] > 0)]
            if len(both):
                share = float(spare[both].sum() / gia[both].sum() * 100)
        records.append({"sites": len(rows), "spare_m2": total_spare, "spare_share_pct": share})
    return pd.DataFrame(records, index=boundaries.index)


def boundary_layer(
    boundaries: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, measure: str
) -> tuple[GeoJsonLayer, str, Bounds | None]:
    """The footprint boundaries as a choropleth of spare m2 or of the spare share of GIA."""
    require_frame(boundaries, "boundaries", ("code", "geometry"))
    if measure not in ("spare_m2", "spare_share"):
        raise ValueError(f"choropleth={measure!r}: use 'spare_m2' or 'spare_share'")
    figures = boundary_figures(boundaries, sites)
    key = "spare_m2" if measure == "spare_m2" else "spare_share_pct"
    values = [v if v is not None and not pd.isna(v) else None for v in figures[key].tolist()]
    scale = _scale(values, _style.SPARE_RAMP)
    assessed = "spare_m2" in sites.columns
    names = boundaries["name"].tolist() if "name" in boundaries else [None] * len(boundaries)
    properties = []
    for i, row in enumerate(figures.itertuples(index=False)):
        fill, opacity = _colour(scale, values[i])
        no_value = _style.NOT_ASSESSED if not assessed else "no sites with figures"
        properties.append(
            {
                "name": html_text(plain(names[i]) or plain(boundaries["code"].iloc[i])),
                "code": html_text(boundaries["code"].iloc[i]),
                "sites": html_text(f"{row.sites:,}"),
                "spare": html_text(
                    _style.fmt_m2(row.spare_m2) if row.spare_m2 is not None else no_value
                ),
                "share": html_text(
                    _style.fmt_pct(row.spare_share_pct)
                    if row.spare_share_pct is not None
                    else no_value
                ),
                "_fill": fill,
                "_opacity": opacity,
            }
        )
    data, bounds = _features(boundaries, properties, simplify_m=10.0)
    caption = "Spare floor area (m²)" if measure == "spare_m2" else "Spare share of floor area"
    layer = GeoJsonLayer(
        data,
        name=f"Boundaries: {caption.lower()}",
        style_function=_style_from_properties("#444444", 1.5),
        highlight_function=lambda _f: {"weight": 3, "color": "#000000"},
        tooltip=_tooltip(
            {
                "name": "Area",
                "code": "Code",
                "sites": "Sites (all, located or not)",
                "spare": "Spare floor area",
                "share": "Spare share of floor area",
            }
        ),
        smooth_factor=0.5,
    )
    if scale is None:
        legend = _style.section(
            "Boundaries",
            [
                _style.legend_row(
                    _style.swatch(_style.NO_DATA_COLOUR, border="#444"),
                    f"{caption}: {_style.NOT_ASSESSED}",
                )
            ],
        )
    else:
        high = _style.fmt_m2(scale.vmax) if measure == "spare_m2" else _style.fmt_pct(scale.vmax)
        low = "0 m²" if measure == "spare_m2" else "0%"
        legend = _style.section(
            "Boundaries",
            [
                _style.ramp(
                    _style.SPARE_RAMP, low, high, caption + ", summed over the area's sites"
                ),
                _style.legend_row(
                    _style.swatch(_style.NO_DATA_COLOUR, border="#444"), "No figures for the area"
                ),
            ],
        )
    return layer, legend, bounds


# -- co-location clusters --------------------------------------------------------------------


def cluster_layer(clusters: gpd.GeoDataFrame) -> tuple[GeoJsonLayer, str, Bounds | None]:
    """Co-location clusters as padded hull polygons with their combined figures."""
    require_frame(clusters, "clusters", ("cluster_id", "geometry"))

    def col(name: str) -> list[Any]:
        return clusters[name].tolist() if name in clusters else [None] * len(clusters)

    properties = []
    for cid, n, n_org, orgs, sectors, gia, spare, vacant in zip(
        col("cluster_id"),
        col("n_sites"),
        col("n_organisations"),
        col("organisations"),
        col("sectors"),
        col("combined_gia_m2"),
        col("combined_spare_m2"),
        col("vacant_council_assets"),
        strict=True,
    ):
        org_text = plain(orgs).replace(";", "; ")
        n_org_text = plain(_style.number(n_org)).removesuffix(".0")
        properties.append(
            {
                "cluster": html_text(f"Cluster {plain(_style.number(cid)).removesuffix('.0')}"),
                "sites": html_text(plain(_style.number(n)).removesuffix(".0") or _style.NOT_KNOWN),
                "organisations": html_text(
                    f"{n_org_text}: {org_text}"
                    if n_org_text and org_text
                    else n_org_text or org_text
                ),
                "sectors": html_text(
                    ", ".join(
                        _style.SECTORS.get(s.strip(), (s.strip(), ""))[0]
                        for s in plain(sectors).split(";")
                        if s.strip()
                    )
                ),
                "gia": html_text(_style.fmt_m2(gia)),
                "spare": html_text(
                    _style.fmt_m2(spare) if "combined_spare_m2" in clusters else _style.NOT_ASSESSED
                ),
                "vacant": html_text(plain(_style.number(vacant)).removesuffix(".0") or "0"),
                "_fill": _style.CLUSTER_COLOUR,
                "_opacity": 0.08,
            }
        )
    padded = clusters.copy()
    padded["geometry"] = clusters.geometry.buffer(40)  # keeps edge markers inside the hull
    padded = gpd.GeoDataFrame(padded, geometry="geometry", crs=clusters.crs)
    data, bounds = _features(padded, properties, simplify_m=2.0)
    layer = GeoJsonLayer(
        data,
        name="Co-location clusters",
        style_function=_style_from_properties(_style.CLUSTER_COLOUR, 2, dash="6 4"),
        highlight_function=lambda _f: {"fillOpacity": 0.2},
        tooltip=_tooltip(
            {
                "cluster": "Co-location",
                "sites": "Sites",
                "organisations": "Organisations",
                "sectors": "Sectors",
                "gia": "Combined floor area",
                "spare": "Combined spare floor area",
                "vacant": "Vacant council assets",
            }
        ),
    )
    label = "Sites of different organisations within walking distance (hover for figures)"
    if layer.feature_count() > CULL_MIN_FEATURES:
        layer.detail_zoom = HULL_DETAIL_ZOOM
        label += "; drawn once the map is zoomed in to a town"
    legend = _style.section(
        "Co-location",
        [
            _style.legend_row(
                _style.swatch("rgba(75,0,130,.12)", border=_style.CLUSTER_COLOUR, dashed=True),
                label,
            )
        ],
    )
    return layer, legend, bounds


# -- pooling: flows and access ------------------------------------------------------------------


def flow_layer(
    flows: gpd.GeoDataFrame, sites: gpd.GeoDataFrame
) -> tuple[GeoJsonLayer, str, Bounds | None]:
    """Lines from each released site to where its floor area goes, width by m2."""
    require_frame(flows, "scenario flows", ("from_site_id", "to_site_id", "floor_area_m2"))
    names = dict(zip(sites["site_id"].tolist(), sites["name"].tolist(), strict=True))
    frame = flows.copy()
    geoms = np.asarray(frame.geometry.values, dtype=object)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if missing.any():  # draw straight lines between the two sites
        points = dict(zip(sites["site_id"].tolist(), sites.geometry.values, strict=True))
        for j in np.flatnonzero(missing).tolist():
            a = points.get(frame["from_site_id"].iloc[j])
            b = points.get(frame["to_site_id"].iloc[j])
            if a is not None and b is not None and not a.is_empty and not b.is_empty:
                geoms[j] = shapely.LineString([a, b])
        frame = gpd.GeoDataFrame(
            frame.drop(columns=frame.geometry.name), geometry=geoms, crs=flows.crs
        )
    area = pd.to_numeric(frame["floor_area_m2"], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    top = float(area.max()) if len(area) and area.max() > 0 else 1.0
    distance = frame["distance_m"].tolist() if "distance_m" in frame else [None] * len(frame)
    properties = []
    for i in range(len(frame)):
        origin = plain(names.get(frame["from_site_id"].iloc[i])) or "site " + plain(
            frame["from_site_id"].iloc[i]
        )
        target = plain(names.get(frame["to_site_id"].iloc[i])) or "site " + plain(
            frame["to_site_id"].iloc[i]
        )
        properties.append(
            {
                "origin": html_text(origin),
                "target": html_text(target),
                "area": html_text(_style.fmt_m2(area[i])),
                "distance": html_text(_style.fmt_m(distance[i])),
                "_w": round(2 + 8 * float(np.sqrt(area[i] / top)), 1),
            }
        )
    data, bounds = _features(frame, properties)
    layer = GeoJsonLayer(
        data,
        name="Floor area moves",
        style_function=lambda f: {
            "color": _style.FLOW_COLOUR,
            "weight": f["properties"]["_w"],
            "opacity": 0.75,
            "lineCap": "round",
        },
        highlight_function=lambda _f: {"opacity": 1.0, "color": "#000000"},
        tooltip=_tooltip(
            {
                "origin": "From (released)",
                "target": "To",
                "area": "Floor area",
                "distance": "Distance",
            }
        ),
    )
    legend = _style.section(
        "Floor area moves",
        [
            _style.legend_row(_style.line_swatch(_style.FLOW_COLOUR, 2), "from a released site"),
            _style.legend_row(
                _style.line_swatch(_style.FLOW_COLOUR, 10),
                f"width grows with floor area (widest {_style.fmt_m2(top)})",
            ),
        ],
    )
    return layer, legend, bounds


def access_layers(access: gpd.GeoDataFrame) -> tuple[list[GeoJsonLayer], str, Bounds | None]:
    """Access change by small area: one choropleth of the distance increase per sector."""
    require_frame(access, "scenario access", ("code", "geometry"))
    increase_all = (
        pd.to_numeric(access["increase_m"], errors="coerce")
        if "increase_m" in access
        else pd.Series(np.nan, index=access.index)
    )
    scale = _scale(
        [v if np.isfinite(v) else None for v in increase_all.tolist()], _style.ACCESS_RAMP
    )
    sectors = (
        access["sector"].astype(object).where(access["sector"].notna(), "all").tolist()
        if "sector" in access
        else ["all"] * len(access)
    )
    layers = []
    bounds: Bounds | None = None
    for k, sector in enumerate(dict.fromkeys(sectors)):
        part = access.loc[[s == sector for s in sectors]]
        increase = increase_all.loc[part.index].tolist()
        before = part["before_m"].tolist() if "before_m" in part else [None] * len(part)
        after = part["after_m"].tolist() if "after_m" in part else [None] * len(part)
        names = part["name"].tolist() if "name" in part else [None] * len(part)
        properties = []
        for i in range(len(part)):
            value = increase[i] if increase[i] is not None and np.isfinite(increase[i]) else None
            fill, opacity = _colour(scale, value)
            properties.append(
                {
                    "name": html_text(plain(names[i]) or plain(part["code"].iloc[i])),
                    "code": html_text(part["code"].iloc[i]),
                    "before": html_text(_style.fmt_m(before[i])),
                    "after": html_text(_style.fmt_m(after[i])),
                    "increase": html_text(
                        _style.fmt_m(value) if value is not None else _style.NOT_KNOWN
                    ),
                    "_fill": fill,
                    "_opacity": opacity * 0.85,
                }
            )
        data, part_bounds = _features(part, properties, simplify_m=10.0)
        bounds = bounds or part_bounds
        label = _style.SECTORS.get(sector, (plain(sector), ""))[0]
        layers.append(
            GeoJsonLayer(
                data,
                name=f"Access change: nearest {label} site" if sector != "all" else "Access change",
                show=k == 0,
                style_function=_style_from_properties("#777777", 0.6),
                highlight_function=lambda _f: {"weight": 2.5, "color": "#000000"},
                tooltip=_tooltip(
                    {
                        "name": "Small area",
                        "code": "Code",
                        "before": "Distance before",
                        "after": "Distance after",
                        "increase": "Increase",
                    }
                ),
            )
        )
    finite = increase_all[np.isfinite(increase_all)]
    high = float(finite.max()) if len(finite) else None
    caption = "Extra distance from each small area to the nearest remaining site"
    if high is None:
        rows = [_style.legend_row(_style.swatch(_style.NO_DATA_COLOUR), caption + ": not known")]
    elif high <= 0:
        rows = [_style.legend_row(_style.swatch(_style.ACCESS_RAMP[0]), caption + ": none")]
    else:
        rows = [_style.ramp(_style.ACCESS_RAMP, "0 m", _style.fmt_m(high), caption)]
    return layers, _style.section("Access change", rows), bounds
