"""The report's tuning section and ``verdicts.csv``.

The tuning section shows, per configuration, the value chosen and the tuning metric at every value
tried (mean over the tuning seeds, on the tuning split), flags a choice at the edge of the grid, and
says for a configuration whose masks collapsed whether that happened at every value tried or only at
some; ``plots/tuning.png`` draws the metric against each tuned key, one line per configuration.

``verdicts.csv`` holds one row per (configuration, metric) of every table: ``VERDICT_COLUMNS``, so that
two studies can be compared by a program.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from losslab.report import plots
from losslab.report.document import Block, Figure, Grid
from losslab.report.tables import StudyResults, Table
from losslab.study.tuning import TuneChoice, TuneSpec

__all__ = ["VERDICT_COLUMNS", "tuning_blocks", "write_verdicts_csv"]

#: The columns of ``verdicts.csv`` (DESIGN.md's contract first; new columns are appended).
VERDICT_COLUMNS = ["config", "metric", "verdict", "delta", "ci_low", "ci_high", "p_adjusted", "test",
                   "baseline", "p_equivalence", "margin", "mde", "seeds"]  # fmt: skip


def _rule(tune: TuneSpec) -> str:
    """How the choice was made, in words."""
    if tune.tolerance == 0:
        return f"the value with the best mean {tune.metric}"
    return (
        f"the first value in grid order whose mean {tune.metric} is within {tune.tolerance:g} of the best (scores "
        "closer than that are not told apart by the tuning runs; the grid lists the safer values first)"
    )


def _number(value: float | None, digits: int = 4) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def write_verdicts_csv(results: StudyResults, tables: Sequence[Table], path: Path) -> Path:
    """One row per configuration and metric that has a comparison with its baseline."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(VERDICT_COLUMNS)
        for table in tables:
            for metric, family in table.families.items():
                if metric == "fps":
                    continue
                for cfg in results.configs:
                    cmp = family.get(cfg.label)
                    if cmp is None or cfg.alias_of:
                        continue
                    test = cmp.method + (f", {cmp.correction}" if cmp.correction else "")
                    writer.writerow([cfg.label, metric, cmp.verdict, _number(cmp.diff.mean), _number(cmp.diff.low),
                                     _number(cmp.diff.high), _number(cmp.p_adjusted, 6), test, cfg.baseline,
                                     _number(cmp.p_equivalence, 6), _number(cmp.margin, 3), _number(cmp.mde),
                                     cmp.diff.n])  # fmt: skip
    return path


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _point_text(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_value_text(v)}" for k, v in point.items())


def _collapse_words(choice: TuneChoice) -> str:
    collapsed = choice.collapsed_points()
    if not collapsed:
        return ""
    if choice.collapsed_everywhere():
        return "collapsed at every value tried"
    return f"masks failed at {'; '.join(_point_text(p) for p in collapsed)} only"


def _row(choice: TuneChoice, n_seeds: int) -> list[str]:
    cells = []
    for point, score, done, failed, _ in choice.scores:
        text = "" if score is None else f"{score:.2f}"
        if failed:
            text = f"{text} ({failed} failed)".strip()
        elif not done:
            text = "…"
        cells.append(f"{text} ✓" if point == choice.chosen and text else text)
    notes = [w for w in (_collapse_words(choice),) if w]
    notes += [f"best value at the edge of the grid ({k})" for k in choice.edge]
    unfinished = any(done + failed < n_seeds for _, _, done, failed, _ in choice.scores)
    chosen = (
        _point_text(choice.chosen)
        if choice.chosen
        else "not yet"
        if unfinished
        else "none: a run failed at every value"
    )
    return [choice.label, chosen, *cells, "; ".join(notes)]


def tuning_blocks(results: StudyResults, plot_dir: Path) -> tuple[list[Block], list[Figure]]:
    """The tuning section (nothing for a study without a tuning stage) and its figure."""
    tune = results.spec.tune
    choices = {c.label: c.tuning for c in results.configs if c.tuning is not None and not c.alias_of}
    if tune is None or not choices:
        return [], []
    points = tune.points()
    header = ["configuration", "chosen", *(_point_text(p) for p in points), "notes"]
    rows = [_row(choice, len(tune.seeds)) for choice in choices.values()]
    seeds = len(tune.seeds)
    data = tune.dataset.get("path") or "a synthetic dataset drawn with another generator seed"
    text = (
        f"Every configuration tried {len(points)} value{'s' if len(points) != 1 else ''} of "
        f"{', '.join(tune.grid)} with {seeds} tuning seed{'s' if seeds != 1 else ''} "
        f"({', '.join(map(str, tune.seeds))}), "
        f"trained and scored on the tuning split ({data}), which the verdict runs never see; {_rule(tune)} was "
        "chosen (✓), and the verdict runs trained at it over the study's seeds. A failed tuning run (e.g. a "
        "diverged learning rate) ranks its value below every finished one."
    )
    blocks = [Block("h2", "Tuning", anchor="tuning"), Block("p", text),
              Block("grid", Grid(header, rows, numeric=tuple(range(2, 2 + len(points)))))]  # fmt: skip
    figures = []
    for key, values in tune.grid.items():
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) or len(values) < 2:
            continue
        series = {}
        for label, choice in choices.items():
            series[label] = [(float(p[key]), s, choice.chosen == p) for p, s, *_ in choice.scores]
        name = "tuning.png" if len(tune.grid) == 1 else f"tuning_{key}.png"
        path = plots.plot_tuning(series, plot_dir / name, key, tune.metric)
        if path is not None:
            caption = (f"{tune.metric} on the tuning split against {key}, mean over the tuning seeds; one line per "
                       "configuration, the chosen value ringed.")  # fmt: skip
            figures.append(Figure(path, caption))
    if figures:
        blocks.append(Block("figures", figures))
    return blocks, figures
