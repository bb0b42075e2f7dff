"""Cell-level parsing shared by the loaders: numbers, postcodes, headers, names.

Everything here is vectorised over pandas Series, so a 500,000-row file costs a few
string operations per column rather than a Python call per cell.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

#: Cell texts that mean "no value" in published registers (compared lower-cased, trimmed).
NULL_TOKENS = frozenset(
    {
        "",
        "-",
        "--",
        "n/a",
        "na",
        "n.a.",
        "not applicable",
        "not available",
        "not known",
        "unknown",
        "none",
        "null",
        "nan",
        "#n/a",
        "tbc",
    }
)

_UNIT_SUFFIX = re.compile(r"\s*[\(\[][^\)\]]*[\)\]]\s*$")
_LONGEST = max(len(t) for t in NULL_TOKENS)
_NUMBER_NOISE = re.compile(r"(?i)(£|%|\s|m²|m2|sq\.?\s*m|sqm|hectares?|ha|acres?)")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


def normalise_header(text: object) -> str:
    """A header reduced to lower-case letters and digits: ``Post Code`` -> ``postcode``."""
    folded = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", folded.lower())


def match_columns(columns: Sequence[str], synonyms: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Map each canonical field to the first file column whose header is one of its synonyms.

    Synonyms are compared after :func:`normalise_header`, in the order given, so
    ``("postcode", "postcodes")`` prefers an exact ``Postcode`` column. A column is used
    for one field only (the first field, in ``synonyms`` order, that claims it).
    """
    by_key: dict[str, str] = {}
    for column in columns:
        by_key.setdefault(normalise_header(column), column)
    # Second chance: the header without a bracketed unit, "Site Area (acres)" -> "Site Area".
    by_stem: dict[str, str] = {}
    for column in columns:
        stem = normalise_header(_UNIT_SUFFIX.sub("", str(column)))
        if stem:
            by_stem.setdefault(stem, column)
    found: dict[str, str] = {}
    taken: set[str] = set()
    for lookup in (by_key, by_stem):
        for field, names in synonyms.items():
            if field in found:
                continue
            for name in names:
                match = lookup.get(normalise_header(name))
                if match is not None and match not in taken:
                    found[field] = match
                    taken.add(match)
                    break
    return found


def as_objects(values: pd.Series | np.ndarray) -> np.ndarray:
    """The cells as a numpy object array (no copy for object data)."""
    cells = (
        values.to_numpy(dtype=object)
        if isinstance(values, pd.Series)
        else np.asarray(values, dtype=object)
    )
    if pd.api.types.infer_dtype(cells, skipna=False) == "string":
        return cells  # all text (every column a CSV reader gives): nothing is missing
    missing = pd.isna(cells)
    if missing.any():
        cells = cells.copy()
        cells[missing] = None
    return cells


def is_null_text(values: pd.Series | np.ndarray) -> np.ndarray:
    """True where a text cell is empty or a null token such as ``Not Applicable``."""
    tokens = NULL_TOKENS
    cells = as_objects(values)
    try:
        flags = [
            (t := v.strip()) == "" or (len(t) <= _LONGEST and t.lower() in tokens) for v in cells
        ]
    except AttributeError:  # not all text: None, NaN or numbers among the cells
        flags = [
            v is None
            or (isinstance(v, float) and v != v)
            or (isinstance(v, str) and v.strip().lower() in tokens)
            for v in cells
        ]
    return np.asarray(flags, dtype=bool)


def _clean_number(v: object) -> object:
    """One cell's text made parseable: noise, units and thousands separators removed."""
    if not isinstance(v, str):
        return v
    text = v.strip()
    if _THOUSANDS.fullmatch(text):
        return text.replace(",", "")
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1]
    text = _NUMBER_NOISE.sub("", text)
    if _THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    return "-" + text if negative else text


def parse_numbers(values: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Published numbers to floats: thousands separators, ``£``, ``%``, units, nulls.

    Returns ``(numbers, bad)``: ``numbers`` is NaN where the cell is empty, a null
    token (``Not Applicable``) or unreadable; ``bad`` is True only where the cell held
    text that is not a number, so the caller can reject that row with a reason.
    ``(1,234)`` (accounting negative) reads as -1234. Plain numbers take a fast
    vectorised path; only the other cells are cleaned one by one.
    """
    if isinstance(values, pd.Series | np.ndarray) and values.dtype.kind == "f":
        numbers = np.asarray(values, dtype="float64").copy()  # already read as numbers
        numbers[~np.isfinite(numbers)] = np.nan
        return numbers, np.zeros(len(numbers), dtype=bool)
    cells = as_objects(values)
    codes, distinct = pd.factorize(cells)  # a missing cell (None/NaN) is -1: empty, not bad
    if len(distinct) < len(cells):
        # Each distinct text read once: an ERIC column is about 2% distinct ("Not
        # Applicable", 0, repeated figures), and to_numeric costs ~2 us a failing cell.
        read, unreadable = parse_numbers(np.asarray(distinct, dtype=object))
        known = codes >= 0
        numbers = np.full(len(cells), np.nan)
        bad = np.zeros(len(cells), dtype=bool)
        numbers[known] = read[codes[known]]
        bad[known] = unreadable[codes[known]]
        return numbers, bad
    # Here every cell is present and distinct.
    numbers = np.asarray(pd.to_numeric(cells, errors="coerce"), dtype="float64").copy()
    numbers[~np.isfinite(numbers)] = np.nan
    failed = np.flatnonzero(np.isnan(numbers))
    bad = np.zeros(len(cells), dtype=bool)
    todo = failed[~is_null_text(cells[failed])]
    if len(todo):
        # The rest ("1,234", "£5m", "(1,234)") cleaned one by one; null tokens stay empty.
        cleaned = np.asarray([_clean_number(v) for v in cells[todo]], dtype=object)
        values_read = np.asarray(pd.to_numeric(cleaned, errors="coerce"), dtype="float64")
        values_read[~np.isfinite(values_read)] = np.nan
        numbers[todo] = values_read
        bad[todo] = np.isnan(values_read)
    return numbers, bad


#: Plausible ranges of the figures loaders store; a value outside one is a typo, not a site.
PERCENT_RANGE = (0.0, 100.0)
#: Floor area of one site: the largest NHS site in ERIC 2019/20 has 292,119 m².
FLOOR_AREA_M2_RANGE = (0.0, 1_000_000.0)
#: Land area of one site (100,000 ha is 1,000 km², bigger than most districts).
LAND_HA_RANGE = (0.0, 100_000.0)


def outside_range(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """True where a number is present and below or above ``bounds`` (NaN is never outside)."""
    values = np.asarray(values, dtype="float64")
    with np.errstate(invalid="ignore"):
        return (values < bounds[0]) | (values > bounds[1])


def range_reason(
    column: str, cell: object, value: float, bounds: tuple[float, float], unit: str
) -> str:
    """Why a number cannot be right: negative, or beyond the plausible maximum."""
    low, high = bounds
    if value < low:
        return f"{column} {cell!r} is negative; fix the cell or leave it empty"
    return (
        f"{column} {cell!r} is over {high:,.0f} {unit}, which no site can have; fix the cell "
        "(check its unit) or leave it empty"
    )


def clean_text(values: pd.Series | np.ndarray) -> pd.Series:
    """Trimmed text with empty cells and null tokens as missing (object dtype, None).

    A column of repeated wording (tenures, site types, towns, CRS labels) is cleaned
    once per distinct value; a column of unique text (names, addresses) cell by cell.
    """
    cells = as_objects(values)
    index = values.index if isinstance(values, pd.Series) else None
    sample = cells[:_SAMPLE]
    if len(cells) > 2 * _SAMPLE and len(set(sample.tolist())) * 4 < len(sample):
        codes, distinct = pd.factorize(cells)
        cleaned = np.asarray(
            [*_clean_cells(np.asarray(distinct, dtype=object)), None], dtype=object
        )
        return pd.Series(cleaned[codes], index=index, dtype=object)  # code -1 (missing): None
    return pd.Series(_clean_cells(cells), index=index, dtype=object)


_SAMPLE = 2_000


def _clean_cells(cells: np.ndarray) -> list[str | None]:
    tokens = NULL_TOKENS
    try:
        return [
            None if (t := v.strip()) == "" or (len(t) <= _LONGEST and t.lower() in tokens) else t
            for v in cells
        ]
    except AttributeError:  # not all text
        return [
            None
            if v is None
            or (isinstance(v, float) and v != v)
            or (t := str(v).strip()) == ""
            or (len(t) <= _LONGEST and t.lower() in tokens)
            else t
            for v in cells
        ]


_POSTCODE_PARTS = re.compile(r"\s*([A-Z]{1,2}[0-9][A-Z0-9]?)\s*([0-9][A-Z]{2})\s*")


def postcode_parts(values: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(normalised postcodes, full-postcode mask) in one pass; see :func:`normalise_postcodes`.

    Cells already in the normal form (nearly all, in a national lookup) are found by
    character classes on fixed-width text and kept as they are; only the rest are rebuilt.
    """
    cells = as_objects(values)
    full = _canonical_postcodes(cells)
    out = cells.copy()
    rest = np.flatnonzero(~full)
    if len(rest):
        normalised, rest_full = _postcode_parts_slow(cells[rest])
        out[rest] = normalised
        full[rest] = rest_full
    return out, full


def _canonical_postcodes(cells: np.ndarray) -> np.ndarray:
    """Which cells are already written as :func:`normalise_postcodes` writes them (every
    ONSPD ``pcds``): ``[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2}``, tested in numpy, not per row.

    Cells become 9-character text: one longer than any postcode, so a longer cell cut to
    nine characters still cannot match. Each length (6, 7 or 8) has fixed positions for
    the space, the inward code and the outward code's letters and digits.
    """
    n = len(cells)
    if pd.api.types.infer_dtype(cells, skipna=False) == "string":
        length = np.fromiter(map(len, cells), dtype=np.int64, count=n)
    else:
        length = np.fromiter(
            (len(v) if type(v) is str else -1 for v in cells), dtype=np.int64, count=n
        )
    # A trailing NUL is dropped from fixed-width text, but not from the length: no match.
    codes = cells.astype("U9").view(np.uint32).reshape(n, 9)
    letter = codes - np.uint32(ord("A")) < 26  # unsigned: below "A" wraps round, too
    digit = codes - np.uint32(ord("0")) < 10
    full = np.zeros(n, dtype=bool)
    for size in (6, 7, 8):
        rows = np.flatnonzero(length == size)
        if not len(rows):
            continue
        a, d = letter[rows], digit[rows]
        space = size - 4
        ok = (codes[rows, space] == ord(" ")) & d[:, space + 1] & a[:, space + 2] & a[:, space + 3]
        if size == 6:  # A9
            ok &= a[:, 0] & d[:, 1]
        elif size == 7:  # AA9 or A9A / A99
            ok &= a[:, 0] & ((a[:, 1] & d[:, 2]) | (d[:, 1] & (a[:, 2] | d[:, 2])))
        else:  # AA9A / AA99
            ok &= a[:, 0] & a[:, 1] & d[:, 2] & (a[:, 3] | d[:, 3])
        full[rows] = ok
    return full


def _postcode_parts_slow(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    match = _POSTCODE_PARTS.fullmatch
    out: list[str | None] = []
    full: list[bool] = []
    for v in cells:
        if not isinstance(v, str):
            out.append(None)
            full.append(False)
            continue
        upper = v.upper()
        m = match(upper)
        if m is not None:
            out.append(m.group(1) + " " + m.group(2))
            full.append(True)
        else:
            words = " ".join(upper.split())
            out.append(words or None)
            full.append(False)
    return np.asarray(out, dtype=object), np.asarray(full, dtype=bool)


def normalise_postcodes(values: pd.Series | np.ndarray) -> pd.Series:
    """Postcodes as ``M6 8HD``: upper case, inner runs of spaces removed, one space before
    the inward code. Partial postcodes (``M31``, ``WA14 1``) are kept, upper-cased with single
    spaces, and will simply not match a lookup; empty cells become None.
    """
    out, _ = postcode_parts(values)
    index = values.index if isinstance(values, pd.Series) else None
    return pd.Series(out, index=index, dtype=object)


def is_full_postcode(values: pd.Series | np.ndarray) -> np.ndarray:
    """True for a complete unit postcode (after normalisation), False for partial or empty."""
    _, full = postcode_parts(values)
    return full


def slug(text: str) -> str:
    """A stable, readable identifier: ``Trafford Council`` -> ``trafford-council``."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", folded).strip("-") or "unnamed"


def row_dicts(frame: pd.DataFrame) -> list[dict[str, object]]:
    """The rows as dicts of plain Python values, built column-wise.

    ``DataFrame.to_dict("records")`` boxes every cell through pandas: about 2.5 s for an
    ERIC file of 10,000 sites and 165 columns, against a tenth of that here.
    """
    names = [str(c) for c in frame.columns]
    columns = [frame.iloc[:, k].to_numpy(dtype=object).tolist() for k in range(frame.shape[1])]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def join_text(parts: Iterable[pd.Series], sep: str = ", ") -> pd.Series:
    """Join text columns row by row, skipping empty parts (for addresses)."""
    series = list(parts)
    if not series:
        return pd.Series(dtype=object)
    arrays = [clean_text(p).to_numpy(dtype=object) for p in series]
    out = [sep.join(v for v in row if v) or None for row in zip(*arrays, strict=True)]
    return pd.Series(out, index=series[0].index, dtype=object)
