"""Postcode lookups: ONSPD, Code-Point Open, or ``postcode,latitude,longitude`` files.

The layout is detected from the header (or, for Code-Point Open, from its headerless
rows). Postcodes are normalised (``M6   8HD`` -> ``M6 8HD``) and stored with National
Grid easting/northing (``postcode`` table). Rows with no usable coordinates (ONSPD marks
them with a ``99.999999`` latitude or an empty grid reference) are rejected with that
reason. Northern Ireland (``BT``) rows use latitude/longitude, because ONSPD gives their
grid reference on the Irish Grid.

After the table is written, every site that was unlocated, or located by postcode, is
(re)located from it: loading a lookup after the sites locates them too.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import time
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely
from pandas.errors import ParserError
from sqlalchemy import text

from estates.db import postcodes as db_postcodes
from estates.db import store
from estates.errors import MissingColumnError
from estates.ingest import _parse, _read, coordinates, footprints
from estates.ingest.report import LoadReport, progress_bar

if TYPE_CHECKING:
    from tqdm import tqdm

    from estates.estate import Batch, Estate

log = logging.getLogger(__name__)

LOADER = "postcodes"

SYNONYMS: dict[str, tuple[str, ...]] = {
    "postcode": ("pcds", "postcode", "pcd", "pcd2", "post code", "postal code", "postcode spaced"),
    "easting": ("oseast1m", "easting", "eastings", "os easting", "x"),
    "northing": ("osnrth1m", "northing", "northings", "os northing", "y"),
    "latitude": ("lat", "latitude"),
    "longitude": ("long", "longitude", "lon", "lng"),
}
_POSTCODE_LIKE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?\s*[0-9][A-Z]{2}$", re.IGNORECASE)
_CODEPOINT_COLUMNS = 10
#: Reasons to reject a row whose latitude/longitude are present but unusable. A lookup is
#: a reference table, so a suspicious pair is rejected rather than guessed at.
_LATLON_PROBLEMS = {
    coordinates.SWAPPED: "latitude and longitude are the wrong way round",
    coordinates.BNG_AS_LONLAT: "the latitude/longitude columns hold National Grid metres",
    coordinates.NOT_NUMERIC: "latitude or longitude is not a number",
}


@dataclass
class PostcodeRows:
    """A lookup file parsed: accepted rows and rejected ones."""

    kind: str
    frame: pd.DataFrame  # postcode, easting, northing
    rejected: list[dict[str, Any]]
    rows_read: int


def _detect(head_lines: list[list[str]]) -> tuple[str, int]:
    """(layout, header line index): ``onspd``, ``codepoint`` (no header) or ``generic``."""
    for n, fields in enumerate(head_lines[:10]):
        found = _parse.match_columns(fields, SYNONYMS)
        if "postcode" in found and (
            {"easting", "northing"} <= found.keys() or {"latitude", "longitude"} <= found.keys()
        ):
            keys = {_parse.normalise_header(f) for f in fields}
            return ("onspd" if {"oseast1m", "osnrth1m"} <= keys else "generic"), n
    first = head_lines[0] if head_lines else []
    if (
        len(first) >= 4
        and _POSTCODE_LIKE.match(first[0].strip() or "-")
        and first[2].strip().lstrip("-").isdigit()
        and first[3].strip().lstrip("-").isdigit()
    ):
        return "codepoint", -1
    return "", -1


def _read_columns(
    handle_or_path: Any,
    header_index: int,
    usecols: list[str] | None,
    names: list[str] | None,
    numeric: Sequence[str] = (),
) -> pd.DataFrame:
    """The columns as text, or with ``numeric`` ones already parsed as floats.

    Parsing the coordinate columns in the CSV reader is three times faster than reading
    text and converting it; a column with any text that is not a plain number (``1,234``,
    ``n/a``) makes the whole read fall back to text, which the usual cleaning handles.
    """
    options: dict[str, Any] = {
        "header": None if header_index < 0 else 0,
        "skiprows": max(header_index, 0),
        "names": names,
        "usecols": usecols,
        "keep_default_na": False,
        "skip_blank_lines": False,
        "engine": "c",
    }
    if numeric:
        seekable = not hasattr(handle_or_path, "seek") or handle_or_path.seekable()
        start = handle_or_path.tell() if hasattr(handle_or_path, "tell") and seekable else None
        try:
            return pd.read_csv(
                handle_or_path,
                dtype=defaultdict(lambda: "object", {c: "float64" for c in numeric}),
                na_values=[""],
                **options,
            )
        except ValueError:
            if not seekable:
                raise
            if start is not None:
                handle_or_path.seek(start)
    return pd.read_csv(handle_or_path, dtype=object, na_filter=False, **options)


def parse_postcode_file(path: str | os.PathLike[str]) -> PostcodeRows:
    """Read a postcode lookup (CSV, or a Code-Point Open ZIP) without touching the database."""
    p = _read.check_file(path)
    kind = _read.sniff(p)
    if kind == "zip":
        return _parse_codepoint_zip(p)
    if kind != "csv":
        raise _read.source_error(
            p,
            f"is {_read.describe_format(kind)}, not a CSV postcode lookup (ONSPD, Code-Point Open)",
        )
    _read.check_line_lengths(p)
    encoding = _read.detect_encoding(p)
    with open(p, encoding=encoding, newline="") as handle:
        head = [row for _, row in zip(range(12), csv.reader(handle), strict=False)]
    layout, header_index = _detect(head)
    if not layout:
        first = ", ".join(head[0][:8])[:200] if head else "empty"
        raise MissingColumnError(
            f"{p}: not a postcode lookup: expected a postcode column (pcds, postcode) with "
            "oseast1m/osnrth1m, easting/northing or latitude/longitude columns, or Code-Point "
            f"Open rows; first line: {first}{_read.delimiter_hint(head[0] if head else [])}"
        )
    if layout == "codepoint":
        names = [f"c{i}" for i in range(_CODEPOINT_COLUMNS)]
        try:
            raw = _read_columns(p, -1, ["c0", "c2", "c3"], names, numeric=["c2", "c3"])
        except ParserError as error:
            raise _read.source_error(p, f"not a Code-Point Open CSV: {_first(error)}") from None
        frame = pd.DataFrame({"postcode": raw["c0"], "easting": raw["c2"], "northing": raw["c3"]})
        return _finish(p, "codepoint", frame, first_row=1, bad=[])
    header = head[header_index]
    found = _parse.match_columns(header, SYNONYMS)
    usecols = list(dict.fromkeys(found.values()))
    bad: list[dict[str, Any]] = []
    numeric = [found[f] for f in ("easting", "northing", "latitude", "longitude") if f in found]
    try:
        raw = _read_columns(p, header_index, usecols, None, numeric=numeric)
        first_row = header_index + 2
        row_numbers = None
    except ParserError as error:
        if "EOF inside string" in str(error):
            raise _read.source_error(
                p, "the file is truncated or has an unclosed quote near its end; download it again"
            ) from None
        # Rows with extra fields: re-read exactly, keeping them as rejected rows.
        table = _read.read_csv_table(p, what="postcode lookup", header_row=header_index + 1)
        raw = table.frame.loc[:, [table.columns[table.header.index(c)] for c in usecols]]
        raw.columns = usecols
        bad = table.bad_rows
        first_row = 0
        row_numbers = table.row_numbers
    frame = pd.DataFrame({"postcode": raw[found["postcode"]]})
    for field in ("easting", "northing", "latitude", "longitude"):
        frame[field] = raw[found[field]] if field in found else ""
    if not _read_ends_cleanly(p, len(header)):
        raise _read.source_error(
            p,
            "the file is truncated: its last row stops part-way with no line end; download it again",
        )
    return _finish(p, layout, frame, first_row=first_row, bad=bad, row_numbers=row_numbers)


def _read_ends_cleanly(p: Path, ncols: int) -> bool:
    with open(p, "rb") as handle:
        handle.seek(max(0, p.stat().st_size - 4096))
        tail = handle.read()
    if tail.endswith((b"\n", b"\r")):
        return True
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")
    fields = next(csv.reader(io.StringIO(last)), [])
    return len(fields) >= ncols


def _first(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _parse_codepoint_zip(p: Path) -> PostcodeRows:
    try:
        archive = zipfile.ZipFile(p)
    except zipfile.BadZipFile as error:
        raise _read.source_error(p, f"is a damaged ZIP archive: {error}") from None
    with archive:
        csvs = sorted(n for n in archive.namelist() if n.lower().endswith(".csv"))
        # Code-Point Open keeps its data in Data/CSV/ and column headers in Doc/.
        members = [n for n in csvs if "data/" in n.lower()] or [
            n for n in csvs if not n.lower().startswith("doc")
        ]
        if not members:
            raise _read.source_error(
                p, "the ZIP holds no CSV files (expected Code-Point Open Data/CSV/*.csv)"
            )
        names = [f"c{i}" for i in range(_CODEPOINT_COLUMNS)]
        frames = []
        try:
            for member in members:
                with archive.open(member) as handle:
                    raw = _read_columns(handle, -1, ["c0", "c2", "c3"], names, ["c2", "c3"])
                frames.append(raw)
        except (ParserError, zipfile.BadZipFile, EOFError, ValueError) as error:
            raise _read.source_error(
                p, f"cannot read {member} in the ZIP: {_first(error)}"
            ) from None
    raw = pd.concat(frames, ignore_index=True)
    frame = pd.DataFrame({"postcode": raw["c0"], "easting": raw["c2"], "northing": raw["c3"]})
    return _finish(p, "codepoint", frame, first_row=1, bad=[])


def _finish(
    p: Path,
    kind: str,
    frame: pd.DataFrame,
    *,
    first_row: int,
    bad: list[dict[str, Any]],
    row_numbers: np.ndarray | None = None,
) -> PostcodeRows:
    """Normalise postcodes, choose each row's coordinates, reject what cannot be used."""
    n = len(frame)
    numbers = (
        row_numbers
        if row_numbers is not None
        else np.arange(first_row, first_row + n, dtype=np.int64)
    )
    blank = np.ones(n, dtype=bool)
    for column in frame.columns:
        values = frame[column]
        empty = values.isna() if values.dtype.kind == "f" else values == ""
        blank &= empty.to_numpy(dtype=bool)
    if blank.any():
        frame = frame.loc[~blank].reset_index(drop=True)
        numbers = numbers[~blank]
    n = len(frame)
    if n == 0 and not bad:
        raise _read.source_error(
            p, "has no postcode rows: nothing to load; check the export or download it again"
        )
    postcode, valid = _parse.postcode_parts(frame["postcode"])
    easting = np.full(n, np.nan)
    northing = np.full(n, np.nan)
    # Valid postcodes are at most 8 characters: as fixed-width text numpy compares them in C.
    valid_keys = postcode[valid].astype(str)
    northern_ireland = np.zeros(n, dtype=bool)
    northern_ireland[valid] = np.char.startswith(valid_keys, "BT")
    if "easting" in frame:
        e, _ = _parse.parse_numbers(frame["easting"])
        nn, _ = _parse.parse_numbers(frame["northing"])
        grid = coordinates.check_coordinates(e, nn, coordinates.BNG)
        use_grid = (grid.status == coordinates.OK) & ~northern_ireland
        easting[use_grid] = grid.easting[use_grid]
        northing[use_grid] = grid.northing[use_grid]
    need = np.isnan(easting)
    why = np.full(n, None, dtype=object)  # why a row's latitude/longitude were not used
    if "latitude" in frame and need.any():
        lat, lat_bad = _parse.parse_numbers(frame["latitude"].to_numpy()[need])
        lon, lon_bad = _parse.parse_numbers(frame["longitude"].to_numpy()[need])
        ll = coordinates.check_coordinates(lon, lat, coordinates.LONLAT)
        ok = ll.status == coordinates.OK
        idx = np.flatnonzero(need)[ok]
        easting[idx] = ll.easting[ok]
        northing[idx] = ll.northing[ok]
        status = np.where(lat_bad | lon_bad, coordinates.NOT_NUMERIC, ll.status)
        why[need] = [_LATLON_PROBLEMS.get(s) for s in status]
    has_xy = ~np.isnan(easting)
    duplicate = _repeats(valid_keys, valid)
    reject = ~valid | ~has_xy | duplicate
    rejected = list(bad)
    if reject.any():
        first_row_of = pd.Series(numbers[valid & ~duplicate], index=postcode[valid & ~duplicate])
        records = _as_published(frame.loc[reject])
        for i, record in zip(np.flatnonzero(reject), records, strict=True):
            if not valid[i]:
                reason = f"{record['postcode']!r} is not a full postcode"
            elif duplicate[i]:
                reason = (
                    f"postcode {postcode[i]} repeats row {int(first_row_of.get(postcode[i], 0))}"
                )
            elif why[i] is not None:
                reason = f"{why[i]}; fix the row"
            else:
                reason = "no usable coordinates (no grid reference, or outside Great Britain)"
            rejected.append({"row_number": int(numbers[i]), "reason": reason, "raw": record})
    keep = ~reject
    out = pd.DataFrame(
        {"postcode": postcode[keep], "easting": easting[keep], "northing": northing[keep]}
    )
    return PostcodeRows(kind, out, rejected, n + len(bad))


def _as_published(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as the file's text: a coordinate column read as numbers gives back its cells
    (an empty cell was NaN; ``418625.0`` was written ``418625``)."""
    out = rows.astype(object)
    for column in rows.columns:
        if rows[column].dtype.kind == "f":
            out[column] = [
                "" if v != v else (repr(v)[:-2] if repr(v).endswith(".0") else repr(v))
                for v in rows[column].tolist()
            ]
    return [{str(k): v for k, v in row.items()} for row in out.to_dict("records")]


def _repeats(keys: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """True for each valid postcode (``keys``: the valid ones as text) seen on an earlier row.

    Sorting the postcodes as fixed-width text (numpy, in C) and comparing neighbours is
    several times faster than hashing 2.6 million Python strings; the stable sort keeps
    the first row of each postcode first, so only the later ones are marked.
    """
    idx = np.flatnonzero(valid)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    later = np.zeros(len(idx), dtype=bool)
    later[1:] = ordered[1:] == ordered[:-1]
    out = np.zeros(len(valid), dtype=bool)
    out[idx[order[later]]] = True
    return out


def _relocate_sites(batch: Batch) -> dict[str, int]:
    """Locate unlocated sites (and move postcode-located ones) from the updated table."""
    connection = batch.connection
    candidates = pd.DataFrame(
        connection.execute(
            text(
                "SELECT id, postcode, located_by FROM site WHERE non_geographic = :false "
                "AND located_by IN ('none', 'postcode') AND postcode IS NOT NULL"
            ),
            {"false": False},
        ).fetchall(),
        columns=["id", "postcode", "located_by"],
    )
    if candidates.empty:
        return {"sites_located": 0, "sites_moved": 0, "sites_unmatched": 0}
    found = db_postcodes.lookup(connection, candidates["postcode"].tolist()).set_index("postcode")
    candidates["e"] = candidates["postcode"].map(found["easting"])
    candidates["n"] = candidates["postcode"].map(found["northing"])
    matched = candidates[candidates["e"].notna()]
    unmatched = int(((candidates["located_by"] == "none") & candidates["e"].isna()).sum())
    if matched.empty:
        return {"sites_located": 0, "sites_moved": 0, "sites_unmatched": unmatched}
    sites = store.read_sites(connection)
    sites = sites[sites["site_id"].isin(matched["id"])].copy()
    by_id = matched.set_index("id")
    e = sites["site_id"].map(by_id["e"]).to_numpy(dtype="float64")
    n = sites["site_id"].map(by_id["n"]).to_numpy(dtype="float64")
    sites = sites.set_geometry(shapely.points(e, n)).set_crs(sites.crs, allow_override=True)
    was_none = (sites["located_by"] == "none").to_numpy()
    sites["located_by"] = "postcode"
    result = store.write_sites(connection, sites, batch.id)
    touched = [result.site_ids[k] for k in result.updated]
    if touched:
        footprints.assign_footprints(connection, site_ids=touched)
    updated = set(result.updated)
    keys = sites["source_key"].to_numpy()
    located = int(sum(1 for k, w in zip(keys, was_none, strict=True) if w and k in updated))
    moved = int(sum(1 for k, w in zip(keys, was_none, strict=True) if not w and k in updated))
    return {"sites_located": located, "sites_moved": moved, "sites_unmatched": unmatched}


def load_postcodes(
    estate: Estate, path: str | os.PathLike[str], *, progress: bool = False
) -> LoadReport:
    """Load a postcode lookup, then locate the sites it can.

    Returns a report whose ``inserted``/``updated``/``unchanged``/``rejected`` count
    postcode rows, with ``sites_located`` (newly located sites), ``sites_moved`` and
    ``sites_unmatched`` (sites whose postcode is still not in the table) in ``extra``.
    """
    started = time.perf_counter()
    bar = progress_bar(4, "postcodes", progress)
    bar.set_postfix_str("reading")
    parsed = parse_postcode_file(path)
    bar.update(1)
    return write_postcodes(estate, path, parsed, started=started, bar=bar)


def write_postcodes(
    estate: Estate,
    path: str | os.PathLike[str],
    parsed: PostcodeRows,
    *,
    started: float,
    bar: tqdm,
    sha256: str | None = None,
) -> LoadReport:
    """Write a parsed lookup in one load batch, locate sites, report (``started``: elapsed_s)."""
    source = Path(path).name
    with estate.batch(LOADER, path, {"layout": parsed.kind}, sha256=sha256) as batch:
        batch.counts["rows_read"] = parsed.rows_read
        batch.reject(parsed.rejected)
        bar.set_postfix_str("comparing")
        existing = (
            db_postcodes.read_all(batch.connection)
            if db_postcodes.count(batch.connection)
            else None
        )
        n = len(parsed.frame)
        if existing is None or existing.empty:
            new = np.ones(n, dtype=bool)
            same = np.zeros(n, dtype=bool)
        else:
            position = pd.Index(existing["postcode"]).get_indexer(parsed.frame["postcode"])
            new = position < 0
            old_e = existing["easting"].to_numpy()[np.where(new, 0, position)]
            old_n = existing["northing"].to_numpy()[np.where(new, 0, position)]
            same = ~new & (
                (np.abs(parsed.frame["easting"].to_numpy() - old_e) <= 0.001)
                & (np.abs(parsed.frame["northing"].to_numpy() - old_n) <= 0.001)
            )
        changed = ~new & ~same
        bar.update(1)
        bar.set_postfix_str("writing")
        db_postcodes.insert(batch.connection, parsed.frame.loc[new], source)
        db_postcodes.update(batch.connection, parsed.frame.loc[changed], source)
        batch.counts["inserted"] = int(new.sum())
        batch.counts["updated"] = int(changed.sum())
        batch.counts["unchanged"] = int(same.sum())
        bar.update(1)
        bar.set_postfix_str("locating sites")
        sites = _relocate_sites(batch)
        counts = dict(batch.counts)
        batch_id = batch.id
    bar.update(1)
    bar.close()
    report = LoadReport(
        batch_id=batch_id,
        file=os.fspath(path),
        loader=LOADER,
        elapsed_s=time.perf_counter() - started,
        **counts,
        extra={"layout": parsed.kind, **sites},
    )
    report.check()
    log.info("loaded %s: %s", path, report.as_dict())
    return report
