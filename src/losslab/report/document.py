"""The report as a list of blocks that render to Markdown (here), HTML (``page.py``) and LaTeX tables.

A block is a heading, a paragraph, a list, a summary box, a results table (``TableView``: a
``tables.Table`` with its baseline, flags and the note that explains its columns), a plain table of
text (``Grid``), a group of figures with captions, or preformatted text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from losslab.report.stats import BETTER, EQUIVALENT, WORSE, Comparison
from losslab.report.tables import Cell, Table
from losslab.study.flags import Flag

__all__ = [
    "Block",
    "Figure",
    "Grid",
    "TableView",
    "all_zero_columns",
    "comparison_numbers",
    "flags_text",
    "format_cell",
    "render_markdown",
    "tex_table",
]

_MARK = {BETTER: "▲", WORSE: "▼", EQUIVALENT: "≈"}


@dataclass
class TableView:
    """A results table as the report shows it."""

    table: Table
    baseline: str
    flags: dict[str, list[Flag]]
    note: str = ""

    @property
    def show_comparisons(self) -> bool:
        """A "vs" column only where some configuration has a comparison (no empty columns)."""
        return bool(self.table.compared)

    @property
    def show_flags(self) -> bool:
        return any(self.flags.get(label) for label, _ in self.table.rows)

    @property
    def split(self) -> int:
        """The "vs" and flags columns follow the table's main metric (they read with it, and a wide
        table would scroll them out of sight at its end)."""
        main = next((j for j, m in enumerate(self.table.metrics) if m != "fps"), 0)
        return main + 1


@dataclass
class Grid:
    """A plain table of text: ``numeric`` columns are right-aligned; ``links`` maps (row, column) to
    a relative address."""

    header: list[str]
    rows: list[list[str]]
    numeric: tuple[int, ...] = ()
    links: dict[tuple[int, int], str] = field(default_factory=dict)
    nowrap: bool = False


@dataclass
class Figure:
    """A picture of the report and what it shows."""

    path: Path
    caption: str


@dataclass
class Block:
    """One piece of the report: ``kind`` is ``"h1"``, ``"h2"``, ``"p"``, ``"list"``, ``"summary"``
    (a list in a box), ``"results"`` (a ``TableView``), ``"grid"`` (a ``Grid``), ``"figures"`` (a list
    of ``Figure``) or ``"pre"``; ``anchor`` names it for links."""

    kind: str
    content: Any
    anchor: str = ""


def format_cell(cell: Cell | None, bold: str = "**") -> str:
    """``"**83.65** ±1.20 ▲"``: the mean (bold when best), its interval, the verdict's mark."""
    if cell is None:
        return "–"
    number = f"{cell.mean:.2f}"
    text = f"{bold}{number}{bold}" if cell.bold and bold else number
    if not math.isnan(cell.half):
        text += f" ±{cell.half:.2f}"
    return text + (f" {_MARK[cell.verdict]}" if cell.verdict in _MARK else "")


def comparison_numbers(cmp: Comparison, digits: int = 2) -> str:
    """``"−20.05 [−26.06, −14.16] · Holm p<0.001"``: the difference, its interval and the p that
    decides the verdict (the column's note says which test)."""
    d = cmp.diff
    text = f"{d.mean:+.{digits}f}"
    if not math.isnan(d.low):
        text += f" [{d.low:+.{digits}f}, {d.high:+.{digits}f}]"
    p = cmp.p_adjusted if cmp.p_adjusted is not None else cmp.p_value
    name = f"{cmp.correction} p" if cmp.p_adjusted is not None else "p"
    if cmp.verdict == EQUIVALENT and cmp.p_equivalence is not None:
        p, name = cmp.p_equivalence, f"TOST ±{cmp.margin:g}" + (f" {cmp.correction}" if cmp.correction else "") + " p"
    if not math.isnan(p):
        text += f" · {name}<0.001" if p < 0.001 else f" · {name}={p:.3g}"
    return text


def flags_text(flags: Sequence[Flag], details: bool = True) -> str:
    """``"collapsed (mask AP 0.00, box AP 11.28); 1 seed"``."""
    return "; ".join(str(f) if details else f.name for f in flags)


def all_zero_columns(table: Table) -> set[int]:
    """Columns where every configuration shows 0.00 (greyed: nothing to compare there)."""
    out = set()
    for j, metric in enumerate(table.metrics):
        cells = [cells[j] for _, cells in table.rows if cells[j] is not None]
        if metric != "fps" and cells and all(round(c.mean, 2) == 0 for c in cells):
            out.add(j)
    return out


def _md_results(view: TableView) -> str:
    table = view.table
    k = view.split
    extra = ([f"vs {view.baseline}"] if view.show_comparisons else []) + (["flags"] if view.show_flags else [])
    head = ["configuration", *table.columns[:k], *extra, *table.columns[k:]]
    align = ["---", *(["---:"] * k), *(["---"] * len(extra)), *(["---:"] * (len(table.columns) - k))]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for label, cells in table.rows:
        texts = [format_cell(c) for c in cells]
        added = []
        if view.show_comparisons:
            cmp = table.comparisons.get(label)
            added.append(f"{cmp.verdict}: {comparison_numbers(cmp)}" if cmp else "")
        if view.show_flags:
            added.append(flags_text(view.flags.get(label, [])))
        lines.append("| " + " | ".join([label, *texts[:k], *added, *texts[k:]]) + " |")
    return "\n".join(lines) + (f"\n\n{view.note}" if view.note else "")


def _md_grid(grid: Grid) -> str:
    align = ["---:" if j in grid.numeric else "---" for j in range(len(grid.header))]
    lines = ["| " + " | ".join(grid.header) + " |", "|" + "|".join(align) + "|"]
    for i, row in enumerate(grid.rows):
        cells = [f"[{text}]({grid.links[(i, j)]})" if (i, j) in grid.links else text for j, text in enumerate(row)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def render_markdown(blocks: Sequence[Block]) -> str:
    """The report as Markdown (images as links to ``plots/``)."""
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            out.append(f"{'#' * int(b.kind[1])} {b.content}")
        elif b.kind == "p":
            out.append(b.content)
        elif b.kind in ("list", "summary"):
            out.append("\n".join(f"- {item}" for item in b.content))
        elif b.kind == "results":
            out.append(_md_results(b.content))
        elif b.kind == "grid":
            out.append(_md_grid(b.content))
        elif b.kind == "figures":
            out.extend(f"![{f.path.stem}](plots/{f.path.name})\n\n*{f.caption}*" for f in b.content)
        elif b.kind == "pre":
            out.append("```\n" + b.content + "\n```")
    return "\n\n".join(out) + "\n"


def tex_table(table: Table) -> str:
    """A booktabs ``tabular`` of the table's numbers (bold best, arrows for the verdicts)."""

    def cell(c: Cell | None) -> str:
        if c is None:
            return "--"
        number = f"\\textbf{{{c.mean:.2f}}}" if c.bold else f"{c.mean:.2f}"
        if not math.isnan(c.half):
            number += f"\\,$\\pm${c.half:.2f}"
        return number + {BETTER: "$^\\uparrow$", WORSE: "$^\\downarrow$"}.get(c.verdict or "", "")

    cols = "l" + "r" * len(table.columns)
    lines = [
        f"% {table.title}",
        f"\\begin{{tabular}}{{{cols}}}",
        "\\toprule",
        " & ".join(["", *table.columns]) + " \\\\",
        "\\midrule",
    ]
    for label, cells in table.rows:
        lines.append(" & ".join([label.replace("&", "\\&"), *(cell(c) for c in cells)]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)
