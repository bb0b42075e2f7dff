"""The ``estates`` command line: a thin layer over the Python API.

Exit status: 0 success, 1 a user or data error (one line on stderr), 2 a usage error.
Each subcommand family lives in its own module and registers itself on :data:`main`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import click
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from estates import __version__
from estates.errors import EstatesError
from estates.estate import Estate
from estates.settings import redact

log = logging.getLogger("estates")


class Context:
    """What the group options leave for subcommands."""

    def __init__(self, db: str | None, verbosity: int) -> None:
        self.db = db
        self.verbosity = verbosity
        self._estate: Estate | None = None

    @property
    def estate(self) -> Estate:
        if self._estate is None:
            self._estate = Estate(self.db)
        return self._estate


pass_context = click.make_pass_decorator(Context)


def emit(
    payload: dict[str, Any], as_json: bool, lines: Callable[[dict[str, Any]], list[str]]
) -> None:
    """Print exactly one JSON object, or human-readable lines."""
    if as_json:
        echo_json(payload)
    else:
        for line in lines(payload):
            click.echo(line)


def echo_json(payload: Any) -> None:
    """Print one JSON value on one line (objects from the database as text)."""
    click.echo(json.dumps(payload, ensure_ascii=False, default=str))


def json_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")(
        function
    )


def _configure_logging(verbosity: int) -> None:
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    if verbosity < -1:
        level = logging.CRITICAL
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


class _Group(click.Group):
    """Turns expected errors into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (EstatesError, OperationalError, SQLAlchemyError, OSError) as error:
            verbosity = ctx.obj.verbosity if isinstance(ctx.obj, Context) else 0
            if verbosity >= 2:
                raise
            message = str(error)
            if isinstance(error, OperationalError):
                from estates.db.engine import translate_operational_error
                from estates.settings import resolve_database_url

                db = ctx.obj.db if isinstance(ctx.obj, Context) else None
                message = str(translate_operational_error(error, resolve_database_url(db)))
            elif isinstance(error, OSError) and error.filename:
                message = f"{error.filename}: {error.strerror}"
            first = redact(
                message.strip().splitlines()[0] if message.strip() else type(error).__name__
            )
            click.echo(f"estates: error: {first}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    metavar="URL|PATH",
    default=None,
    help="GeoPackage path or postgresql:// URL (default: $ESTATES_DATABASE_URL, then ./estates.gpkg).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-vv shows tracebacks).")
@click.option("-q", "--quiet", count=True, help="Less logging.")
@click.version_option(__version__, "--version", prog_name="estates")
@click.pass_context
def main(ctx: click.Context, db: str | None, verbose: int, quiet: int) -> None:
    """Public estate rationalisation: load, analyse and map public sites."""
    verbosity = verbose - quiet
    _configure_logging(verbosity)
    ctx.obj = Context(db, verbosity)
    ctx.call_on_close(lambda: ctx.obj._estate.close() if ctx.obj._estate else None)


def _register() -> None:
    from estates.cli import analyse as _analyse  # noqa: F401
    from estates.cli import db as _db  # noqa: F401
    from estates.cli import demo as _demo  # noqa: F401
    from estates.cli import load as _load  # noqa: F401
    from estates.cli import maintenance as _maintenance  # noqa: F401
    from estates.cli import maps as _maps  # noqa: F401


_register()
