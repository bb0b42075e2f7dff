"""Reading source files as published: format sniffing, encodings, title lines, CSV rows.

A file that cannot be read raises one :class:`~estates.errors.InvalidSourceError` naming
the file and the problem (wrong format, undecodable text, truncated); a readable file
with some broken rows returns those rows separately (``CsvTable.bad_rows``) with their
row numbers and reasons, so the loader can keep them as rejected rows.

Row numbers are the spreadsheet row where a record starts (line 1 is the first line of
the file, title lines included), which is what a user sees when they open the file.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from estates.db.bulk import gc_paused
from estates.errors import CrsError, InvalidSourceError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_SNIFF_BYTES = 1 << 16
_HEADER_SCAN_LINES = 30
#: Longest CSV line we read (a 165-column ERIC row is about 3 KB). A longer line means the
#: file is not a table (or has no line ends), and reading it whole could take any memory.
MAX_LINE_BYTES = 1 << 20

csv.field_size_limit(1 << 28)


@dataclass
class CsvTable:
    """A CSV file read as text: one string column per header field, '' for empty cells."""

    path: Path
    encoding: str
    header: list[str]
    columns: list[str]
    frame: pd.DataFrame
    row_numbers: np.ndarray
    header_row: int
    bad_rows: list[dict[str, Any]] = field(default_factory=list)
    blank_rows: int = 0


def source_error(path: str | os.PathLike[str], problem: str) -> InvalidSourceError:
    return InvalidSourceError(f"{os.fspath(path)}: {problem}")


def check_file(path: str | os.PathLike[str]) -> Path:
    """The path as a ``Path`` if it is a readable, non-empty file; a clear error otherwise."""
    p = Path(path)
    if not p.exists():
        raise source_error(p, "no such file")
    if p.is_dir():
        raise source_error(p, "is a folder, not a file")
    if p.stat().st_size == 0:
        raise source_error(p, "the file is empty")
    return p


def sniff(path: str | os.PathLike[str]) -> str:
    """What a file really is, from its first bytes and its name.

    One of ``csv``, ``geojson``, ``topojson``, ``json``, ``gpkg``, ``shapefile``, ``zip``,
    ``xlsx``, ``binary``.
    """
    p = check_file(path)
    with open(p, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    suffix = p.suffix.lower()
    if head.startswith(b"SQLite format 3\x00"):
        return "gpkg"
    if head.startswith(b"PK\x03\x04"):
        return "xlsx" if suffix in (".xlsx", ".xlsm", ".ods") else "zip"
    if head[:4] == b"\x00\x00\x27\x0a" or suffix == ".shp":
        return "shapefile"
    if head.startswith((b"\xd0\xcf\x11\xe0", b"%PDF", b"\x89PNG", b"\x1f\x8b", b"\xff\xd8\xff")):
        return "binary"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] in (b"{", b"["):
        if re.search(rb'"type"\s*:\s*"Topology"', head):
            return "topojson"
        if re.search(rb'"type"\s*:\s*"(FeatureCollection|Feature)"', head):
            return "geojson"
        return "json"
    if not head.startswith((b"\xff\xfe", b"\xfe\xff")) and b"\x00" in head:
        return "utf16" if _looks_like_utf16(head) else "binary"
    return "csv"


def _looks_like_utf16(head: bytes) -> bool:
    """Text saved as UTF-16 without a byte-order mark: a NUL beside almost every ASCII byte."""
    even, odd = head[0::2], head[1::2]
    for zeros, text in ((odd, even), (even, odd)):
        if len(zeros) >= 2 and zeros.count(0) >= 0.9 * len(zeros) and 0 not in text[:-1]:
            return True
    return False


def describe_format(kind: str) -> str:
    return {
        "xlsx": "an Excel/OpenDocument workbook (save the sheet as CSV)",
        "zip": "a ZIP archive",
        "gpkg": "a GeoPackage/SQLite database",
        "shapefile": "a shapefile",
        "binary": "a binary file",
        "utf16": "UTF-16 text with no byte-order mark (re-save it as UTF-8)",
        "geojson": "GeoJSON",
        "topojson": "TopoJSON",
        "json": "JSON that is not GeoJSON",
        "csv": "CSV text",
    }.get(kind, kind)


def require_csv(path: str | os.PathLike[str], what: str) -> None:
    """Fail clearly when a CSV loader is handed something else."""
    kind = sniff(path)
    if kind != "csv":
        raise source_error(
            path, f"is {describe_format(kind)}, not the CSV {what} this loader reads"
        )


# --- encodings -------------------------------------------------------------------------


def _line_of(path: Path, offset: int) -> int:
    """The line number of a byte offset (lines end in LF, CRLF, or CR alone)."""
    with open(path, "rb") as handle:
        before = handle.read(offset)
    return (before.count(b"\n") or before.count(b"\r")) + 1


#: Encodings in which every ASCII byte is itself, with no state to carry across chunks.
_ASCII_SUPERSETS = frozenset({"utf-8", "utf-8-sig", "cp1252", "iso8859-1", "ascii"})


def _decodes(path: Path, encoding: str, skip: int = 0) -> tuple[bool, int]:
    """Whether the whole file decodes; else the byte offset of the first bad byte."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    done = 0
    with open(path, "rb") as handle:
        handle.seek(skip)
        done = skip
        ascii_compatible = codecs.lookup(encoding).name in _ASCII_SUPERSETS
        while chunk := handle.read(_CHUNK):
            if ascii_compatible and chunk.isascii() and not decoder.getstate()[0]:
                done += len(chunk)  # plain ASCII decodes; checking that is 10x faster
                continue
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                return False, done + error.start
            done += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as error:
            return False, done + error.start
    return True, -1


def detect_encoding(path: str | os.PathLike[str], declared: str | None = None) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252; or fail clearly.

    ``declared`` (from a profile or option) is checked, not trusted blindly.
    """
    p = Path(path)
    with open(p, "rb") as handle:
        head = handle.read(4)
    if declared:
        try:
            codecs.lookup(declared)
        except LookupError:
            raise source_error(p, f"unknown text encoding {declared!r}") from None
        ok, offset = _decodes(p, declared)
        if not ok:
            raise source_error(
                p,
                f"line {_line_of(p, offset)} (byte {offset}) is not valid {declared} text; "
                "check the encoding given in the profile or option",
            )
        return declared
    if head.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8", "cp1252"]
    first_bad = -1
    for encoding in candidates:
        ok, offset = _decodes(p, encoding)
        if ok:
            if encoding == "cp1252":
                log.info("%s is not UTF-8; reading it as Windows-1252", p)
            return encoding
        if first_bad < 0:
            first_bad = offset
    raise source_error(
        p,
        f"cannot decode the text at line {_line_of(p, first_bad)} (byte {first_bad}): it is "
        f"neither {' nor '.join(candidates)}; re-save the file as UTF-8 CSV",
    )


# --- CSV -------------------------------------------------------------------------------


def check_line_lengths(path: str | os.PathLike[str], limit: int = MAX_LINE_BYTES) -> None:
    """Fail before parsing when a line is longer than ``limit`` bytes.

    Reads binary chunks of ``limit`` bytes (so a line inside one chunk is never too long)
    and only looks for line ends: a 100 MB file with no line end costs one pass and no
    more memory than a chunk.
    """
    p = Path(path)
    line_start = 0  # file offset where the current line began
    done = 0
    with open(p, "rb") as handle:
        while chunk := handle.read(limit):
            # Line ends are looked for only where needed: a full scan of every chunk for a
            # "\r" that an LF file never has was most of this check's time.
            first = chunk.find(b"\n")
            cr = chunk.find(b"\r", 0, first if first >= 0 else len(chunk))
            first = cr if cr >= 0 else first
            end = done + (first if first >= 0 else len(chunk))
            if end - line_start > limit:
                raise source_error(
                    p,
                    f"line {_line_of(p, line_start)} is longer than {_size(limit)} with no "
                    "line end: this is not a CSV table (or its line ends were lost); export "
                    "the file again",
                )
            if first >= 0:
                last = chunk.rfind(b"\n")
                last = max(last, chunk.rfind(b"\r", last + 1))
                line_start = done + last + 1
            done += len(chunk)


def _size(n_bytes: int) -> str:
    return f"{n_bytes / (1 << 20):g} MB" if n_bytes >= 1 << 20 else f"{n_bytes:,} bytes"


def delimiter_hint(fields: Sequence[str]) -> str:
    """A sentence naming the separator a one-field header line really uses, if any."""
    if len(fields) != 1:
        return ""
    for separator, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|' characters")):
        if fields[0].count(separator) >= 2:
            return (
                f"; the values are separated by {name}, not commas: save the file as "
                "comma-separated CSV"
            )
    return ""


def unique_names(header: Sequence[str]) -> list[str]:
    """Header names made unique: a repeated name gets `` (2)``, `` (3)``... ; blanks get ``column N``."""
    seen: dict[str, int] = {}
    out = []
    for n, name in enumerate(header, start=1):
        name = name or f"column {n}"
        count = seen.get(name, 0) + 1
        seen[name] = count
        out.append(name if count == 1 else f"{name} ({count})")
    return out


def _clean_header(fields: Sequence[str]) -> list[str]:
    cleaned = [f.replace("\ufeff", "").strip() for f in fields]
    while cleaned and cleaned[-1] == "":
        cleaned.pop()
    return cleaned


def find_header_row(
    lines: list[list[str]], score: Callable[[list[str]], int] | None, min_score: int
) -> int:
    """Index of the header among the first lines: the first best-scoring line.

    Title lines above the header (a council name, a date) score nothing, so they are
    skipped. Without a scorer the first non-empty line is the header.
    """
    best, best_score = -1, min_score - 1
    for n, fields in enumerate(lines):
        cleaned = _clean_header(fields)
        if not cleaned:
            continue
        if score is None:
            return n
        s = score(cleaned)
        if s > best_score:
            best, best_score = n, s
    return best


def _quote_count_is_odd(path: Path) -> bool:
    count = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            count += chunk.count(b'"')
    return count % 2 == 1


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) in (b"\n", b"\r")


def read_csv_table(
    path: str | os.PathLike[str],
    *,
    what: str,
    score: Callable[[list[str]], int] | None = None,
    min_score: int = 1,
    header_row: int | None = None,
    encoding: str | None = None,
    header_hint: str = "",
) -> CsvTable:
    """Read a CSV with its header found below any title lines; every cell as text.

    Parameters
    ----------
    what
        What the file should be, for messages (``"council asset register"``).
    score
        Scores a candidate header line (e.g. the number of known column names in it);
        the first best line among the first 30 with at least ``min_score`` is the header.
    header_row
        1-based line of the header, when the caller knows it (from a profile).
    header_hint
        Appended to the "no header" message: which columns were looked for.
    """
    p = check_file(path)
    require_csv(p, what)
    check_line_lengths(p)
    enc = detect_encoding(p, encoding)
    with open(p, encoding=enc, newline="") as handle:
        head_lines = list(_take(csv.reader(handle), _HEADER_SCAN_LINES))
    if header_row is not None:
        if not 1 <= header_row <= len(head_lines):
            raise source_error(p, f"header row {header_row} is beyond the start of the file")
        header_index = header_row - 1
    else:
        header_index = find_header_row(head_lines, score, min_score)
    if header_index < 0:
        first = _clean_header(head_lines[0]) if head_lines else []
        raise source_error(
            p,
            f"no header row of a {what} found in the first {_HEADER_SCAN_LINES} lines "
            f"(first line: {', '.join(first[:8])[:200] or 'empty'})"
            f"{delimiter_hint(first) or header_hint}",
        )
    header = _clean_header(head_lines[header_index])
    columns = unique_names(header)
    ncols = len(header)

    with gc_paused():
        return _read_records(p, enc, header_index, header, columns, ncols)


def _read_records(
    p: Path, enc: str, header_index: int, header: list[str], columns: list[str], ncols: int
) -> CsvTable:
    good: list[list[str]] = []
    numbers: list[int] = []
    bad: list[dict[str, Any]] = []
    blank = 0
    last: tuple[int, list[str]] = (0, [])
    with open(p, encoding=enc, newline="") as handle:
        reader = csv.reader(handle, strict=False)
        previous_line = 0
        header_line = 0
        for n, record in enumerate(reader):
            start = previous_line + 1
            previous_line = reader.line_num
            if n < header_index:
                continue
            if n == header_index:
                header_line = start
                continue
            last = (start, record)
            width = len(record)
            if width == ncols and (record[0].strip() or "".join(record).strip()):
                good.append(record)  # the usual row: as wide as the header, not blank
                numbers.append(start)
                continue
            if not "".join(record).strip():
                blank += 1
                continue
            if width > ncols and "".join(record[ncols:]).strip():
                bad.append(
                    {
                        "row_number": start,
                        "reason": f"row has {width} fields but the header has {ncols}; "
                        "a value probably contains an unquoted comma",
                        "raw": {
                            **dict(zip(columns, record, strict=False)),
                            "extra": record[ncols:],
                        },
                    }
                )
                continue
            if width < ncols:
                bad.append(
                    {
                        "row_number": start,
                        "reason": f"row has {width} fields but the header has {ncols}",
                        "raw": dict(zip(columns, record, strict=False)),
                    }
                )
                continue
            good.append(record[:ncols])
            numbers.append(start)
    _check_not_truncated(p, last, ncols)
    if not good and not bad:
        raise source_error(
            p,
            f"has a header (row {header_line}) but no data rows: nothing to load; check the "
            "export or download it again",
        )
    if good:
        # Every kept record has exactly ncols cells, so numpy makes one 2-D array of them:
        # five times faster than transposing the records and building column by column.
        cells = np.empty((len(good), ncols), dtype=object)
        cells[:] = good
        frame = pd.DataFrame(cells, columns=columns, dtype=object, copy=False)
    else:
        frame = pd.DataFrame({col: pd.Series(dtype=object) for col in columns})
    return CsvTable(
        path=p,
        encoding=enc,
        header=header,
        columns=columns,
        frame=frame,
        row_numbers=np.asarray(numbers, dtype=np.int64),
        header_row=header_line,
        bad_rows=bad,
        blank_rows=blank,
    )


def _take(reader: Any, n: int) -> list[list[str]]:
    out = []
    try:
        for _ in range(n):
            out.append(next(reader))
    except StopIteration:
        pass
    return out


def _check_not_truncated(p: Path, last: tuple[int, list[str]], ncols: int) -> None:
    """A cut-off file fails whole: its last row is short with no line end, or a quote never closes."""
    row, record = last
    if not record:
        return
    if len(record) < ncols and any(v.strip() for v in record) and not _ends_with_newline(p):
        raise source_error(
            p,
            f"the file is truncated: its last row, row {row}, stops after {len(record)} of "
            f"{ncols} fields with no line end; download it again",
        )
    if any("\n" in v or "\r" in v for v in record) and _quote_count_is_odd(p):
        raise source_error(
            p,
            f"the file is truncated or has an unclosed quote: the quoted value opened on row "
            f"{row} never closes; download it again or fix the quoting",
        )


# --- vector files ----------------------------------------------------------------------


def read_vector(
    path: str | os.PathLike[str], *, what: str, layer: str | None = None
) -> gpd.GeoDataFrame:
    """GeoJSON, TopoJSON, GeoPackage or shapefile as a GeoDataFrame with a known CRS."""
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    p = check_file(path)
    kind = sniff(p)
    if kind in ("xlsx", "binary", "utf16", "json", "csv"):
        raise source_error(p, f"is {describe_format(kind)}, not a {what}")
    if kind == "topojson" and re.search(rb'"objects"\s*:\s*\{\s*\}', read_head(p)):
        raise source_error(p, "is a TopoJSON with no objects (no layers): export it again")
    try:
        layers = pyogrio.list_layers(p)
    except (DataSourceError, DataLayerError, OSError) as error:
        raise source_error(
            p, f"cannot be read as {describe_format(kind)}: {_first_line(error)}"
        ) from None
    names = [str(n) for n in layers[:, 0]]
    if not names:
        raise source_error(p, f"has no layers: it holds no {what}")
    if layer is None and len(names) > 1 and kind != "topojson":
        raise source_error(
            p, f"has {len(names)} layers ({', '.join(names)}); choose one with --layer"
        )
    if layer is not None and layer not in names:
        raise source_error(p, f"has no layer {layer!r}; its layers are {', '.join(names)}")
    chosen = layer or names[0]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # A feature whose geometry GEOS cannot build (a ring that does not close) is
            # read as missing, with GDAL's reason logged, not a crash of the whole file.
            frame = pyogrio.read_dataframe(p, layer=chosen, on_invalid="warn")
        for warning in caught:  # GDAL's complaints about single features, as log lines
            log.warning("%s: %s", p, _first_line(Exception(str(warning.message))))
    except (DataSourceError, DataLayerError, OSError, ValueError) as error:
        raise source_error(
            p,
            f"cannot be read as {describe_format(kind)} (truncated or damaged?): {_first_line(error)}",
        ) from None
    if len(frame) == 0:
        raise source_error(p, f"layer {chosen!r} has no features: nothing to load")
    if frame.crs is None:
        if kind == "topojson" and _topojson_is_lonlat(p, frame):
            frame = frame.set_crs("EPSG:4326")
        else:
            raise CrsError(
                f"{p}: layer {chosen!r} has no coordinate reference system; add one (a .prj "
                "file for a shapefile) or reproject it with QGIS/ogr2ogr before loading"
            )
    elif frame.crs.is_geographic and not _within_lonlat(frame):
        raise CrsError(
            f"{p}: layer {chosen!r} says its coordinates are longitude/latitude "
            f"({frame.crs.name}) but they reach {_bounds_text(frame)}, so they are in another "
            "system (National Grid metres?); GeoJSON must be WGS84: reproject it to EPSG:4326, "
            "or save it as a GeoPackage with its real CRS"
        )
    return frame


def _within_lonlat(frame: gpd.GeoDataFrame) -> bool:
    minx, miny, maxx, maxy = frame.total_bounds
    if not np.isfinite([minx, miny, maxx, maxy]).all():
        return True  # no coordinates at all: nothing to judge
    return bool(-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90)


def _bounds_text(frame: gpd.GeoDataFrame) -> str:
    minx, miny, maxx, maxy = frame.total_bounds
    return f"x {minx:,.0f}..{maxx:,.0f}, y {miny:,.0f}..{maxy:,.0f}"


def read_head(p: Path, n_bytes: int = _SNIFF_BYTES) -> bytes:
    with open(p, "rb") as handle:
        return handle.read(n_bytes)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _topojson_is_lonlat(p: Path, frame: gpd.GeoDataFrame) -> bool:
    """TopoJSON carries no CRS in GDAL's reading; accept WGS84 when the file says so
    (a ``crs`` member naming CRS84/EPSG:4326) or, as the format's convention, when every
    coordinate is a longitude/latitude."""
    with open(p, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if re.search(rb"CRS84|EPSG:+4326|EPSG::4326", head):
        return True
    minx, miny, maxx, maxy = frame.total_bounds
    return bool(-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90)


def read_text_head(path: str | os.PathLike[str], n_bytes: int = _SNIFF_BYTES) -> str:
    """The decoded start of a text file (for format detection), BOM removed."""
    with open(path, "rb") as handle:
        raw = handle.read(n_bytes)
    return (
        io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", errors="replace")
        .read()
        .lstrip("\ufeff")
    )
