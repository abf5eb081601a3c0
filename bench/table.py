"""The one table the bench prints: a row per measure, a column per variant, ratios and target verdicts.

Cells hold bare numbers (units are in the measure's name) so the table can be read back by a program; a cell with
nothing to show holds ``—``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

COLUMNS = (
    "measure",
    "c",
    "raw POST",
    "bare",
    "floor (a)",
    "sample (b)",
    "ours",
    "ours÷(a)",
    "ours÷(b)",
    "ours÷bare",
    "target",
    "result",
)
VARIANTS = ("raw POST", "bare", "floor (a)", "sample (b)", "ours")
EMPTY = "—"


def number(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return EMPTY
    return f"{value:.{digits}f}"


def ratio(ours: float | None, base: float | None) -> float | None:
    if ours is None or base is None or base == 0 or math.isnan(ours) or math.isnan(base):
        return None
    return ours / base


@dataclass
class Row:
    measure: str
    c: str = EMPTY
    values: dict[str, str] = field(default_factory=dict)
    ratios: dict[str, str] = field(default_factory=dict)
    target: str = EMPTY
    result: str = EMPTY

    def cells(self) -> list[str]:
        return [
            self.measure,
            self.c,
            *(self.values.get(v, EMPTY) for v in VARIANTS),
            *(self.ratios.get(k, EMPTY) for k in ("ours÷(a)", "ours÷(b)", "ours÷bare")),
            self.target,
            self.result,
        ]


def verdict(value: float | None, limit: float, at_most: bool) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    ok = value <= limit if at_most else value >= limit
    return "PASS" if ok else "MISS"


def render(rows: list[Row]) -> str:
    """A GitHub-flavoured markdown table (also readable as plain text: columns are padded)."""
    grid = [list(COLUMNS), *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(COLUMNS))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)) + " |"

    out = [line(grid[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(cells) for cells in grid[1:]]
    return "\n".join(out)


def parse(text: str) -> list[dict[str, str]]:
    """Read a rendered table back: one dict per row, keyed by column name (for the smoke test and tooling)."""
    rows = []
    for raw in text.splitlines():
        if not raw.startswith("| ") or set(raw.replace("|", "").strip()) <= {"-"}:
            continue
        cells = [cell.strip() for cell in raw.strip().strip("|").split(" | ")]
        if len(cells) != len(COLUMNS) or cells[0] == COLUMNS[0]:
            continue
        rows.append(dict(zip(COLUMNS, cells, strict=True)))
    return rows
