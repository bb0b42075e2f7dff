"""estates: public estate rationalisation for England.

Load NHS and council sites into a spatial database, flag under-used sites with the
reason in plain words, find cross-organisation co-location clusters, build one-body
pooling scenarios and draw them as Folium maps.
"""

from importlib.metadata import PackageNotFoundError, version

from estates.errors import (
    ConfigurationError,
    CrsError,
    DatabaseBusyError,
    DatabaseError,
    EstatesError,
    InvalidSourceError,
    MissingColumnError,
    NotFoundError,
    UnknownLayoutError,
)
from estates.estate import Estate, connect

try:
    __version__ = version("estates")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ConfigurationError",
    "CrsError",
    "DatabaseBusyError",
    "DatabaseError",
    "Estate",
    "EstatesError",
    "InvalidSourceError",
    "MissingColumnError",
    "NotFoundError",
    "UnknownLayoutError",
    "__version__",
    "connect",
]
