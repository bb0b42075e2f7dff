"""Fixtures: a database per test on each backend, real shared data, browser."""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pg_cluster

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ESTATES_SHARED_DATA", ROOT.parent / "shared" / "data"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_counter = itertools.count()


def shared_file(relative: str) -> Path:
    """A file of ../shared/data; skip (never in CI) when the folder is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        if IN_CI:
            pytest.fail(f"shared data file {path} is missing in CI")
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="session")
def postgis_admin_url() -> Iterator[str]:
    """A PostGIS server: ``ESTATES_TEST_DATABASE_URL`` or a throwaway cluster."""
    url = os.environ.get("ESTATES_TEST_DATABASE_URL")
    if url:
        yield url
        return
    reason = pg_cluster.unavailable_reason()
    if reason:
        message = f"PostGIS TESTS SKIPPED: {reason}; or set ESTATES_TEST_DATABASE_URL"
        if IN_CI:
            pytest.fail(message + " (CI must run them)")
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)
    cluster = pg_cluster.Cluster().start()
    try:
        yield cluster.url()
    finally:
        cluster.stop()


@pytest.fixture
def postgis_url(postgis_admin_url: str) -> str:
    return pg_cluster.create_database(
        postgis_admin_url, f"estates_test_{os.getpid()}_{next(_counter)}"
    )


@pytest.fixture
def gpkg_url(tmp_path: Path) -> str:
    return str(tmp_path / "estate.gpkg")


@pytest.fixture(params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on the GeoPackage and on PostGIS."""
    if request.param == "gpkg":
        return str(tmp_path / "estate.gpkg")
    return str(request.getfixturevalue("postgis_url"))


@pytest.fixture
def estate(db_url: str):  # type: ignore[no-untyped-def]
    import estates

    e = estates.connect(db_url)
    yield e
    e.close()


@pytest.fixture
def twin_estate(db_url: str, request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A second, empty estate on the same backend as ``estate``: to compare two ways of
    loading the same files."""
    import estates

    if db_url.startswith("postgresql"):
        admin = request.getfixturevalue("postgis_admin_url")
        url = pg_cluster.create_database(admin, f"estates_twin_{os.getpid()}_{next(_counter)}")
    else:
        url = str(tmp_path / "twin.gpkg")
    e = estates.connect(url)
    yield e
    e.close()
