"""Settings resolved when needed: argument, then environment, then default."""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DATABASE_URL_ENV = "ESTATES_DATABASE_URL"
BUSY_TIMEOUT_ENV = "ESTATES_BUSY_TIMEOUT"
DEFAULT_DATABASE = "estates.gpkg"
DEFAULT_BUSY_TIMEOUT_S = 30.0
WORKING_CRS = "EPSG:27700"
WORKING_EPSG = 27700

_PASSWORD_IN_URL = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<at>@)")


def resolve_database_url(url_or_path: str | os.PathLike[str] | None = None) -> str:
    """Return a SQLAlchemy URL from an argument, ``ESTATES_DATABASE_URL`` or ``./estates.gpkg``.

    A plain path (no ``://``) means a GeoPackage file at that path.
    """
    chosen = url_or_path if url_or_path not in (None, "") else os.environ.get(DATABASE_URL_ENV)
    if chosen in (None, ""):
        chosen = DEFAULT_DATABASE
    text = os.fspath(chosen)
    if "://" not in text:
        return "sqlite:///" + str(Path(text).expanduser().resolve())
    if text.startswith(("postgresql://", "postgres://")):
        text = "postgresql+psycopg://" + text.split("://", 1)[1]
    _check_url(text)
    return text


def _check_url(text: str) -> None:
    """Refuse a URL that cannot be read, or would be misread, without ever echoing it:
    its password could be in the part that was misread."""
    from estates.errors import ConfigurationError

    where = "the database URL (--db or ESTATES_DATABASE_URL)"
    if text.split("://", 1)[1].split("/", 1)[0].count("@") > 1:
        raise ConfigurationError(
            f"{where} has more than one '@' before the host name: write an '@' inside the "
            "user name or password as %40"
        )
    try:
        make_url(text)
    except (ValueError, ArgumentError) as error:
        raise ConfigurationError(
            f"{where} cannot be read: {redact(str(error))}; check its host, port and database name"
        ) from None


def busy_timeout_seconds() -> float:
    """How long a GeoPackage writer waits for another writer before failing."""
    raw = os.environ.get(BUSY_TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_BUSY_TIMEOUT_S
    try:
        return float(raw)
    except ValueError:
        from estates.errors import ConfigurationError

        raise ConfigurationError(
            f"{BUSY_TIMEOUT_ENV}={raw!r} is not a number of seconds; set it to e.g. 30"
        ) from None


def redact(text: str) -> str:
    """Hide any password inside database URLs that appear in ``text``."""
    return _PASSWORD_IN_URL.sub(r"\g<scheme>***\g<at>", text)


def display_url(url: str) -> str:
    """A database URL safe to print: password hidden, GeoPackage shown as its path."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return parsed.render_as_string(hide_password=True)
