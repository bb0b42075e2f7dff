"""From a site GeoDataFrame to what a map draws: positions, layer, symbol, popup text.

Both rendering paths (Folium objects for ordinary estates, one data payload for large
ones) draw from the same :class:`SitePoints`, so a site's popup says the same thing
whichever path drew it. Values stay raw text here; escaping happens where they are
placed on the page (:mod:`estates.maps._escape`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from estates.errors import CrsError, MissingColumnError
from estates.maps import _style
from estates.maps._escape import html_text, plain
from estates.settings import WORKING_CRS, WORKING_EPSG

log = logging.getLogger(__name__)

FLAG_NAMES = tuple(_style.FLAGS)


def require_frame(
    frame: Any, what: str, required: Sequence[str], *, allow_empty_crs: bool = False
) -> gpd.GeoDataFrame:
    """Check a frame handed to a map: a GeoDataFrame in EPSG:27700 with ``required`` columns."""
    if not isinstance(frame, gpd.GeoDataFrame):
        raise TypeError(f"{what} must be a GeoDataFrame, got {type(frame).__name__}")
    if frame.crs is None:
        if allow_empty_crs and frame.empty:
            return frame
        raise CrsError(
            f"{what} has no CRS; set it (e.g. frame.set_crs('EPSG:4326')) and reproject with "
            f".to_crs('{WORKING_CRS}')"
        )
    if frame.crs.to_epsg() != WORKING_EPSG:
        raise CrsError(
            f"{what} is in {frame.crs.to_string()}, maps expect {WORKING_CRS}: call "
            f".to_crs('{WORKING_CRS}') first (maps reproject to EPSG:4326 themselves)"
        )
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise MissingColumnError(
            f"{what} lacks column(s) {', '.join(missing)}; expected at least "
            f"{', '.join(required)} (the canonical frame from estate.sites() or the analysis)"
        )
    return frame


def located_mask(frame: gpd.GeoDataFrame) -> np.ndarray:
    """Sites that can be drawn: a non-empty geometry and not flagged non-geographic."""
    geoms = np.asarray(frame.geometry.values, dtype=object)
    has_geom = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if "non_geographic" in frame.columns:
        non_geo = frame["non_geographic"].fillna(False).astype(bool).to_numpy()
        has_geom &= ~non_geo
    return np.asarray(has_geom, dtype=bool)


def lat_lon(frame: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude (EPSG:4326) of each row's point (representative point otherwise)."""
    geoms = frame.geometry
    if len(geoms) and not bool((geoms.geom_type == "Point").all()):
        geoms = geoms.representative_point()
    wgs = gpd.GeoSeries(geoms.values, crs=frame.crs).to_crs(4326)
    return np.round(wgs.y.to_numpy(dtype=float), 6), np.round(wgs.x.to_numpy(dtype=float), 6)


def _column(frame: pd.DataFrame, name: str) -> list[Any] | None:
    return frame[name].tolist() if name in frame.columns else None


def _text_or(value: Any, default: str = _style.NOT_KNOWN) -> str:
    text = plain(value).strip()
    return text or default


@dataclass
class FlagItem:
    """One flag line in a popup."""

    label: str
    status: str  # flagged, pass, not_assessable
    sentence: str


@dataclass
class SitePoints:
    """Everything the two rendering paths need about the drawn sites."""

    site_id: list[int]
    lat: list[float]
    lon: list[float]
    group: list[str]
    symbol: list[str]
    symbols: dict[str, _style.Symbol]
    title: list[str]
    search: list[str]
    flagged: list[bool]
    labels: list[str]
    values: list[list[str]]  # one list per label, one value per site
    flags: list[list[FlagItem] | None]  # None: not assessed
    unlocated: int = 0
    non_geographic: int = 0
    group_counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.site_id)


def flag_statuses(frame: pd.DataFrame) -> tuple[list[str], list[int], list[list[FlagItem] | None]]:
    """Per site: overall status (flagged/clear/unassessed), flag count and popup flag lines."""
    n = len(frame)
    present = [name for name in FLAG_NAMES if f"flag_{name}" in frame.columns]
    if present:
        status_cols = {name: frame[f"flag_{name}"].tolist() for name in present}
        reason_cols = {name: _column(frame, f"reason_{name}") for name in present}
        overall: list[str] = []
        counts: list[int] = []
        items: list[list[FlagItem] | None] = []
        for i in range(n):
            lines: list[FlagItem] = []
            flagged = 0
            assessed = False
            for name in present:
                status = plain(status_cols[name][i]).strip()
                if status not in _style.FLAG_STATUSES:
                    continue
                reasons = reason_cols[name]
                sentence = plain(reasons[i]).strip() if reasons is not None else ""
                lines.append(FlagItem(_style.FLAGS[name], status, sentence))
                if status == "flagged":
                    flagged += 1
                if status in ("flagged", "pass"):
                    assessed = True
            order = {"flagged": 0, "pass": 1, "not_assessable": 2}
            lines.sort(key=lambda item: order[item.status])
            counts.append(flagged)
            overall.append("flagged" if flagged else ("clear" if assessed else "unassessed"))
            items.append(lines)
        return overall, counts, items
    # No per-flag columns: fall back to the joined summary columns, if any.
    flags = _column(frame, "flags")
    sentences = _column(frame, "flag_sentences")
    count_col = _column(frame, "flag_count")
    if flags is None and sentences is None and count_col is None:
        return ["unassessed"] * n, [0] * n, [None] * n
    overall, counts, items = [], [], []
    for i in range(n):
        names = [f for f in plain(flags[i]).split(";") if f] if flags is not None else []
        lines_text = [s for s in plain(sentences[i]).split("\n") if s.strip()] if sentences else []
        count = len(names) or len(lines_text)
        if count_col is not None and _style.number(count_col[i]) is not None:
            count = int(_style.number(count_col[i]) or 0)
        lines = [
            FlagItem(
                _style.FLAGS.get(names[k], names[k]) if k < len(names) else "Flag", "flagged", s
            )
            for k, s in enumerate(lines_text)
        ]
        if not lines:
            lines = [FlagItem(_style.FLAGS.get(f, f), "flagged", "") for f in names]
        counts.append(count)
        overall.append("flagged" if count else "clear")
        items.append(lines)
    return overall, counts, items


def _unique_labels(names: list[str], postcodes: list[Any] | None, ids: list[int]) -> list[str]:
    """Search labels: the site name, made unique with the postcode or the site id."""
    seen = Counter(names)
    labels = []
    for i, name in enumerate(names):
        if seen[name] > 1:
            postcode = plain(postcodes[i]).strip() if postcodes is not None else ""
            name = f"{name} ({postcode})" if postcode else name
        labels.append(name)
    seen = Counter(labels)
    return [
        f"{label} (site {ids[i]})" if seen[label] > 1 else label for i, label in enumerate(labels)
    ]


def _measure(frame: pd.DataFrame, column: str, fmt: Callable[[Any], str]) -> list[str]:
    if column not in frame.columns:
        return [_style.NOT_ASSESSED] * len(frame)
    return [fmt(v) for v in frame[column].tolist()]


def describe_sites(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Popup rows shared by every site map: labels and one column of values per label."""
    n = len(frame)
    names = _column(frame, "organisation_name") or [None] * n
    codes = _column(frame, "organisation_code") or [None] * n
    organisation = []
    for name, code in zip(names, codes, strict=True):
        name_s, code_s = plain(name).strip(), plain(code).strip()
        if name_s and code_s and code_s != name_s:
            organisation.append(f"{name_s} ({code_s})")
        else:
            organisation.append(name_s or code_s or _style.NOT_KNOWN)
    addresses = _column(frame, "address") or [None] * n
    postcodes = _column(frame, "postcode") or [None] * n
    address = [
        ", ".join(p for p in (plain(a).strip(), plain(pc).strip()) if p) or _style.NOT_KNOWN
        for a, pc in zip(addresses, postcodes, strict=True)
    ]

    def text_col(column: str) -> list[str]:
        values = _column(frame, column)
        return [_style.NOT_KNOWN] * n if values is None else [_text_or(v) for v in values]

    backlog = _measure(frame, "backlog_per_m2", _style.fmt_gbp_per_m2)
    if "backlog_high_significant_per_m2" in frame.columns:
        high = frame["backlog_high_significant_per_m2"].tolist()
        backlog = [
            f"{b} ({_style.fmt_gbp_per_m2(h)} high or significant risk)"
            if _style.number(h) is not None
            else b
            for b, h in zip(backlog, high, strict=True)
        ]
    labels = [
        "Organisation",
        "Address",
        "Site type",
        "Tenure",
        "Occupancy",
        "Gross internal area",
        "Spare floor area",
        "Running cost",
        "Backlog maintenance",
    ]
    values = [
        organisation,
        address,
        text_col("site_type"),
        text_col("tenure"),
        text_col("occupancy"),
        [_style.fmt_m2(v) for v in frame["gia_m2"].tolist()]
        if "gia_m2" in frame.columns
        else [_style.NOT_KNOWN] * n,
        _measure(frame, "spare_m2", _style.fmt_m2),
        _measure(frame, "running_cost_per_m2", _style.fmt_gbp_per_m2),
        backlog,
    ]
    if "cluster_id" in frame.columns:
        labels.append("Co-location cluster")
        values.append(
            [
                f"cluster {int(c)}" if _style.number(c) is not None else "none"
                for c in frame["cluster_id"].tolist()
            ]
        )
    return labels, values


def site_points(
    frame: gpd.GeoDataFrame,
    *,
    group_of: Callable[[pd.DataFrame], list[str]],
    symbol_of: Callable[
        [pd.DataFrame, list[str], list[int]], tuple[list[str], dict[str, _style.Symbol]]
    ],
    extra_rows: Callable[[pd.DataFrame], list[tuple[str, list[str]]]] | None = None,
) -> SitePoints:
    """Build :class:`SitePoints` for the located rows of ``frame`` (input left untouched)."""
    mask = located_mask(frame)
    non_geo = 0
    if "non_geographic" in frame.columns:
        non_geo = int(frame["non_geographic"].fillna(False).astype(bool).sum())
    unlocated = int(len(frame) - mask.sum() - non_geo)
    drawn = frame.loc[mask]
    if drawn.empty:
        lat: np.ndarray = np.empty(0)
        lon: np.ndarray = np.empty(0)
    else:
        lat, lon = lat_lon(drawn)
    status, counts, flag_items = flag_statuses(drawn)
    ids = [int(v) for v in drawn["site_id"].tolist()]
    names = [_text_or(v, "(unnamed site)") for v in drawn["name"].tolist()]
    groups = group_of(drawn)
    symbols_used, symbols = symbol_of(drawn, status, counts)
    labels, values = describe_sites(drawn)
    if extra_rows is not None:
        for label, column in extra_rows(drawn):
            labels.insert(0, label)
            values.insert(0, column)
    return SitePoints(
        site_id=ids,
        lat=lat.tolist(),
        lon=lon.tolist(),
        group=groups,
        symbol=symbols_used,
        symbols=symbols,
        title=names,
        search=_unique_labels(names, _column(drawn, "postcode"), ids),
        flagged=[s == "flagged" for s in status],
        labels=labels,
        values=values,
        flags=flag_items,
        unlocated=max(unlocated, 0),
        non_geographic=non_geo,
        group_counts=dict(Counter(groups)),
    )


def popup_html(points: SitePoints, i: int) -> str:
    """The popup of site ``i`` as HTML; every value escaped (mirrors the fast path's JS)."""
    rows = "".join(
        f"<tr><th>{html_text(label)}</th><td>{html_text(points.values[k][i])}</td></tr>"
        for k, label in enumerate(points.labels)
    )
    items = points.flags[i]
    if items is None:
        flags = f'<p class="estates-flags-none">Flags: {_style.NOT_ASSESSED}</p>'
    elif not items:
        flags = '<p class="estates-flags-none">Flags: none applicable</p>'
    else:
        lines = "".join(
            f'<li class="estates-flag-{item.status}"><b>{html_text(item.label)}</b> '
            f"({html_text(_style.FLAG_STATUSES[item.status].lower())})"
            + (f": {html_text(item.sentence)}" if item.sentence else "")
            + "</li>"
            for item in items
        )
        flags = f"<ul>{lines}</ul>"
    return (
        f'<div class="estates-popup" data-site-id="{points.site_id[i]}">'
        f"<h4>{html_text(points.title[i])}</h4><table>{rows}</table>{flags}</div>"
    )
