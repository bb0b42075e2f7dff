"""The pooling scenario map: released and receiving sites, floor-area moves, figures, access."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import geopandas as gpd
import pandas as pd

from estates.maps import _areas, _fast, _page, _style
from estates.maps._escape import html_text, plain
from estates.maps._model import Text, column_values, require_frame, site_points

log = logging.getLogger(__name__)

#: zoom from which every site has its own marker (no cluster bubbles)
UNCLUSTERED_ZOOM = 14


class Scenario(Protocol):
    """What :func:`pooling_map` reads from a pooling scenario (see ``estates.pipeline``)."""

    sites: gpd.GeoDataFrame
    flows: gpd.GeoDataFrame
    access: gpd.GeoDataFrame
    headline: Mapping[str, Any]


def _get(scenario: Any, name: str) -> Any:
    if isinstance(scenario, Mapping):
        return scenario.get(name)
    return getattr(scenario, name, None)


def _roles(frame: pd.DataFrame) -> Text:
    roles = column_values(frame, "role")
    if roles is None:
        return Text.constant("retained", len(frame))
    return Text.of(roles, lambda r: plain(r).strip() or "retained")


def _role_label(role: str) -> str:
    return _style.ROLES[role][0] if role in _style.ROLES else role.replace("_", " ").capitalize()


def _role_symbol(role: str, _status: str, _flag_count: int) -> _style.Symbol:
    return _style.role_symbol(role)


def _role_rows(frame: pd.DataFrame) -> list[tuple[str, Text]]:
    reasons = column_values(frame, "pool_reason")
    why = (
        Text.constant(_style.NOT_ASSESSED, len(frame))
        if reasons is None
        else Text.of(reasons, lambda r: plain(r).strip() or _style.NOT_KNOWN)
    )
    roles = _roles(frame)
    return [
        ("Why", why),
        ("Role in scenario", Text.merged(roles.codes, [_role_label(r) for r in roles.uniques])),
    ]


def _figure(value: Any, fmt: Any) -> str:
    return _style.NOT_ASSESSED if value is None else fmt(value)


def headline_rows(headline: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """The panel's (label, value) rows and its notes, every missing figure "not assessed"."""
    h = headline or {}
    rows: list[tuple[str, str]] = []
    released, considered = h.get("sites_released"), h.get("sites_considered")
    if released is not None:
        count = f"{int(released):,}"
        if considered is not None:
            count += f" of {int(considered):,} considered"
        rows.append(("Sites released", count))
    else:
        rows.append(("Sites released", _style.NOT_ASSESSED))
    rows.append(("Floor area released", _figure(h.get("floor_area_released_m2"), _style.fmt_m2)))
    rows.append(
        ("Running cost saved per year", _figure(h.get("running_cost_saved_gbp"), _style.fmt_gbp))
    )
    backlog = h.get("backlog_avoided_gbp")
    if isinstance(backlog, Mapping):
        total = sum(v for v in (_style.number(x) for x in backlog.values()) if v is not None)
        rows.append(("Backlog avoided", _style.fmt_gbp(total)))
        for risk, amount in backlog.items():
            rows.append((f"\u2003of which {plain(risk)} risk", _style.fmt_gbp(amount)))
    else:
        rows.append(("Backlog avoided", _figure(backlog, _style.fmt_gbp)))
    rows.append(("Land released", _figure(h.get("land_released_ha"), _style.fmt_ha)))
    rows.append(("Indicative receipts", _figure(h.get("indicative_receipts_gbp"), _style.fmt_gbp)))
    access = h.get("access")
    if isinstance(access, Mapping):
        rows.append(("Mean extra distance", _figure(access.get("mean_increase_m"), _style.fmt_m)))
        rows.append(("Worst extra distance", _figure(access.get("worst_increase_m"), _style.fmt_m)))
        beyond = access.get("areas_beyond_threshold")
        threshold = access.get("threshold_m")
        label = (
            f"Small areas over {_style.fmt_m(threshold)} further"
            if threshold is not None
            else "Small areas over the threshold"
        )
        rows.append((label, _figure(beyond, lambda v: f"{int(v):,}")))
    else:
        rows.append(("Access change", _style.NOT_ASSESSED))
    status = h.get("status")
    if status is not None:
        gap = _style.number(h.get("mip_gap"), 6)
        gap_text = f" (gap {_style.fmt_pct(gap * 100)})" if gap is not None else ""
        rows.append(("Solver", f"{plain(status)}{gap_text}"))
    notes = []
    assumptions = h.get("receipt_assumptions")
    if isinstance(assumptions, Mapping):
        notes.append(
            "Receipts assume: "
            + "; ".join(f"{plain(k)} {plain(v)}" for k, v in assumptions.items())
        )
    elif isinstance(assumptions, list | tuple):
        notes.append("Receipts assume: " + "; ".join(plain(a) for a in assumptions))
    elif assumptions:
        notes.append("Receipts assume: " + plain(assumptions))
    return rows, notes


def panel_html(headline: Mapping[str, Any]) -> str:
    rows, notes = headline_rows(headline)
    body = "".join(
        f"<tr><th>{html_text(label)}</th><td>{html_text(value)}</td></tr>" for label, value in rows
    )
    note_html = "".join(f'<div class="estates-panel-note">{html_text(n)}</div>' for n in notes)
    return (
        f'<div id="{_page.PANEL_ID}" class="estates-panel leaflet-control" style="display:none">'
        f"<details open><summary>Scenario figures</summary><table>{body}</table>{note_html}"
        "</details></div>"
    )


def pooling_map(
    scenario: Scenario | Mapping[str, Any],
    *,
    boundaries: gpd.GeoDataFrame | None = None,
    title: str | None = None,
    fast_threshold: int | None = None,
    grid_threshold: int | None = None,
    tiles: str | None = _page.DEFAULT_TILES,
    attribution: Sequence[str] = (),
) -> _page.EstatesMap:
    """Draw a one-body pooling scenario for a footprint.

    Released sites, receiving sites and the rest by role; a line from each released
    site to each site taking its floor area (width by m2); a panel with the headline
    figures; and the access change by small area. Parts the scenario lacks show as
    "not assessed" (or are left out, for layers).

    Parameters
    ----------
    scenario
        An object (or mapping) with ``sites`` (canonical frame plus ``role`` and
        ``pool_reason``), ``flows`` (LineStrings: ``from_site_id``, ``to_site_id``,
        ``floor_area_m2``, ``distance_m``), ``access`` (small-area polygons: ``code``,
        ``name``, ``sector``, ``before_m``, ``after_m``, ``increase_m``) and ``headline``.
    boundaries
        Footprint outlines drawn under everything else.
    fast_threshold, grid_threshold
        Which rendering path draws the sites, as for :func:`estates.maps.sites_map`.
    """
    sites = _get(scenario, "sites")
    if sites is None:
        raise ValueError("the pooling scenario has no .sites frame to draw")
    require_frame(sites, "scenario sites", ("site_id", "name"))
    points = site_points(sites, group_of=_roles, symbol_of=_role_symbol, extra_rows=_role_rows)
    # Cluster bubbles badge the sites they hide; here what matters is how many close.
    points.flagged = points.group.test(lambda role: role == "released")
    threshold = _fast.resolve_fast_threshold(fast_threshold)
    fast = len(points) > threshold
    grid_at = _fast.resolve_grid_threshold(grid_threshold)
    grid = fast and len(points) > grid_at
    order = [r for r in _style.ROLES if points.group_counts.get(r)] + [
        r for r in points.group_counts if r not in _style.ROLES
    ]
    groups = [
        _page.GroupSpec(role, f"{_role_label(role)} ({points.group_counts[role]:,})")
        for role in order
    ]
    bounds = _page.bounds_of(points.lat, points.lon)
    legend_parts = [
        _style.section(
            "Sites by role",
            [
                _style.legend_row(
                    _style.role_symbol(role).svg,
                    f"{_role_label(role)} ({points.group_counts[role]:,})",
                )
                for role in order
            ],
        ),
        _style.section(
            "Dense areas",
            [
                _style.legend_row(
                    _style.CLUSTER_SAMPLE, "12 sites close together, 3 of them released: zoom in"
                )
            ],
        ),
    ]
    layers: list[Any] = []
    if boundaries is not None and len(boundaries):
        layer, _legend, b = _areas.boundary_layer(boundaries, sites, "spare_m2")
        layer.layer_name = "Footprint boundaries"
        layer.style_function = lambda _f: {"fillOpacity": 0, "color": "#444444", "weight": 2}
        layers.append(layer)
        bounds = bounds or b
    access = _get(scenario, "access")
    if isinstance(access, gpd.GeoDataFrame) and len(access):
        access_list, access_legend, b = _areas.access_layers(access)
        layers.extend(access_list)
        legend_parts.append(access_legend)
        bounds = bounds or b
    flows = _get(scenario, "flows")
    if isinstance(flows, gpd.GeoDataFrame) and len(flows):
        flow, flow_legend, b = _areas.flow_layer(flows, sites)
        layers.append(flow)
        legend_parts.append(flow_legend)
        bounds = bounds or b
    m = _page.new_map(tiles, "pooling", bounds)
    for layer in layers:
        m.add_child(layer)
    cluster, subgroups, data_html = _page.add_site_layers(
        m, points, groups, fast=fast, grid=grid, disable_clustering_at_zoom=UNCLUSTERED_ZOOM
    )
    headline = _get(scenario, "headline") or {}
    legend = _page.legend_html(legend_parts, _page.drawn_note(points), len(points))
    body = (
        _page.title_html(
            title or "One-body pooling scenario",
            f"{points.group_counts.get('released', 0):,} sites released; "
            + _page.drawn_note(points).rstrip("."),
        )
        + legend
        + panel_html(headline)
        + data_html
    )
    lines = [_style.DATA_ATTRIBUTION["ogl"]]
    if "sector" in sites.columns and (sites["sector"] == "nhs").any():
        lines.append(_style.DATA_ATTRIBUTION["nhs"])
    if (boundaries is not None and len(boundaries)) or (
        isinstance(access, gpd.GeoDataFrame) and len(access)
    ):
        lines.append(_style.DATA_ATTRIBUTION["os"])
    return _page.finish(
        m,
        kind="pooling",
        points=points,
        cluster=cluster,
        subgroups=subgroups,
        groups=groups,
        fast=fast,
        threshold=threshold,
        grid=grid,
        grid_threshold=grid_at,
        body_html=body,
        flag_filter=None,
        attribution=lines + [line for line in attribution if line],
        controls=[(_page.LEGEND_ID, "bottomright"), (_page.PANEL_ID, "topleft")],
        bounds=bounds,
        unclustered_zoom=UNCLUSTERED_ZOOM,
    )
