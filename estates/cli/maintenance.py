"""``estates check``, ``estates batches``, ``estates undo``: trust and recover the database."""

from __future__ import annotations

import click

from estates.cli import Context, emit, json_option, main, pass_context


@main.command("check")
@click.option(
    "--repair", is_flag=True, help="Rebuild GeoPackage R-tree indexes from their tables first."
)
@json_option
@pass_context
def check(ctx: Context, repair: bool, as_json: bool) -> None:
    """Check integrity: SQLite/GeoPackage, R-trees, orphan rows, unfinished load batches."""
    report = ctx.estate.check(repair=repair)
    emit(
        report.as_dict(),
        as_json,
        lambda p: (
            [
                f"{len(p['checks'])} checks: "
                + ("all passed" if p["ok"] else f"{len(p['problems'])} problems")
            ]
            + [f"  problem: {line}" for line in p["problems"]]
        ),
    )
    if not report.ok:
        raise click.exceptions.Exit(1)


@main.command("batches")
@json_option
@pass_context
def batches(ctx: Context, as_json: bool) -> None:
    """List load batches, newest first."""
    frame = ctx.estate.batches()
    columns = [
        "id",
        "loader",
        "file_name",
        "status",
        "started_at",
        "rows_read",
        "inserted",
        "updated",
        "unchanged",
        "rejected",
    ]
    records = frame[columns].to_dict("records") if len(frame) else []
    emit(
        {"batches": records},
        as_json,
        lambda p: (
            [
                f"{r['id']:>5}  {r['status']:<8} {r['loader']:<10} {r['rows_read']:>8} rows  "
                f"+{r['inserted']} ~{r['updated']} ={r['unchanged']} x{r['rejected']}  {r['file_name']}"
                for r in p["batches"]
            ]
            or ["no load batches yet"]
        ),
    )


@main.command("undo")
@click.argument("batch_id", type=int)
@json_option
@pass_context
def undo(ctx: Context, batch_id: int, as_json: bool) -> None:
    """Undo load batch BATCH_ID: remove the sites it added, restore the ones it changed."""
    result = ctx.estate.undo(batch_id)
    emit(
        {"batch_id": batch_id, **result},
        as_json,
        lambda p: [
            f"undid batch {p['batch_id']}: {p['sites_removed']} sites removed, {p['sites_restored']} restored"
        ],
    )
