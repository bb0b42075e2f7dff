"""From a site GeoDataFrame to what a map draws: positions, layer, symbol, popup text.

Both rendering paths (Folium objects for ordinary estates, one data payload for large
ones) draw from the same :class:`SitePoints`, so a site's popup says the same thing
whichever path drew it. Values stay raw text here; escaping happens where they are
placed on the page (:mod:`estates.maps._escape`).

Everything is built column by column, never site by site: each text column is
dictionary-encoded (:class:`Text`), so cleaning and formatting run once per distinct
value. A national estate repeats a handful of site types, tenures, organisations and
flag sentences across hundreds of thousands of sites, so this is what keeps a
500,000-site map to a few seconds.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from estates.errors import CrsError, MissingColumnError
from estates.maps import _style
from estates.maps._escape import html_text, plain
from estates.settings import WORKING_CRS, WORKING_EPSG

log = logging.getLogger(__name__)

FLAG_NAMES = tuple(_style.FLAGS)
#: flag line statuses in the order a popup lists them
LINE_STATUSES = ("flagged", "pass", "not_assessable")
#: a site's overall status (its marker's shape)
SITE_STATUSES = ("flagged", "clear", "unassessed")


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


@functools.lru_cache(maxsize=8)
def wgs84_transformer(crs: pyproj.CRS) -> pyproj.Transformer:
    """From ``crs`` to EPSG:4326 (lon, lat): what ``GeoSeries.to_crs(4326)`` uses, made once."""
    return pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def lat_lon(geometry: gpd.GeoSeries) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude (EPSG:4326, 6 decimals) of each point.

    Non-point geometries use a point on their surface. One transformer call on the
    coordinate arrays, with no intermediate GeoSeries.
    """
    geoms = np.asarray(geometry.values, dtype=object)
    not_point = shapely.get_type_id(geoms) != 0
    if not_point.any():
        geoms = geoms.copy()
        geoms[not_point] = shapely.point_on_surface(geoms[not_point])
    x, y = shapely.get_x(geoms), shapely.get_y(geoms)
    lon, lat = wgs84_transformer(geometry.crs).transform(x, y)
    return np.round(np.asarray(lat, dtype=float), 6), np.round(np.asarray(lon, dtype=float), 6)


def column_values(frame: pd.DataFrame, name: str) -> np.ndarray | None:
    """A column as a NumPy array (object unless plainly numeric), or None if absent."""
    if name not in frame.columns:
        return None
    column = frame[name]
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biuf":
        return column.to_numpy()
    return column.to_numpy(dtype=object)


def combinations(parts: Sequence[Text]) -> tuple[np.ndarray, np.ndarray]:
    """Each site's code for its combination of ``parts``, and the first site of each code.

    Codes are numbered in order of first appearance (what ``pd.factorize`` does), so
    the first sites are where a code exceeds every code before it.
    """
    key = parts[0].codes.astype(np.int64)
    for part in parts[1:]:
        key = pd.factorize(key * len(part.uniques) + part.codes)[0].astype(np.int64)
    codes = pd.factorize(key)[0] if len(parts) == 1 else key
    if not len(codes):
        return codes, np.zeros(0, dtype=np.intp)
    is_first = np.empty(len(codes), dtype=bool)
    is_first[0] = True
    is_first[1:] = codes[1:] > np.maximum.accumulate(codes)[:-1]
    return codes, np.flatnonzero(is_first)


@dataclass(frozen=True)
class Text:
    """Text per site, dictionary-encoded: site ``i`` shows ``uniques[codes[i]]``."""

    codes: np.ndarray
    uniques: list[str]

    @classmethod
    def of(cls, values: np.ndarray, show: Callable[[Any], str]) -> Text:
        """``show(value)`` for every value, computed once per distinct value.

        Missing values (None, NaN, NA) reach ``show`` as None. Values that show alike
        share one entry.
        """
        codes, uniques = pd.factorize(values)
        shown = [show(u) for u in uniques.tolist()]
        if len(codes) and codes.min() < 0:
            codes = np.where(codes < 0, len(shown), codes)
            shown.append(show(None))
        return cls.merged(codes, shown)

    @classmethod
    def merged(cls, codes: np.ndarray, shown: Sequence[str]) -> Text:
        """Codes into ``shown``, with equal strings folded into one entry."""
        remap, distinct = pd.factorize(np.asarray(shown, dtype=object))
        return cls(remap[codes] if len(codes) else np.zeros(0, dtype=np.intp), distinct.tolist())

    @classmethod
    def per_row(cls, values: np.ndarray, show: Callable[[Any], str]) -> Text:
        """``show(value)`` row by row, with no dictionary.

        For columns whose values are nearly all distinct (postcodes): hashing them to
        find the few repeats costs more than it saves.
        """
        return cls(np.arange(len(values)), [show(v) for v in values.tolist()])

    @classmethod
    def constant(cls, value: str, n: int) -> Text:
        return cls(np.zeros(n, dtype=np.intp), [value])

    @classmethod
    def combine(
        cls, parts: Sequence[Text], join: Callable[..., str], *, merge: bool = True
    ) -> Text:
        """``join(*texts)`` per site, computed once per distinct combination of ``parts``.

        With ``merge=False`` equal results of different combinations keep their own
        entries: enough for text that is only displayed, and it saves hashing every
        result when nearly all are distinct (addresses).
        """
        codes, first = combinations(parts)
        texts = [np.asarray(p.uniques, dtype=object)[p.codes[first]].tolist() for p in parts]
        shown = [join(*args) for args in zip(*texts, strict=True)]
        return cls.merged(codes, shown) if merge else cls(codes, shown)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: int) -> str:
        return self.uniques[self.codes[i]]

    def tolist(self) -> list[str]:
        texts: list[str] = np.asarray(self.uniques, dtype=object)[self.codes].tolist()
        return texts

    def test(self, predicate: Callable[[str], bool]) -> np.ndarray:
        """``predicate(text)`` per site, as a boolean array."""
        return np.asarray([predicate(u) for u in self.uniques], dtype=bool)[self.codes]

    def counts(self) -> dict[str, int]:
        """Sites per distinct text (first appearance order)."""
        counts = np.bincount(self.codes, minlength=len(self.uniques)).tolist()
        return {u: c for u, c in zip(self.uniques, counts, strict=True) if c}

    def take(self, positions: np.ndarray) -> Text:
        """The sites at ``positions``; texts no site uses any more are dropped."""
        codes = self.codes[positions]
        used = np.bincount(codes, minlength=len(self.uniques)) > 0
        if used.all():
            return Text(codes, self.uniques)
        remap = np.cumsum(used) - 1
        return Text(remap[codes], [u for u, keep in zip(self.uniques, used, strict=True) if keep])


def _stripped(value: Any) -> str:
    # str first: called once per distinct value, hundreds of thousands of times
    return value.strip() if type(value) is str else plain(value).strip()


def _text_or(default: str) -> Callable[[Any], str]:
    def show(value: Any) -> str:
        return _stripped(value) or default

    return show


def text_column(frame: pd.DataFrame, name: str, show: Callable[[Any], str], missing: str) -> Text:
    """``show`` of each row's value of column ``name``; ``missing`` if there is no such column."""
    values = column_values(frame, name)
    return Text.constant(missing, len(frame)) if values is None else Text.of(values, show)


def number_column(
    frame: pd.DataFrame,
    name: str,
    fmt: Callable[[Any], str],
    missing: str,
    *,
    whole_units: bool = False,
) -> Text:
    """``fmt`` of each row's number in column ``name``; ``missing`` if there is no such column.

    With ``whole_units`` (``fmt`` shows no decimals) float values are rounded first, as
    ``round`` does (half to even), so far fewer distinct values need formatting.
    """
    values = column_values(frame, name)
    if values is None:
        return Text.constant(missing, len(frame))
    if values.dtype.kind == "f":
        # + 0.0 turns -0.0 into 0.0: factorize takes the two for one value, so they
        # must also format alike
        values = (np.rint(values) if whole_units else values) + 0.0
    return Text.of(values, fmt)


def postcodes(frame: pd.DataFrame) -> Text:
    """Each row's postcode, stripped ("" where there is none)."""
    values = column_values(frame, "postcode")
    return Text.constant("", len(frame)) if values is None else Text.per_row(values, _stripped)


@dataclass(frozen=True)
class FlagColumn:
    """One possible flag line per site: its label, status and sentence."""

    label: Text
    status: np.ndarray  # index into LINE_STATUSES; -1 where the site has no such line
    sentence: Text

    def take(self, positions: np.ndarray) -> FlagColumn:
        return FlagColumn(
            self.label.take(positions), self.status[positions], self.sentence.take(positions)
        )


@dataclass(frozen=True)
class Flags:
    """Per site: overall status, number of flags raised and the popup's flag lines."""

    status: np.ndarray  # index into SITE_STATUSES
    count: np.ndarray
    columns: list[FlagColumn] | None  # None: the frame has no flag columns at all

    def take(self, positions: np.ndarray) -> Flags:
        columns = None if self.columns is None else [c.take(positions) for c in self.columns]
        return Flags(self.status[positions], self.count[positions], columns)

    def lines(self, i: int) -> list[tuple[str, str, str]] | None:
        """Site ``i``'s (label, status, sentence) lines in popup order (flagged first)."""
        if self.columns is None:
            return None
        return [
            (column.label[i], status, column.sentence[i])
            for k, status in enumerate(LINE_STATUSES)
            for column in self.columns
            if column.status[i] == k
        ]


def flag_statuses(frame: pd.DataFrame) -> Flags:
    """Per site: overall status (flagged/clear/unassessed), flag count and popup flag lines.

    Reads the per-rule ``flag_<name>`` / ``reason_<name>`` columns, or without them the
    joined summary columns (``flags``, ``flag_sentences``, ``flag_count``).
    """
    n = len(frame)
    present = [name for name in FLAG_NAMES if f"flag_{name}" in frame.columns]
    if not present:
        return _summary_flags(frame)
    columns = []
    for name in present:
        states = text_column(frame, f"flag_{name}", _stripped, "")
        lookup = np.asarray(
            [LINE_STATUSES.index(s) if s in LINE_STATUSES else -1 for s in states.uniques],
            dtype=np.int8,
        )
        columns.append(
            FlagColumn(
                Text.constant(_style.FLAGS[name], n),
                lookup[states.codes],
                text_column(frame, f"reason_{name}", _stripped, ""),
            )
        )
    statuses = np.stack([c.status for c in columns])
    count = (statuses == 0).sum(axis=0).astype(np.int64)
    assessed = ((statuses == 0) | (statuses == 1)).any(axis=0)
    status = np.where(count > 0, 0, np.where(assessed, 1, 2)).astype(np.int8)
    return Flags(status, count, columns)


def _summary_flags(frame: pd.DataFrame) -> Flags:
    """Flag lines from the joined summary columns, worked out once per distinct row."""
    n = len(frame)
    if not {"flags", "flag_sentences", "flag_count"} & set(frame.columns):
        return Flags(np.full(n, 2, dtype=np.int8), np.zeros(n, dtype=np.int64), None)
    parts = [
        text_column(frame, "flags", plain, ""),
        text_column(frame, "flag_sentences", plain, ""),
        text_column(
            frame,
            "flag_count",
            lambda v: "" if _style.number(v) is None else str(int(_style.number(v) or 0)),
            "",
        ),
    ]
    codes, first = combinations(parts)
    per_row: list[tuple[int, list[tuple[str, str]]]] = []
    for i in first.tolist():
        names_text, sentences_text, count_text = (p[i] for p in parts)
        flag_names = [f for f in names_text.split(";") if f]
        lines_text = [s for s in sentences_text.split("\n") if s.strip()]
        count = int(count_text) if count_text else len(flag_names) or len(lines_text)
        lines = [
            (
                _style.FLAGS.get(flag_names[k], flag_names[k]) if k < len(flag_names) else "Flag",
                sentence,
            )
            for k, sentence in enumerate(lines_text)
        ]
        if not lines:
            lines = [(_style.FLAGS.get(f, f), "") for f in flag_names]
        per_row.append((count, lines))
    count = np.asarray([c for c, _lines in per_row], dtype=np.int64)[codes]
    columns = []
    for k in range(max((len(lines) for _c, lines in per_row), default=0)):
        line = [lines[k] if len(lines) > k else None for _c, lines in per_row]
        columns.append(
            FlagColumn(
                Text.merged(codes, [item[0] if item else "" for item in line]),
                np.asarray([0 if item else -1 for item in line], dtype=np.int8)[codes],
                Text.merged(codes, [item[1] if item else "" for item in line]),
            )
        )
    return Flags(np.where(count > 0, 0, 1).astype(np.int8), count, columns)


def search_labels(title: Text, postcode: Text, ids: np.ndarray) -> list[str]:
    """Search labels: the site name, made unique with the postcode or the site id."""
    labels = title.tolist()
    duplicated = np.bincount(title.codes, minlength=len(title.uniques))[title.codes] > 1
    if duplicated.any():
        shown = postcode.tolist()
        for i in np.flatnonzero(duplicated).tolist():
            if shown[i]:
                labels[i] = f"{labels[i]} ({shown[i]})"
    repeated = pd.Series(labels, dtype=object).duplicated(keep=False).to_numpy()
    for i in np.flatnonzero(repeated).tolist():
        labels[i] = f"{labels[i]} (site {ids[i]})"
    return labels


def describe_sites(frame: pd.DataFrame, postcode: Text | None = None) -> list[tuple[str, Text]]:
    """Popup rows shared by every site map: (label, text per site).

    ``postcode`` is :func:`postcodes` of the frame, if the caller has it already.
    """
    known = _text_or(_style.NOT_KNOWN)
    organisation = Text.combine(
        [
            text_column(frame, "organisation_name", _stripped, ""),
            text_column(frame, "organisation_code", _stripped, ""),
        ],
        lambda name, code: (
            f"{name} ({code})"
            if name and code and code != name
            else name or code or _style.NOT_KNOWN
        ),
    )
    address = Text.combine(
        [
            text_column(frame, "address", _stripped, ""),
            postcode if postcode is not None else postcodes(frame),
        ],
        lambda a, pc: f"{a}, {pc}" if a and pc else a or pc or _style.NOT_KNOWN,
        merge=False,
    )
    backlog = number_column(frame, "backlog_per_m2", _style.fmt_gbp_per_m2, _style.NOT_ASSESSED)
    if "backlog_high_significant_per_m2" in frame.columns:
        high = number_column(
            frame,
            "backlog_high_significant_per_m2",
            lambda v: "" if _style.number(v) is None else _style.fmt_gbp_per_m2(v),
            "",
        )
        backlog = Text.combine(
            [backlog, high], lambda b, h: f"{b} ({h} high or significant risk)" if h else b
        )
    rows = [
        ("Organisation", organisation),
        ("Address", address),
        ("Site type", text_column(frame, "site_type", known, _style.NOT_KNOWN)),
        ("Tenure", text_column(frame, "tenure", known, _style.NOT_KNOWN)),
        ("Occupancy", text_column(frame, "occupancy", known, _style.NOT_KNOWN)),
        (
            "Gross internal area",
            number_column(frame, "gia_m2", _style.fmt_m2, _style.NOT_KNOWN, whole_units=True),
        ),
        (
            "Spare floor area",
            number_column(frame, "spare_m2", _style.fmt_m2, _style.NOT_ASSESSED, whole_units=True),
        ),
        (
            "Running cost",
            number_column(frame, "running_cost_per_m2", _style.fmt_gbp_per_m2, _style.NOT_ASSESSED),
        ),
        ("Backlog maintenance", backlog),
    ]
    if "cluster_id" in frame.columns:
        rows.append(
            (
                "Co-location cluster",
                number_column(
                    frame,
                    "cluster_id",
                    lambda c: f"cluster {int(c)}" if _style.number(c) is not None else "none",
                    "",
                ),
            )
        )
    return rows


@dataclass
class SitePoints:
    """Everything the two rendering paths need about the drawn sites (one entry per site)."""

    site_id: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    group: Text
    symbol: np.ndarray  # index into symbols
    symbols: list[_style.Symbol]
    title: Text
    search: list[str]
    flagged: np.ndarray  # bool: counted in cluster bubbles and kept by the flag filter
    rows: list[tuple[str, Text]]
    flags: Flags
    unlocated: int = 0
    non_geographic: int = 0
    group_counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.site_id)


def _site_ids(frame: pd.DataFrame) -> np.ndarray:
    values = column_values(frame, "site_id")
    assert values is not None
    try:
        return values.astype(np.int64)
    except (TypeError, ValueError):  # e.g. ids read as text
        return np.fromiter((int(v) for v in values), dtype=np.int64, count=len(values))


def _symbols(
    group: Text, flags: Flags, symbol_of: Callable[[str, str, int], _style.Symbol]
) -> tuple[np.ndarray, list[_style.Symbol]]:
    """Each site's symbol, made once per distinct (group, status, shown flag count)."""
    shown_count = np.where(flags.status == 0, np.minimum(flags.count, 9), 0)
    key = (group.codes.astype(np.int64) * len(SITE_STATUSES) + flags.status) * 10 + shown_count
    combos, inverse = np.unique(key, return_inverse=True)
    symbols: list[_style.Symbol] = []
    index: dict[_style.Symbol, int] = {}
    per_combo = []
    for combo in combos.tolist():
        rest, count = divmod(combo, 10)
        g, s = divmod(rest, len(SITE_STATUSES))
        symbol = symbol_of(group.uniques[g], SITE_STATUSES[s], count)
        if symbol not in index:
            index[symbol] = len(symbols)
            symbols.append(symbol)
        per_combo.append(index[symbol])
    return np.asarray(per_combo, dtype=np.intp)[inverse.reshape(-1)], symbols


def site_points(
    frame: gpd.GeoDataFrame,
    *,
    group_of: Callable[[pd.DataFrame], Text],
    symbol_of: Callable[[str, str, int], _style.Symbol],
    extra_rows: Callable[[pd.DataFrame], list[tuple[str, Text]]] | None = None,
) -> SitePoints:
    """Build :class:`SitePoints` for the located rows of ``frame`` (input left untouched).

    ``group_of`` gives each row's layer key, ``symbol_of(group, status, flag_count)``
    the marker for a combination, ``extra_rows`` popup rows placed before the shared
    ones. Texts are worked out on every row and then cut to the located ones, which
    avoids copying the frame.
    """
    mask = located_mask(frame)
    non_geo = 0
    if "non_geographic" in frame.columns:
        non_geo = int(frame["non_geographic"].fillna(False).astype(bool).sum())
    unlocated = int(len(frame) - mask.sum() - non_geo)
    positions = np.flatnonzero(mask)
    if len(positions):
        lat, lon = lat_lon(frame.geometry.iloc[positions])
    else:
        lat = lon = np.empty(0)
    flags = flag_statuses(frame).take(positions)
    ids = _site_ids(frame)[positions]
    title = text_column(frame, "name", _text_or("(unnamed site)"), "").take(positions)
    postcode = postcodes(frame)
    group = group_of(frame).take(positions)
    symbol, symbols = _symbols(group, flags, symbol_of)
    rows = [(label, text.take(positions)) for label, text in describe_sites(frame, postcode)]
    if extra_rows is not None:
        for label, text in extra_rows(frame):
            rows.insert(0, (label, text.take(positions)))
    return SitePoints(
        site_id=ids,
        lat=lat,
        lon=lon,
        group=group,
        symbol=symbol,
        symbols=symbols,
        title=title,
        search=search_labels(title, postcode.take(positions), ids),
        flagged=flags.status == 0,
        rows=rows,
        flags=flags,
        unlocated=max(unlocated, 0),
        non_geographic=non_geo,
        group_counts=group.counts(),
    )


def popup_html(points: SitePoints, i: int) -> str:
    """The popup of site ``i`` as HTML; every value escaped (mirrors the fast path's JS)."""
    rows = "".join(
        f"<tr><th>{html_text(label)}</th><td>{html_text(text[i])}</td></tr>"
        for label, text in points.rows
    )
    lines = points.flags.lines(i)
    if lines is None:
        flags = f'<p class="estates-flags-none">Flags: {_style.NOT_ASSESSED}</p>'
    elif not lines:
        flags = '<p class="estates-flags-none">Flags: none applicable</p>'
    else:
        items = "".join(
            f'<li class="estates-flag-{status}"><b>{html_text(label)}</b> '
            f"({html_text(_style.FLAG_STATUSES[status].lower())})"
            + (f": {html_text(sentence)}" if sentence else "")
            + "</li>"
            for label, status, sentence in lines
        )
        flags = f"<ul>{items}</ul>"
    return (
        f'<div class="estates-popup" data-site-id="{int(points.site_id[i])}">'
        f"<h4>{html_text(points.title[i])}</h4><table>{rows}</table>{flags}</div>"
    )
