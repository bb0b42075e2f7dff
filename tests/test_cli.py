"""The CLI: exit codes, one JSON object with --json, passwords never printed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from estates import __version__
from estates.cli import main


def run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert __version__ in result.output


def test_usage_error_exits_2() -> None:
    assert run("--no-such-option").exit_code == 2
    assert run("db", "frobnicate").exit_code == 2


def test_db_upgrade_and_current_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = str(tmp_path / "x.gpkg")
    up = run("--db", db, "db", "upgrade", "--json")
    assert up.exit_code == 0
    payload = json.loads(up.stdout)
    assert payload["from"] is None and payload["to"] == payload["to"] and payload["to"]
    current = json.loads(run("--db", db, "db", "current", "--json").stdout)
    assert current["up_to_date"] is True


def test_database_from_environment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "env.gpkg"
    result = run("db", "upgrade", env={"ESTATES_DATABASE_URL": str(db)})
    assert result.exit_code == 0
    assert db.exists()


def test_password_never_printed() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "estates",
            "--db",
            "postgresql://me:hunter2secret@127.0.0.1:9/nodb",
            "db",
            "current",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "hunter2secret" not in result.stderr + result.stdout
    assert "***" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_demo_runs_the_pipeline_and_writes_both_maps(tmp_path) -> None:  # type: ignore[no-untyped-def]
    args = ["--db", str(tmp_path / "d.gpkg"), "demo", "--json"]
    args += ["--data-dir", str(tmp_path / "data"), "--maps-dir", str(tmp_path / "maps")]
    result = run(*args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    for name in ("sites", "pooling"):
        path = tmp_path / "maps" / f"demo_{name}.html"
        assert payload["maps"][name] == str(path)
        assert path.stat().st_size > 10_000
    loads = payload["loads"]
    assert loads["council"]["inserted"] == loads["council"]["rows_read"] > 0
    assert loads["eric"]["non_geographic"] == 2  # one pooled row per demo trust
    assert payload["flags"]["sites_with_any_flag"] > 0
    assert payload["colocation"]["cluster_count"] > 0
    assert payload["pooling"]["status"] == "optimal"
    # Running it again loads nothing new: every loader is idempotent.
    again = json.loads(run(*args).stdout)
    for name, report in again["loads"].items():
        assert report["inserted"] == report["updated"] == 0, name


@pytest.mark.parametrize("folder_missing", [True])
def test_unwritable_location_is_a_one_line_error(tmp_path, folder_missing: bool) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        main, ["--db", str(tmp_path / "no" / "such" / "x.gpkg"), "db", "current"]
    )
    assert result.exit_code == 1
    assert "does not exist" in result.stderr
