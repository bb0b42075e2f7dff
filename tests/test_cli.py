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


def test_demo_json_is_one_object(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = run("--db", str(tmp_path / "d.gpkg"), "demo", "--json")
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["sites"] > 0


@pytest.mark.parametrize("folder_missing", [True])
def test_unwritable_location_is_a_one_line_error(tmp_path, folder_missing: bool) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        main, ["--db", str(tmp_path / "no" / "such" / "x.gpkg"), "db", "current"]
    )
    assert result.exit_code == 1
    assert "does not exist" in result.stderr
