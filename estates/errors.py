"""One error hierarchy: every class is also the built-in it stands for.

Messages name the file, row or column, what was expected, what was found and the
fix, so the CLI can print ``str(error)`` as its one line.
"""

from __future__ import annotations


class EstatesError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(EstatesError, ValueError):
    """A setting, option or settings file has a value we cannot use."""


class DatabaseError(EstatesError, RuntimeError):
    """The database cannot be opened, migrated or written."""


class DatabaseBusyError(DatabaseError, TimeoutError):
    """Another writer holds the database for longer than the busy timeout."""


class InvalidSourceError(EstatesError, ValueError):
    """A source file cannot be read as the format it claims to be."""


class MissingColumnError(InvalidSourceError, KeyError):
    """A source file lacks columns the loader needs."""

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return str(self.args[0]) if self.args else ""


class UnknownLayoutError(InvalidSourceError):
    """A source file's header matches none of the layouts we know (e.g. an ERIC year)."""


class CrsError(EstatesError, ValueError):
    """Missing or unexpected coordinate reference system."""


class NotFoundError(EstatesError, LookupError):
    """A footprint, run, batch or site that was asked for does not exist."""
