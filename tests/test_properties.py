"""Property-based tests (hypothesis) of the cell parsers every loader relies on.

- postcode normalisation (:func:`estates.ingest._parse.normalise_postcodes`): idempotent
  on any text; case and whitespace do not matter; a valid outward/inward pair is kept;
- numbers (:func:`estates.ingest._parse.parse_numbers`): thousands separators, ``£``/
  ``%``, accounting negatives, null tokens such as ``Not Applicable``, blanks, and the
  round trip of formatted floats; text is flagged, never read as a number;
- coordinate conventions (:mod:`estates.ingest.coordinates`): random points in Great
  Britain as longitude/latitude and as their National Grid transform are classified and
  placed correctly, swapped and mislabelled pairs are detected, points outside Great
  Britain are never used;
- header synonyms (:func:`estates.ingest._parse.match_columns`): case, spacing,
  punctuation and accent variants of each loader's synonyms map to the same field.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pyproj import Transformer

from estates.ingest import _parse, coordinates, council, points, postcodes

PROFILE = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TO_WGS = Transformer.from_crs(27700, 4326, always_xy=True)
TO_BNG = Transformer.from_crs(4326, 27700, always_xy=True)

# -- postcodes ---------------------------------------------------------------------------

OUTWARD = st.from_regex(r"[A-Z]{1,2}[0-9][A-Z0-9]?", fullmatch=True)
INWARD = st.from_regex(r"[0-9][A-Z]{2}", fullmatch=True)
SPACE = st.text(alphabet=" \t", max_size=4)


def _randomise_case(text: str, flips: list[bool]) -> str:
    return "".join(c.lower() if flips[i % len(flips)] else c for i, c in enumerate(text))


def normalise(value: object) -> object:
    return _parse.normalise_postcodes(pd.Series([value], dtype=object)).iloc[0]


@PROFILE
@given(st.one_of(st.none(), st.text(max_size=20)))
def test_postcode_normalisation_is_idempotent(value: str | None) -> None:
    once = normalise(value)
    assert normalise(once) == once
    if once is not None:
        assert once == once.strip() and "  " not in once


@PROFILE
@given(OUTWARD, INWARD, SPACE, SPACE, SPACE, st.lists(st.booleans(), min_size=7, max_size=7))
def test_valid_postcode_survives_case_and_spacing(
    outward: str, inward: str, before: str, between: str, after: str, flips: list[bool]
) -> None:
    written = before + _randomise_case(outward + between + inward, flips) + after
    assert normalise(written) == f"{outward} {inward}"
    assert _parse.is_full_postcode(pd.Series([written])).tolist() == [True]


_NORMAL_FORM = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2}")
_NEAR_POSTCODES = st.one_of(
    st.text(alphabet="AZaz09 \t\x00é-", max_size=11),
    st.builds(
        lambda o, i, tail: o + " " + i + tail,
        OUTWARD,
        INWARD,
        st.sampled_from(["", "\x00", " ", "Z", "9"]),
    ),
    st.none(),
    st.floats(),
)


@PROFILE
@given(st.lists(_NEAR_POSTCODES, max_size=40))
def test_normal_form_check_matches_the_regular_expression(cells: list[object]) -> None:
    """The numpy character-class test of a postcode's normal form is the regex, exactly."""
    values = np.array(cells, dtype=object)
    expected = [type(v) is str and _NORMAL_FORM.fullmatch(v) is not None for v in cells]
    assert _parse._canonical_postcodes(values).tolist() == expected


@PROFILE
@given(OUTWARD, SPACE, SPACE)
def test_partial_postcode_is_kept_but_not_full(outward: str, before: str, after: str) -> None:
    assert normalise(before + outward.lower() + after) == outward
    assert not _parse.is_full_postcode(pd.Series([outward])).any()


# -- numbers -----------------------------------------------------------------------------


def parse(values: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
    return _parse.parse_numbers(pd.Series(list(values), dtype=object))


@PROFILE
@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_thousands_separators_and_accounting_negatives(n: int) -> None:
    texts = [f"{n:,}", f"{n}", f" {n:,} "]
    if n >= 0:
        texts += [f"£{n:,}", f"({n:,})", f"{n:,} m²"]
    values, bad = parse(texts)
    expected = [n, n, n] + ([n, -n, n] if n >= 0 else [])
    assert values.tolist() == expected
    assert not bad.any()


@PROFILE
@given(st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_any_float_round_trips_through_its_repr(x: float) -> None:
    values, bad = parse([repr(x), str(x)])
    assert values.tolist() == [x, x]
    assert not bad.any()


@PROFILE
@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False))
def test_formatted_floats_round_trip(x: float) -> None:
    values, bad = parse([f"{x:,.2f}", f"{x:.3%}"])
    assert values[0] == float(f"{x:.2f}")
    assert math.isclose(values[1], float(f"{x * 100:.3f}"), rel_tol=1e-15, abs_tol=1e-12)
    assert not bad.any()


@PROFILE
@given(
    st.lists(
        st.sampled_from(
            ["1,234", "0", "12.5", "Not Applicable", "", "£5m", "n/a", "(1,234)", "abc", None]
        )
        | st.integers(min_value=-(10**6), max_value=10**6).map(lambda n: f"{n:,}"),
        max_size=40,
    )
)
def test_a_column_reads_as_its_cells_one_by_one(cells: list[str | None]) -> None:
    """Repeated texts are read once per column; each cell must still read as it would alone."""
    values, bad = parse(cells)
    alone = [parse([cell]) for cell in cells]
    assert np.array_equal(values, [v[0][0] for v in alone], equal_nan=True)
    assert bad.tolist() == [bool(v[1][0]) for v in alone]


@PROFILE
@given(
    st.sampled_from(sorted(_parse.NULL_TOKENS)),
    SPACE,
    SPACE,
    st.lists(st.booleans(), min_size=15, max_size=15),
)
def test_null_tokens_and_blanks_are_missing_not_bad(
    token: str, before: str, after: str, flips: list[bool]
) -> None:
    upper = "".join(c.upper() if f else c for c, f in zip(token, flips, strict=False))
    values, bad = parse([before + upper + after, before + after, None])
    assert np.isnan(values).all()
    assert not bad.any()


@PROFILE
@given(st.text(alphabet=st.characters(categories=["L"]), min_size=1, max_size=12))
def test_words_are_flagged_not_read_as_numbers(word: str) -> None:
    assume(word.strip().lower() not in _parse.NULL_TOKENS)
    values, bad = parse([word])
    assert np.isnan(values[0])
    assert bad[0]


@PROFILE
@given(
    st.lists(
        st.one_of(
            st.integers(-(10**9), 10**9).map(lambda n: f"{n:,}"),
            st.floats(allow_nan=False, allow_infinity=False).map(repr),
            st.sampled_from(["Not Applicable", "", "n/a", "abc", "12%", "(1,000)", None]),
        ),
        max_size=30,
    )
)
def test_a_column_parses_like_its_cells_one_by_one(cells: list[str | None]) -> None:
    """The vectorised fast path and the cell-by-cell path agree."""
    values, bad = parse(cells)
    for i, cell in enumerate(cells):
        one, one_bad = parse([cell])
        assert (np.isnan(one[0]) and np.isnan(values[i])) or one[0] == values[i]
        assert one_bad[0] == bad[i]


# -- coordinate conventions --------------------------------------------------------------


@st.composite
def gb_points(draw: st.DrawFn) -> tuple[float, float, float, float]:
    """A point in Great Britain: (easting, northing, longitude, latitude)."""
    e = draw(st.floats(80_000, 640_000))
    n = draw(st.floats(10_000, 1_150_000))
    lon, lat = TO_WGS.transform(e, n)
    assume(coordinates.LON_RANGE[0] <= lon <= coordinates.LON_RANGE[1])
    assume(coordinates.LAT_RANGE[0] <= lat <= coordinates.LAT_RANGE[1])
    # The grid position of that longitude/latitude by the forward transform: offshore,
    # outside the area of use of PROJ's OSGB36 Helmert, the inverse is a no-datum-shift
    # "ballpark" pipeline, so the round trip can be ~130 m off; the forward one is the truth.
    e, n = TO_BNG.transform(lon, lat)
    assume(coordinates.EAST_RANGE[0] <= e <= coordinates.EAST_RANGE[1])
    assume(coordinates.NORTH_RANGE[0] <= n <= coordinates.NORTH_RANGE[1])
    return float(e), float(n), lon, lat


def classify(x: float, y: float, declared: str) -> tuple[str, float, float]:
    result = coordinates.check_coordinates(np.array([x]), np.array([y]), declared)
    return str(result.status[0]), float(result.easting[0]), float(result.northing[0])


@PROFILE
@given(gb_points())
def test_gb_lonlat_and_its_grid_transform_are_read_as_declared(
    point: tuple[float, float, float, float],
) -> None:
    e, n, lon, lat = point
    for declared in (coordinates.LONLAT, coordinates.UNKNOWN):
        status, east, north = classify(lon, lat, declared)
        assert status == coordinates.OK
        assert math.hypot(east - e, north - n) < 0.01
    for declared in (coordinates.BNG, coordinates.UNKNOWN):
        assert classify(e, n, declared) == (coordinates.OK, e, n)


@PROFILE
@given(gb_points())
def test_swapped_and_mislabelled_pairs_are_detected_and_fixed(
    point: tuple[float, float, float, float],
) -> None:
    e, n, lon, lat = point
    status, east, north = classify(lat, lon, coordinates.LONLAT)
    assert status == coordinates.SWAPPED and math.hypot(east - e, north - n) < 0.01
    assert classify(e, n, coordinates.LONLAT) == (coordinates.BNG_AS_LONLAT, e, n)
    status, east, north = classify(lon, lat, coordinates.BNG)
    assert status == coordinates.LONLAT_AS_BNG and math.hypot(east - e, north - n) < 0.01
    if n > coordinates.EAST_RANGE[1]:  # otherwise the swapped pair is itself a place in GB
        assert classify(n, e, coordinates.BNG) == (coordinates.SWAPPED, e, n)


def _fits_gb_somehow(x: float, y: float) -> bool:
    def lonlat(a: float, b: float) -> bool:
        return (
            coordinates.LON_RANGE[0] <= a <= coordinates.LON_RANGE[1]
            and coordinates.LAT_RANGE[0] <= b <= coordinates.LAT_RANGE[1]
        )

    def grid(a: float, b: float) -> bool:
        return (
            coordinates.EAST_RANGE[0] <= a <= coordinates.EAST_RANGE[1]
            and coordinates.NORTH_RANGE[0] <= b <= coordinates.NORTH_RANGE[1]
        )

    return lonlat(x, y) or lonlat(y, x) or grid(x, y) or grid(y, x)


@PROFILE
@given(
    st.one_of(
        st.tuples(st.floats(-180, 180), st.floats(-90, 90)),
        st.tuples(st.floats(-5e6, 5e6), st.floats(-5e6, 5e6)),
    ),
    st.sampled_from([coordinates.LONLAT, coordinates.BNG, coordinates.UNKNOWN]),
)
def test_points_outside_great_britain_are_never_used(
    pair: tuple[float, float], declared: str
) -> None:
    x, y = pair
    assume(not _fits_gb_somehow(x, y))
    status, east, north = classify(x, y, declared)
    assert status == coordinates.OUTSIDE_GB
    assert np.isnan(east) and np.isnan(north)


@PROFILE
@given(st.lists(gb_points(), min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_rows_are_classified_independently(
    points_: list[tuple[float, float, float, float]], rnd: object
) -> None:
    """A file mixing conventions: each row gets the status it would get alone."""
    import random

    assert isinstance(rnd, random.Random)
    xs, ys, expected = [], [], []
    for e, n, lon, lat in points_:
        x, y = rnd.choice([(lon, lat), (lat, lon), (e, n)])
        xs.append(x)
        ys.append(y)
        expected.append(classify(x, y, coordinates.LONLAT)[0])
    together = coordinates.check_coordinates(np.array(xs), np.array(ys), coordinates.LONLAT)
    assert together.status.tolist() == expected


# -- header synonyms ---------------------------------------------------------------------

TABLES: dict[str, Mapping[str, Sequence[str]]] = {
    "council": council.SYNONYMS,
    "points": points.SYNONYMS,
    "postcodes": postcodes.SYNONYMS,
}
PUNCTUATION = st.text(alphabet=" _-./\t", max_size=2)


def _owner(table: Mapping[str, Sequence[str]], header: str) -> str:
    key = _parse.normalise_header(header)
    return next(f for f, names in table.items() if key in map(_parse.normalise_header, names))


@st.composite
def header_variants(draw: st.DrawFn) -> tuple[str, str, str]:
    """(table name, synonym, a variant of it as a publisher might write it)."""
    name = draw(st.sampled_from(sorted(TABLES)))
    synonym = draw(st.sampled_from([s for names in TABLES[name].values() for s in names]))
    out = [draw(PUNCTUATION)]
    for char in synonym:
        if char.isalpha():
            char = char.upper() if draw(st.booleans()) else char.lower()
            if draw(st.integers(0, 5)) == 0:
                char += "\u0301"  # a combining accent: folded away
        out.append(char)
        if draw(st.integers(0, 3)) == 0:
            out.append(draw(PUNCTUATION))
    out.append(draw(PUNCTUATION))
    return name, synonym, unicodedata.normalize("NFC", "".join(out))


@PROFILE
@given(header_variants())
def test_header_variants_map_to_the_synonym_field(variant: tuple[str, str, str]) -> None:
    name, synonym, header = variant
    table = TABLES[name]
    assume(_parse.normalise_header(synonym))
    assert _parse.normalise_header(header) == _parse.normalise_header(synonym)
    field = _owner(table, synonym)
    assert _parse.match_columns(["Unrelated 1", header, "Notes"], table) == {field: header}


@PROFILE
@given(header_variants(), st.sampled_from(["(m2)", "(ha)", "[acres]", "(sq ft)", "(£)"]))
def test_a_unit_in_brackets_does_not_hide_the_field(
    variant: tuple[str, str, str], unit: str
) -> None:
    name, synonym, header = variant
    table = TABLES[name]
    with_unit = f"{header.rstrip()} {unit}"
    keys = {_parse.normalise_header(s) for names in table.values() for s in names}
    assume(_parse.normalise_header(with_unit) not in keys)
    assume(not header.rstrip().endswith((")", "]")))
    assert _parse.match_columns([with_unit], table) == {_owner(table, synonym): with_unit}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_no_normalised_synonym_belongs_to_two_fields(name: str) -> None:
    """The premise of the properties above: a header can only mean one field."""
    owners: dict[str, str] = {}
    for field, names in TABLES[name].items():
        for synonym in names:
            key = _parse.normalise_header(synonym)
            assert owners.setdefault(key, field) == field, (synonym, owners[key], field)
