"""What a load did: the report every loader returns, and its progress bar."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

OUTCOMES = ("inserted", "updated", "unchanged", "rejected")
PLACEMENT = ("located", "unlocated", "non_geographic")


@dataclass
class LoadReport:
    """Counts of one load batch.

    ``rows_read`` always equals ``inserted + updated + unchanged + rejected``; for site
    loaders it also equals ``located + unlocated + non_geographic + rejected``.
    Postcode and boundary loads locate no rows of their own (those three stay 0); they
    report the sites they newly located or assigned in ``extra``.
    """

    batch_id: int
    file: str
    loader: str
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    located: int = 0
    unlocated: int = 0
    non_geographic: int = 0
    elapsed_s: float = 0.0
    #: Loader-specific details: period, coordinate issues, unmatched postcodes, ...
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (for ``--json``): the counts, then the loader's details."""
        data = asdict(self)
        extra = data.pop("extra")
        data["elapsed_s"] = round(self.elapsed_s, 3)
        return {**data, **extra}

    def check(self) -> None:
        """Assert the accounting identity (a bug, never a data problem, if it fails)."""
        total = self.inserted + self.updated + self.unchanged + self.rejected
        if total != self.rows_read:
            raise AssertionError(f"{self.loader}: {self.rows_read} rows read but {total} outcomes")

    def lines(self) -> list[str]:
        """A few human-readable lines for the CLI."""
        out = [
            f"{os.path.basename(self.file)}: {self.rows_read} rows read -> {self.inserted} new, "
            f"{self.updated} updated, {self.unchanged} unchanged, {self.rejected} rejected "
            f"(batch {self.batch_id}, {self.elapsed_s:.1f} s)"
        ]
        if self.located or self.unlocated or self.non_geographic:
            out.append(
                f"  located {self.located}, unlocated {self.unlocated}, "
                f"non-geographic {self.non_geographic}"
            )
        for key, value in self.extra.items():
            if isinstance(value, list | dict):
                if value:
                    out.append(f"  {key.replace('_', ' ')}: {len(value)}")
            elif value not in (None, ""):
                out.append(f"  {key.replace('_', ' ')}: {value}")
        return out


class _StepBar(tqdm):
    """tqdm without its monitor thread (which every bar, even a disabled one, would start):
    a few steps need no stall watch, and a process with no other thread may fork
    (:func:`estates.parallel.can_fork_now`) to use a second core."""

    monitor_interval = 0


def progress_bar(total: int, desc: str, enabled: bool) -> tqdm:
    """A stage progress bar on stderr; ``enabled=False`` makes it silent."""
    return _StepBar(total=total, desc=desc, unit="step", disable=not enabled, leave=False)


class RowProblems:
    """Reasons to reject rows, kept only for the rows that have them (cheap for big files)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.reasons: dict[int, list[str]] = {}
        self.columns: dict[int, list[str]] = {}

    def add(self, row: int | np.integer, reason: str, column: str | None = None) -> None:
        self.reasons.setdefault(int(row), []).append(reason)
        if column:
            self.columns.setdefault(int(row), []).append(column)

    def mask(self) -> np.ndarray:
        """True for rows with at least one problem."""
        out = np.zeros(self.n, dtype=bool)
        if self.reasons:
            out[list(self.reasons)] = True
        return out

    def rejected(self, row_numbers: np.ndarray, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """Rejected-row records (row number, reason, columns, raw row) in file order."""
        rows = sorted(self.reasons)
        if not rows:
            return []
        records = frame.iloc[rows].to_dict("records")
        return [
            {
                "row_number": int(row_numbers[i]),
                "reason": "; ".join(self.reasons[i]),
                "column_name": ", ".join(self.columns.get(i, [])) or None,
                "raw": record,
            }
            for i, record in zip(rows, records, strict=True)
        ]
