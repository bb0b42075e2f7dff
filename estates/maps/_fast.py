"""The large-estate paths: one compact data payload instead of one Folium object per site.

Above the fast threshold (:func:`resolve_fast_threshold`, 1,000 sites by default) a map
of tens of thousands of sites would otherwise carry a ``L.marker`` + ``L.divIcon`` +
popup HTML blob per site: megabytes of script for the browser to parse and thousands
of DOM nodes. Here the page carries the sites as data, in two parts:

- *points* (:data:`POINTS_ELEMENT_ID`): position, layer, symbol and flag per site,
  all that is needed to draw the map;
- *details* (:data:`DATA_ELEMENT_ID`): names, search labels, popup rows and flag lines.

Each part is a small binary format (:func:`encode`), gzipped and base64-encoded: a JSON
header that describes the part, then its integer columns as raw little-endian arrays
and its long text columns as UTF-8 with a length per entry. The browser inflates it
natively (``DecompressionStream``) and reads the columns as typed arrays without a JSON
parse; a text column becomes one string that is sliced when an entry is shown.
Measured on the 500,000-site national map, the JSON form of the same data inflated to
66 MB and took 2.6 s to inflate and parse in Chromium before anything could be drawn.

Up to the grid threshold (:func:`resolve_grid_threshold`) the runtime makes one
Leaflet marker per site and hands them to Leaflet.markercluster. Above it, it makes no
marker per site: it clusters the points in view on a pixel grid each time the view
changes and draws only the bubbles and the few sites standing alone (see
:mod:`estates.maps._runtime`).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
from typing import Any

import numpy as np

from estates.errors import ConfigurationError
from estates.maps import _style
from estates.maps._model import LINE_STATUSES, SitePoints, Text

FAST_THRESHOLD_ENV = "ESTATES_MAP_FAST_THRESHOLD"
DEFAULT_FAST_THRESHOLD = 1_000
GRID_THRESHOLD_ENV = "ESTATES_MAP_GRID_THRESHOLD"
DEFAULT_GRID_THRESHOLD = 20_000
POINTS_ELEMENT_ID = "estates-site-points"
DATA_ELEMENT_ID = "estates-site-data"
#: what the map needs to draw the sites; the rest of the payload is details
POINT_KEYS = ("id", "scale", "lat", "lon", "group", "symbol", "symbols", "flagged")
#: payload coordinates are integers in millionths of a degree (about 10 cm)
COORDINATE_SCALE = 1_000_000
#: gzip level of the payload. Measured on the 500,000-site national map (binary columns):
#: level 1 takes 0.4 s for 15.7 MB of base64, level 6 1.2 s for 14.0 MB
COMPRESS_LEVEL = 1
#: lists of at least this many strings travel as a text column, shorter ones in the header
TEXT_COLUMN_MIN = 32
#: stored integer types, narrowest first (JS: Uint8Array, Uint16Array, Uint32Array)
_UNSIGNED = (("u1", np.dtype("<u1")), ("u2", np.dtype("<u2")), ("u4", np.dtype("<u4")))
_ALIGN = 8
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_INT32 = (-(2**31), 2**31 - 1)
_EXACT_FLOAT = 2**53


def _threshold(value: int | None, env: str, default: int) -> int:
    if value is not None:
        if value < 0:
            raise ConfigurationError(f"a site threshold of {value} must be 0 or more (sites)")
        return int(value)
    raw = os.environ.get(env)
    if raw in (None, ""):
        return default
    try:
        parsed = int(raw)
    except ValueError:
        raise ConfigurationError(
            f"{env}={raw!r} is not a whole number of sites; set it to e.g. {default}"
        ) from None
    if parsed < 0:
        raise ConfigurationError(f"{env}={parsed} must be 0 or more")
    return parsed


def resolve_fast_threshold(value: int | None = None) -> int:
    """Most sites drawn as Folium markers; more than this uses the data payload.

    Argument, then ``ESTATES_MAP_FAST_THRESHOLD``, then 1,000. Measured in headless
    Chromium: 2,000 Folium markers make a 6 MB page; the payload draws 20,000 sites
    in 1.4 MB and is ready about a second after the file is opened.
    """
    return _threshold(value, FAST_THRESHOLD_ENV, DEFAULT_FAST_THRESHOLD)


def resolve_grid_threshold(value: int | None = None) -> int:
    """Most sites clustered by Leaflet.markercluster; more than this are clustered per view.

    Argument, then ``ESTATES_MAP_GRID_THRESHOLD``, then 20,000.
    """
    return _threshold(value, GRID_THRESHOLD_ENV, DEFAULT_GRID_THRESHOLD)


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
    """The payload's data: everything a popup shows, as columns built from the frame's.

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


# -- the binary format ------------------------------------------------------------------------


class _Writer:
    """Columns appended to one buffer, each at a multiple of 8 bytes (typed-array views)."""

    def __init__(self) -> None:
        self.columns: list[dict[str, Any]] = []
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, data: bytes, **description: Any) -> int:
        self.columns.append({"offset": self.size, "bytes": len(data), **description})
        self.chunks.append(data)
        self.size += len(data)
        pad = -self.size % _ALIGN
        if pad:
            self.chunks.append(b"\0" * pad)
            self.size += pad
        return len(self.columns) - 1

    def ints(self, values: np.ndarray) -> int:
        """An integer column, stored unsigned after subtracting the least value.

        Where the steps from one value to the next fit a narrower type (ids in file
        order), the steps are stored instead (``delta``). ``out`` says whether every
        value fits a 32-bit integer; larger ones are exact up to 2**53.
        """
        numbers = np.asarray(values, dtype=np.int64).reshape(-1)
        n = len(numbers)
        if not n:
            return self.add(b"", type="u1", count=0, base=0, out="i4")
        low, high = int(numbers.min()), int(numbers.max())
        if low < -_EXACT_FLOAT or high > _EXACT_FLOAT:
            raise ValueError(
                f"integer column holds {low}..{high}, beyond what a browser holds exactly"
            )
        out = "i4" if _INT32[0] <= low and high <= _INT32[1] else "f8"
        candidates = [(numbers - low, {"base": low})]
        if n > 1:
            steps = np.diff(numbers, prepend=numbers[0])
            step_low = int(steps.min())
            candidates.append((steps - step_low, {"base": step_low, "delta": int(numbers[0])}))
        best: tuple[np.ndarray, str, dict[str, Any]] | None = None
        for stored, extra in candidates:
            span = int(stored.max())
            for name, dtype in _UNSIGNED:
                if span <= np.iinfo(dtype).max:
                    if best is None or dtype.itemsize < np.dtype(f"<{best[1]}").itemsize:
                        best = (stored.astype(dtype), name, extra)
                    break
        if best is None:  # spans beyond 32 bits: the values as doubles
            return self.add(numbers.astype("<f8").tobytes(), type="f8", count=n, base=0, out="f8")
        stored, name, extra = best
        return self.add(stored.tobytes(), type=name, count=n, out=out, **extra)

    def texts(self, values: list[str]) -> dict[str, int]:
        """A text column: the strings joined as UTF-8, and each one's length.

        Lengths count UTF-16 code units, which is what JavaScript slices by. A lone
        surrogate (undecodable source bytes) travels as "?", one unit for one.
        """
        joined = "".join(values)
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
        if not joined.isascii() and _ASTRAL.search(joined):
            lengths += np.fromiter(
                (len(_ASTRAL.findall(v)) for v in values), dtype=np.int64, count=len(values)
            )
        text = self.add(joined.encode("utf-8", errors="replace"), type="utf8")
        return {"$text": text, "lengths": self.ints(lengths)}


def _is_texts(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) >= TEXT_COLUMN_MIN
        and all(type(v) is str for v in value)
    )


def _lay_out(value: Any, writer: _Writer) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biu":
            raise TypeError(f"payload holds a {value.dtype} array; only integer arrays are columns")
        return {"$int": writer.ints(value)}
    if isinstance(value, dict):
        return {k: _lay_out(v, writer) for k, v in value.items()}
    if _is_texts(value):
        return writer.texts(value)
    if isinstance(value, list | tuple):
        return [_lay_out(v, writer) for v in value]
    return value


def encode(data: dict[str, Any]) -> bytes:
    """The payload's binary form: header length (4 bytes), JSON header, padded columns.

    The header holds the data with each column replaced by a reference
    (``{"$int": k}``, or ``{"$text": k, "lengths": j}``) and the list of columns (byte
    offset from the start of the columns, type, count).
    """
    writer = _Writer()
    laid_out = _lay_out(data, writer)
    header = json.dumps(
        {"columns": writer.columns, "data": laid_out}, separators=(",", ":"), allow_nan=False
    ).encode("ascii")
    start = 4 + len(header)
    pad = -start % _ALIGN
    return len(header).to_bytes(4, "little") + header + b" " * pad + b"".join(writer.chunks)


def _read_ints(body: memoryview, column: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(f"<{column['type']}")
    stored = np.frombuffer(body, dtype=dtype, count=column["count"], offset=column["offset"])
    values = stored.astype(np.int64) + int(column["base"])
    if "delta" in column:
        values = np.cumsum(values) + int(column["delta"])
    return values


def decode(raw: bytes) -> dict[str, Any]:
    """The inverse of :func:`encode`, columns as lists (for tests and for tools)."""
    size = int.from_bytes(raw[:4], "little")
    header = json.loads(raw[4 : 4 + size].decode("ascii"))
    start = 4 + size + (-(4 + size) % _ALIGN)
    body = memoryview(raw)[start:]
    columns = header["columns"]

    def back(value: Any) -> Any:
        if isinstance(value, dict) and "$int" in value:
            return _read_ints(body, columns[value["$int"]]).tolist()
        if isinstance(value, dict) and "$text" in value:
            column = columns[value["$text"]]
            text = bytes(body[column["offset"] : column["offset"] + column["bytes"]])
            units = text.decode("utf-8").encode("utf-16-le")
            ends = np.cumsum(_read_ints(body, columns[value["lengths"]])) * 2
            starts = np.concatenate([[0], ends[:-1]])
            return [units[a:b].decode("utf-16-le") for a, b in zip(starts, ends, strict=True)]
        if isinstance(value, dict):
            return {k: back(v) for k, v in value.items()}
        if isinstance(value, list):
            return [back(v) for v in value]
        return value

    result: dict[str, Any] = back(header["data"])
    return result


def pack(data: dict[str, Any]) -> str:
    """:func:`encode`, deflated (gzip), base64: only ``[A-Za-z0-9+/=]``, so nothing to escape."""
    packed = gzip.compress(encode(data), compresslevel=COMPRESS_LEVEL, mtime=0)
    return base64.b64encode(packed).decode("ascii")


def unpack(text: str) -> dict[str, Any]:
    """The inverse of :func:`pack`, columns as lists (for tests and for tools)."""
    return decode(gzip.decompress(base64.b64decode(text)))


def split(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The payload as (points, details): what is drawn, and what popups and search show."""
    points = {k: v for k, v in data.items() if k in POINT_KEYS}
    details = {k: v for k, v in data.items() if k not in POINT_KEYS}
    return points, details


def _element(element_id: str, data: dict[str, Any]) -> str:
    return (
        f'<script type="application/octet-stream" id="{element_id}" '
        f'data-encoding="estates-columns+gzip+base64">{pack(data)}</script>'
    )


def payload_html(points: SitePoints, group_keys: list[str]) -> str:
    """The packed payload as two inert script elements (points, details) the runtime unpacks."""
    drawn, details = split(payload(points, group_keys))
    return _element(POINTS_ELEMENT_ID, drawn) + _element(DATA_ELEMENT_ID, details)


_ELEMENT = re.compile(
    r'<script type="application/octet-stream" id="(estates-site-points|estates-site-data)"'
    r"[^>]*>([A-Za-z0-9+/=]*)</script>"
)


def page_payload(html: str) -> dict[str, Any] | None:
    """The payload of a saved map page (both parts, merged), or None if it has none."""
    parts = {element_id: text for element_id, text in _ELEMENT.findall(html)}
    if set(parts) != {POINTS_ELEMENT_ID, DATA_ELEMENT_ID}:
        return None
    return {**unpack(parts[POINTS_ELEMENT_ID]), **unpack(parts[DATA_ELEMENT_ID])}
