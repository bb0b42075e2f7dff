"""The large-estate path: one compact data payload instead of one Folium object per site.

Above the threshold (:func:`resolve_fast_threshold`, 1,000 sites by default) a map of
tens of thousands of sites would otherwise carry a ``L.marker`` + ``L.divIcon`` +
popup HTML blob per site: megabytes of script for the browser to parse and thousands
of DOM nodes. Here the page carries one payload (columns, with repeated text stored
once; JSON, gzipped and base64-encoded), which the browser inflates natively
(``DecompressionStream``) and parses with ``JSON.parse``; the runtime makes plain
markers that share one icon per symbol, clusters them in chunks and builds each popup
from the data with ``textContent`` only when it is opened.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from typing import Any

from estates.errors import ConfigurationError
from estates.maps import _style
from estates.maps._escape import json_ready
from estates.maps._model import SitePoints

FAST_THRESHOLD_ENV = "ESTATES_MAP_FAST_THRESHOLD"
DEFAULT_FAST_THRESHOLD = 1_000
DATA_ELEMENT_ID = "estates-site-data"


def resolve_fast_threshold(value: int | None = None) -> int:
    """Most sites drawn as Folium markers; more than this uses the fast path.

    Argument, then ``ESTATES_MAP_FAST_THRESHOLD``, then 1,000. Measured in headless
    Chromium: 2,000 Folium markers make a 6 MB page; the fast path draws 20,000 sites
    in 1.4 MB and is ready about a second after the file is opened.
    """
    if value is not None:
        if value < 0:
            raise ConfigurationError(f"fast_threshold={value} must be 0 or more (sites)")
        return int(value)
    raw = os.environ.get(FAST_THRESHOLD_ENV)
    if raw in (None, ""):
        return DEFAULT_FAST_THRESHOLD
    try:
        parsed = int(raw)
    except ValueError:
        raise ConfigurationError(
            f"{FAST_THRESHOLD_ENV}={raw!r} is not a whole number of sites; set it to e.g. "
            f"{DEFAULT_FAST_THRESHOLD}"
        ) from None
    if parsed < 0:
        raise ConfigurationError(f"{FAST_THRESHOLD_ENV}={parsed} must be 0 or more")
    return parsed


def _encode_column(label: str, values: list[str]) -> dict[str, Any]:
    """A popup column, dictionary-encoded when its values repeat (types, tenures, orgs)."""
    uniques: dict[str, int] = {}
    codes = [uniques.setdefault(v, len(uniques)) for v in values]
    if len(uniques) * 2 <= len(values):
        return {"label": label, "dict": list(uniques), "codes": codes}
    return {"label": label, "values": values}


def payload(points: SitePoints, group_keys: list[str]) -> dict[str, Any]:
    """The fast path's data: everything a popup shows, as columns."""
    symbol_keys = list(points.symbols)
    symbol_index = {key: i for i, key in enumerate(symbol_keys)}
    group_index = {key: i for i, key in enumerate(group_keys)}
    flag_labels = list(_style.FLAGS.values())
    flag_label_index = {label: i for i, label in enumerate(flag_labels)}
    statuses = list(_style.FLAG_STATUSES)
    flags: list[list[list[Any]] | None] = []
    for items in points.flags:
        if items is None:
            flags.append(None)
            continue
        encoded = []
        for item in items:
            if item.label not in flag_label_index:
                flag_label_index[item.label] = len(flag_labels)
                flag_labels.append(item.label)
            encoded.append(
                [flag_label_index[item.label], statuses.index(item.status), item.sentence]
            )
        flags.append(encoded)
    return {
        "id": points.site_id,
        "lat": points.lat,
        "lon": points.lon,
        "group": [group_index[g] for g in points.group],
        "symbol": [symbol_index[s] for s in points.symbol],
        "symbols": [
            {"svg": points.symbols[k].svg, "size": points.symbols[k].size} for k in symbol_keys
        ],
        "title": points.title,
        "search": points.search,
        "flagged": [1 if f else 0 for f in points.flagged],
        "rows": [_encode_column(label, points.values[k]) for k, label in enumerate(points.labels)],
        "flags": flags,
        "flagLabels": flag_labels,
        "flagStatuses": statuses,
        "flagStatusLabels": [_style.FLAG_STATUSES[s] for s in statuses],
        "notAssessed": _style.NOT_ASSESSED,
    }


def pack(data: dict[str, Any]) -> str:
    """JSON, gzipped, base64: about a fifth of the JSON's size, and only ``[A-Za-z0-9+/=]``.

    Flag sentences repeat their wording from site to site, so they compress well; the
    base64 alphabet cannot form markup, so the payload needs no further escaping.
    """
    try:  # the payload is built from strings and finite numbers: the fast way first
        raw = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raw = json.dumps(json_ready(data), ensure_ascii=False, separators=(",", ":"))
    return base64.b64encode(gzip.compress(raw.encode("utf-8"), compresslevel=6, mtime=0)).decode(
        "ascii"
    )


def unpack(text: str) -> dict[str, Any]:
    """The inverse of :func:`pack` (for tests and for tools that read a saved map)."""
    return dict(json.loads(gzip.decompress(base64.b64decode(text)).decode("utf-8")))


def payload_html(points: SitePoints, group_keys: list[str]) -> str:
    """The packed payload as an inert script element the runtime unpacks."""
    return (
        f'<script type="application/octet-stream" id="{DATA_ELEMENT_ID}" '
        f'data-encoding="gzip+base64">{pack(payload(points, group_keys))}</script>'
    )
