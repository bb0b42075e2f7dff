"""The large-estate path: one compact data payload instead of one Folium object per site.

Above the threshold (:func:`resolve_fast_threshold`, 1,000 sites by default) a map of
tens of thousands of sites would otherwise carry a ``L.marker`` + ``L.divIcon`` +
popup HTML blob per site: megabytes of script for the browser to parse and thousands
of DOM nodes. Here the page carries one payload (columns, with repeated text stored
once; JSON, gzipped and base64-encoded), which the browser inflates natively
(``DecompressionStream``) and parses with ``JSON.parse``; the runtime makes plain
markers that share one icon per symbol, clusters them in chunks and builds each popup
from the data with ``textContent`` only when it is opened.

Integer columns (ids, coordinates, dictionary codes, flag statuses) travel as one string
of fixed-width base-64 digits each (:func:`pack_ints`): ``json.dumps`` of a
500,000-item list of ints takes about 0.1 s, and a national payload has two dozen.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from typing import Any

import numpy as np

from estates.errors import ConfigurationError
from estates.maps import _style
from estates.maps._model import LINE_STATUSES, SitePoints, Text

FAST_THRESHOLD_ENV = "ESTATES_MAP_FAST_THRESHOLD"
DEFAULT_FAST_THRESHOLD = 1_000
DATA_ELEMENT_ID = "estates-site-data"
#: payload coordinates are integers in millionths of a degree (about 10 cm)
COORDINATE_SCALE = 1_000_000
#: base-64 digits of packed integer columns (URL-safe: nothing in them needs escaping)
INT_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_DIGIT_BYTES = np.frombuffer(INT_DIGITS.encode("ascii"), dtype=np.uint8)
_DIGIT_VALUES = {c: k for k, c in enumerate(INT_DIGITS)}
#: gzip level of the payload. Measured on the 500,000-site national map (65 MB of JSON):
#: level 1 takes 0.5 s for 17.7 MB of base64, level 6 1.9 s for 16.0 MB, level 9 6 s
#: for 15.6 MB
COMPRESS_LEVEL = 1


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


def text_json(text: Text) -> dict[str, Any]:
    """A text column: a dictionary and a code per site when values repeat, else the values.

    With a single value there are no codes at all (the runtime reads ``dict[0]``).
    """
    if len(text.uniques) == 1 and len(text) > 1:
        return {"dict": text.uniques}
    if len(text.uniques) * 2 <= len(text):
        return {"dict": text.uniques, "codes": text.codes}
    return {"values": text.tolist()}


def text_at(column: dict[str, Any], i: int) -> str:
    """Site ``i``'s value in a :func:`text_json` column (what the runtime's ``textAt`` does)."""
    if "values" in column:
        return str(column["values"][i])
    return str(column["dict"][column["codes"][i] if "codes" in column else 0])


def payload(points: SitePoints, group_keys: list[str]) -> dict[str, Any]:
    """The fast path's data: everything a popup shows, as columns built from the frame's.

    Coordinates travel as integers in millionths of a degree (``scale``): the same
    6-decimal values as the Folium path, in fewer characters.
    """
    group_index = {key: i for i, key in enumerate(group_keys)}
    groups = np.asarray([group_index[g] for g in points.group.uniques], dtype=np.int64)
    columns = points.flags.columns
    return {
        "id": points.site_id,
        "scale": COORDINATE_SCALE,
        "lat": np.rint(points.lat * COORDINATE_SCALE).astype(np.int64),
        "lon": np.rint(points.lon * COORDINATE_SCALE).astype(np.int64),
        "group": groups[points.group.codes],
        "symbol": points.symbol,
        "symbols": [{"svg": s.svg, "size": s.size} for s in points.symbols],
        "title": points.title.tolist(),
        "search": points.search,
        "flagged": points.flagged.astype(np.int8),
        "rows": [{"label": label, **text_json(text)} for label, text in points.rows],
        "flags": None
        if columns is None
        else [
            {
                "label": text_json(c.label),
                "status": c.status,
                "sentence": text_json(c.sentence),
            }
            for c in columns
        ],
        "flagStatuses": list(LINE_STATUSES),
        "flagStatusLabels": [_style.FLAG_STATUSES[s] for s in LINE_STATUSES],
        "notAssessed": _style.NOT_ASSESSED,
    }


def pack_ints(values: np.ndarray) -> dict[str, Any]:
    """Integers as one string of fixed-width base-64 digits, after subtracting the least.

    Vectorised, so a 500,000-item column costs milliseconds; the runtime reads it back
    into a typed array.
    """
    numbers = np.asarray(values, dtype=np.int64).reshape(-1)
    offset = int(numbers.min()) if len(numbers) else 0
    span = numbers - offset
    width = max(1, (int(span.max()).bit_length() + 5) // 6) if len(numbers) else 1
    digits = np.empty((len(numbers), width), dtype=np.uint8)
    for k in range(width):
        digits[:, width - 1 - k] = _DIGIT_BYTES[(span >> (6 * k)) & 63]
    return {"ints": digits.tobytes().decode("ascii"), "width": width, "offset": offset}


def unpack_ints(column: dict[str, Any]) -> list[int]:
    """The inverse of :func:`pack_ints` (what the runtime's ``ints`` does)."""
    text, width, offset = column["ints"], int(column["width"]), int(column["offset"])
    out = []
    for start in range(0, len(text), width):
        value = 0
        for char in text[start : start + width]:
            value = value * 64 + _DIGIT_VALUES[char]
        out.append(value + offset)
    return out


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype.kind in "biu":
        return pack_ints(value)
    raise TypeError(f"payload holds a {type(value).__name__}, which has no JSON form")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if isinstance(value.get("ints"), str):
            return unpack_ints(value)
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [_decode(v) for v in value]
    return value


def pack(data: dict[str, Any]) -> str:
    """JSON, deflated (gzip), base64: only ``[A-Za-z0-9+/=]``, so nothing to escape.

    Flag sentences and organisations are stored once each, and what repeats from site
    to site (dictionary codes, statuses) deflates well.
    """
    # ASCII JSON (non-ASCII as \u escapes): as fast to write, and quicker to encode
    raw = json.dumps(data, separators=(",", ":"), allow_nan=False, default=_encode)
    packed = gzip.compress(raw.encode("ascii"), compresslevel=COMPRESS_LEVEL, mtime=0)
    return base64.b64encode(packed).decode("ascii")


def unpack(text: str) -> dict[str, Any]:
    """The inverse of :func:`pack`, integer columns as lists (for tests and for tools)."""
    data = json.loads(gzip.decompress(base64.b64decode(text)).decode("utf-8"))
    return dict(_decode(data))


def payload_html(points: SitePoints, group_keys: list[str]) -> str:
    """The packed payload as an inert script element the runtime unpacks."""
    return (
        f'<script type="application/octet-stream" id="{DATA_ELEMENT_ID}" '
        f'data-encoding="gzip+base64">{pack(payload(points, group_keys))}</script>'
    )
