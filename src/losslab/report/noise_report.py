"""The report's label-noise section, for a study whose grid has a ``label_noise`` axis.

Each loss (a value of the other axes) is read at every noise level:

- ``plots/noise_robustness.png``: the main metric (mask AP) against the level, mean over seeds with
  its 95 % t-interval band;
- the relative metric ``AP(noisy) / AP(clean)`` of the same loss, paired by seed (a ratio per seed,
  then the mean of the ratios with their t-interval; a seed whose clean AP is 0 has no ratio);
- per level, each loss against the baseline (BCE) *at that level*: the ordinary comparison of
  ``tables.compare`` (a paired t-test over seeds, or with one seed the labelled bootstrap over
  images), Holm-corrected across the losses compared at that level, not across the whole grid;
- per level, the ordinary per-threshold table (``tables.build_tables`` on that level's runs).

The clean level is the one whose spec corrupts nothing (``none``), else the first level.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from losslab.report import plots
from losslab.report.document import Block, Figure, Grid, TableView, comparison_numbers
from losslab.report.stats import BETTER, EQUIVALENT, WORSE, Comparison, Interval, mean_ci
from losslab.report.summary import join_names, main_table, table_note, tests_text
from losslab.report.tables import ConfigResults, StudyResults, Table, build_tables, lower_is_better
from losslab.study.flags import COLLAPSE_MASK_AP

__all__ = [
    "NOISE_AXIS",
    "NoiseGrid",
    "level_results",
    "level_tables",
    "noise_blocks",
    "noise_findings",
    "noise_grid",
    "print_noise",
    "ratio_of",
    "relative_drop",
    "seed_ratios",
]

#: The grid axis that makes a study a label-noise study.
NOISE_AXIS = "label_noise"
_METRIC_NAME = {"segm.AP": "mask AP"}


@dataclass(frozen=True)
class NoiseGrid:
    """A label-noise study as a (loss, level) grid.

    Attributes:
        levels: the ``label_noise`` labels, in grid order.
        clean: the clean level's label.
        losses: the labels of the other axes' values (``"Dice"``), in grid order.
        baseline: the loss every other loss is compared with at each level (None: no such loss).
        cells: ``(loss, level)`` -> that configuration's results.
        metric: the main metric (``"segm.AP"``).
    """

    levels: list[str]
    clean: str
    losses: list[str]
    baseline: str | None
    cells: dict[tuple[str, str], ConfigResults]
    metric: str

    @property
    def noisy(self) -> list[str]:
        return [lv for lv in self.levels if lv != self.clean]

    @property
    def metric_name(self) -> str:
        return _METRIC_NAME.get(self.metric, self.metric)

    @property
    def higher_is_better(self) -> bool:
        return not lower_is_better(self.metric)


def _loss_label(results: StudyResults, axes: Mapping[str, str]) -> str:
    others = [a for a in results.spec.grid if a != NOISE_AXIS]
    shown = [axes[a] for a in others if len(results.spec.grid[a]) > 1] or [axes[a] for a in others[:1]]
    return " / ".join(shown) or results.spec.name


def _clean_level(values: Mapping[str, Any]) -> str:
    from losslab.data.noise_spec import parse_label_noise

    for label, spec in values.items():
        if spec is None or (isinstance(spec, str) and not parse_label_noise(spec)):
            return label
    return next(iter(values))


def noise_grid(results: StudyResults, tables: Sequence[Table]) -> NoiseGrid | None:
    """The study as a (loss, level) grid, or None when its grid has no ``label_noise`` axis (or no
    table has a metric yet)."""
    spec = results.spec
    table = main_table(tables)
    if NOISE_AXIS not in spec.grid or table is None:
        return None
    metric = next(m for m in table.metrics if m != "fps")
    cells: dict[tuple[str, str], ConfigResults] = {}
    losses: list[str] = []
    for cfg in results.configs:
        loss = _loss_label(results, cfg.axes)
        losses += [loss] if loss not in losses else []
        cells[(loss, cfg.axes[NOISE_AXIS])] = cfg
    axis = spec.baseline_axis()
    baseline = None
    if axis not in (None, NOISE_AXIS):
        baseline = next((loss for (loss, _), c in cells.items() if c.axes.get(axis) == spec.baseline), None)
    levels = list(spec.grid[NOISE_AXIS])
    return NoiseGrid(levels, _clean_level(spec.grid[NOISE_AXIS]), losses, baseline, cells, metric)


def seed_ratios(noisy: Mapping[int, float], clean: Mapping[int, float], floor: float = 0.0) -> dict[int, float]:
    """``noisy[s] / clean[s]`` for each seed both have; a seed whose clean value is at most ``floor``
    in size (or not finite) has no ratio: 0.02 / 0.01 is noise, not a loss that kept twice its AP.

    >>> seed_ratios({0: 40.0, 1: 45.0, 2: 0.02}, {0: 50.0, 1: 50.0, 2: 0.01, 3: 60.0}, floor=1.0)
    {0: 0.8, 1: 0.9}
    """
    out = {}
    for seed in sorted(set(noisy) & set(clean)):
        a, b = float(noisy[seed]), float(clean[seed])
        if math.isfinite(a) and math.isfinite(b) and abs(b) > floor:
            out[seed] = a / b
    return out


def relative_drop(
    noisy: Mapping[int, float], clean: Mapping[int, float], confidence: float = 0.95, floor: float = 0.0
) -> Interval:
    """The mean over seeds of ``noisy / clean`` (paired by seed) with its t-interval (none below 2
    seeds); seeds whose clean value is at most ``floor`` are left out (``seed_ratios``)."""
    return mean_ci(list(seed_ratios(noisy, clean, floor).values()), confidence)


def _floor(grid: NoiseGrid) -> float:
    """The smallest clean value a ratio may divide by: the collapse threshold for a score that is
    higher-is-better (mask AP below it is a collapsed mask head), none for an error."""
    return COLLAPSE_MASK_AP if grid.higher_is_better else 0.0


def _mean_ratio(grid: NoiseGrid, loss: str) -> Interval:
    """Per seed, the ratio averaged over the noisy levels (seeds that have every level), then its
    t-interval over seeds."""
    clean = grid.cells.get((loss, grid.clean))
    per_level = [
        seed_ratios(grid.cells[(loss, lv)].values(grid.metric), clean.values(grid.metric), _floor(grid))
        for lv in grid.noisy
        if clean is not None and (loss, lv) in grid.cells
    ]
    if not per_level or len(per_level) != len(grid.noisy):
        return mean_ci([])
    seeds = set.intersection(*(set(r) for r in per_level))
    return mean_ci([float(np.mean([r[s] for r in per_level])) for s in sorted(seeds)])


def ratio_of(grid: NoiseGrid, loss: str, level: str) -> Interval:
    """``loss``'s relative metric at ``level`` (its clean runs as the denominator)."""
    noisy, clean = grid.cells.get((loss, level)), grid.cells.get((loss, grid.clean))
    if noisy is None or clean is None:
        return mean_ci([])
    return relative_drop(noisy.values(grid.metric), clean.values(grid.metric), floor=_floor(grid))


def level_results(results: StudyResults, grid: NoiseGrid, level: str) -> StudyResults:
    """The runs of one level, each configuration relabelled by its loss and compared with the
    baseline loss at the same level."""
    loss_of = {cfg.label: loss for (loss, lv), cfg in grid.cells.items() if lv == level}
    configs = []
    for loss in grid.losses:
        cfg = grid.cells.get((loss, level))
        if cfg is None:
            continue
        configs.append(
            dataclasses.replace(
                cfg,
                label=loss,
                baseline=loss_of.get(cfg.baseline or ""),
                alias_of=loss_of.get(cfg.alias_of or "", cfg.alias_of),
            )
        )
    return dataclasses.replace(results, configs=configs)


def level_tables(results: StudyResults, grid: NoiseGrid) -> dict[str, Table]:
    """Per level, its main table (per-threshold AP), Holm-corrected across that level's losses."""
    out = {}
    for level in grid.levels:
        table = main_table(build_tables(level_results(results, grid, level)))
        if table is not None:
            out[level] = table
    return out


def _interval_text(iv: Interval, digits: int = 2) -> str:
    if iv.n == 0 or math.isnan(iv.mean):
        return "–"
    text = f"{iv.mean:.{digits}f}"
    return text if math.isnan(iv.low) else f"{text} [{iv.low:.{digits}f}, {iv.high:.{digits}f}]"


def _method(grid: NoiseGrid, verdicts: Mapping[tuple[str, str], Comparison]) -> str:
    compared = list(verdicts.values())
    if not compared:
        return (
            f"No verdicts against {grid.baseline}: a comparison needs two seeds, or one seed with per-image scores."
            if grid.baseline
            else "No verdicts: no loss axis holds the baseline."
        )
    n = max(c.diff.n for c in compared)
    holm = f"Holm-corrected across the losses compared with {grid.baseline} at that level"
    if all(c.method == "bootstrap" for c in compared):
        return (
            f"Verdicts: 1 seed, so a bootstrap over {n} validation images of the per-image {grid.metric_name} "
            f"difference against {grid.baseline} at the same level (it covers image sampling, not training "
            f"noise), {holm}."
        )
    mixed = (
        "; where only one seed is done, a bootstrap over the validation images (image sampling, not training noise)"
        if any(c.method == "bootstrap" for c in compared)
        else ""
    )
    tests = tests_text({f"{loss} at '{level}'": cmp for (loss, level), cmp in verdicts.items()})
    margin = next((c.margin for c in compared if c.margin is not None), None)
    equivalent = f", equivalent within ±{margin:g} by TOST" if margin is not None else ""
    return (
        f"Verdicts: each loss against {grid.baseline} at the same noise level on the {grid.metric_name} "
        f"difference (same seed, same data order): {tests}{mixed}, {holm}; better or worse when the corrected "
        f"p < 0.05{equivalent}."
    )


def _ratio_method(grid: NoiseGrid) -> str:
    seeds = max((len(c.values(grid.metric)) for c in grid.cells.values()), default=0)
    what = (
        f"Relative {grid.metric_name}: {grid.metric_name}(noisy) / {grid.metric_name}({grid.clean}) of the same "
        "loss and seed, "
    )
    if seeds >= 2:
        return what + f"the mean of the per-seed ratios with its 95 % t-interval over {seeds} seeds."
    return what + "one seed, so no interval."


def _verdicts_at(grid: NoiseGrid, tables: Mapping[str, Table]) -> dict[tuple[str, str], Comparison]:
    return {
        (loss, level): cmp
        for level, table in tables.items()
        for loss, cmp in table.comparisons.items()
        if cmp is not None
    }


def noise_findings(grid: NoiseGrid, tables: Mapping[str, Table]) -> list[str]:
    """The section's sentences: what was measured and how, which loss lost least, who beat the baseline."""
    verdicts = _verdicts_at(grid, tables)
    out = [
        "Training masks get each level's corruption (label_noise, deterministic per seed, image and "
        "instance); validation masks are clean, so every level is scored against the same truth.",
        _ratio_method(grid),
        _method(grid, verdicts),
    ]
    means = {loss: _mean_ratio(grid, loss) for loss in grid.losses}
    ranked = [loss for loss in grid.losses if not math.isnan(means[loss].mean)]
    if grid.noisy and ranked:
        ranked.sort(key=lambda loss: means[loss].mean, reverse=grid.higher_is_better)
        out.append(_ranking_sentence(grid, means, ranked))
    unranked = [loss for loss in grid.losses if loss not in ranked]
    if grid.noisy and unranked:
        out.append(
            f"No relative {grid.metric_name} for {join_names(unranked)}: no seed with a clean {grid.metric_name} above "
            f"{_floor(grid):g} (no masks learned), and a ratio of two values near zero measures nothing."
        )
    if verdicts:
        out.append(_verdict_sentence(grid, verdicts))
    return out


def _ranking_sentence(grid: NoiseGrid, means: Mapping[str, Interval], ranked: Sequence[str]) -> str:
    """Which loss lost least (and most) of its clean metric, and whether the intervals tell the first
    two apart: overlapping 95 % intervals make the order no finding."""
    best, worst = ranked[0], ranked[-1]
    line = (
        f"Lost least under label noise: {best}, keeping {_interval_text(means[best])} of its clean "
        f"{grid.metric_name} on average over the {len(grid.noisy)} noisy levels"
    )
    if grid.baseline and grid.baseline != best and grid.baseline in ranked:
        line += f" ({grid.baseline}: {_interval_text(means[grid.baseline])})"
    if worst != best:
        line += f"; lost most: {worst} ({_interval_text(means[worst])})"
    if len(ranked) > 1:
        a, b = means[best], means[ranked[1]]
        apart = a.low > b.high if grid.higher_is_better else a.high < b.low  # False when either is NaN
        if not apart:
            line += f". {best}'s interval overlaps the next one's ({ranked[1]}), so the order is not a finding"
    return line + "."


def _verdict_sentence(grid: NoiseGrid, verdicts: Mapping[tuple[str, str], Comparison]) -> str:
    groups: dict[str, list[str]] = {BETTER: [], WORSE: [], EQUIVALENT: []}
    for (loss, level), cmp in verdicts.items():
        if cmp.verdict in groups:
            groups[cmp.verdict].append(f"{loss} at {level} ({comparison_numbers(cmp)})")
    if groups[BETTER]:
        text = f"Better than {grid.baseline} at the same noise level: " + "; ".join(groups[BETTER])
    else:
        text = f"No loss beat {grid.baseline} at any noise level ({len(verdicts)} comparisons)"
    if groups[WORSE]:
        text += ". Worse: " + "; ".join(groups[WORSE])
    if groups[EQUIVALENT]:
        text += ". Equivalent within the margin: " + "; ".join(groups[EQUIVALENT])
    return text + "."


def _ratio_grid(grid: NoiseGrid) -> Grid:
    header = ["loss", f"{grid.metric_name} ({grid.clean})", *grid.noisy, "mean over noisy levels"]
    rows = []
    for loss in grid.losses:
        clean = grid.cells.get((loss, grid.clean))
        row = [loss, _interval_text(clean.interval(grid.metric)) if clean else "–"]
        row += [_interval_text(ratio_of(grid, loss, lv)) for lv in grid.noisy]
        rows.append([*row, _interval_text(_mean_ratio(grid, loss))])
    return Grid(header, rows, numeric=tuple(range(1, len(header))))


def _verdict_grid(grid: NoiseGrid, tables: Mapping[str, Table]) -> Grid:
    verdicts = _verdicts_at(grid, tables)
    rows = []
    for loss in grid.losses:
        cells = []
        for level in grid.levels:
            cmp = verdicts.get((loss, level))
            cells.append(
                "baseline" if loss == grid.baseline else f"{cmp.verdict}: {comparison_numbers(cmp)}" if cmp else ""
            )
        rows.append([loss, *cells])
    return Grid(["loss", *grid.levels], rows)


def _figure(grid: NoiseGrid, plot_dir: Path) -> Figure | None:
    series = {}
    for loss in grid.losses:
        points = []
        for level in grid.levels:
            cfg = grid.cells.get((loss, level))
            iv = cfg.interval(grid.metric) if cfg else mean_ci([])
            points.append((iv.mean, iv.low, iv.high))
        series[loss] = points
    unit = " (%)" if grid.metric.startswith(("segm.", "bbox.", "boundary.")) else ""
    path = plots.plot_noise_robustness(series, grid.levels, plot_dir / "noise_robustness.png", grid.metric_name + unit)
    if path is None:
        return None
    seeds = max((len(c.values(grid.metric)) for c in grid.cells.values()), default=0)
    band = (
        f"mean over {seeds} seeds, the band its 95 % t-interval"
        if seeds >= 2
        else "one seed, so no band (no interval over seeds)"
    )
    caption = (
        f"{grid.metric_name[:1].upper()}{grid.metric_name[1:]} on the clean validation masks against the label "
        f"noise of the training masks (levels in grid order), one line per loss: {band}. A flat line is a loss "
        "the noise does not hurt."
    )
    return Figure(path, caption)


def noise_blocks(results: StudyResults, tables: Sequence[Table], plot_dir: Path) -> tuple[list[Block], list[Figure]]:
    """The report's label-noise section and its figure; nothing for a study without a noise axis."""
    grid = noise_grid(results, tables)
    if grid is None:
        return [], []
    per_level = level_tables(results, grid)
    figure = _figure(grid, plot_dir)
    blocks = [Block("h2", "Label noise", anchor="noise"), Block("list", noise_findings(grid, per_level))]
    blocks += [Block("figures", [figure])] if figure else []
    blocks += [
        Block(
            "p",
            f"Relative {grid.metric_name} at each noisy level (1.00: no loss of {grid.metric_name}; –: no seed "
            f"with a clean {grid.metric_name} above {_floor(grid):g}, so no ratio):",
        )
    ]
    blocks += [Block("grid", _ratio_grid(grid))]
    if grid.baseline:
        blocks += [Block("p", f"Each loss against {grid.baseline} at the same noise level:")]
        blocks += [Block("grid", _verdict_grid(grid, per_level))]
    first = main_table(tables)
    for level, table in per_level.items():
        sub = level_results(results, grid, level)
        flags = {cfg.label: results.flags_of(cfg) for cfg in sub.configs}
        view = TableView(table, grid.baseline or results.spec.baseline, flags, table_note(sub, table, first))
        blocks += [Block("p", f"{table.title} at label noise {level!r}:"), Block("results", view)]
    return blocks, [figure] if figure else []


def print_noise(results: StudyResults, tables: Sequence[Table], console: Any) -> None:
    """The section on a rich console: the relative-metric table and the findings (nothing without a
    noise axis)."""
    from rich.markup import escape
    from rich.table import Table as RichTable

    grid = noise_grid(results, tables)
    if grid is None:
        return
    ratios = _ratio_grid(grid)
    rich = RichTable(title=f"label noise: relative {grid.metric_name}, mean [95% interval] over seeds")
    for j, head in enumerate(ratios.header):
        rich.add_column(escape(head), justify="right" if j else "left", overflow="fold")
    for row in ratios.rows:
        rich.add_row(*(escape(c) for c in row))
    console.print(rich)
    for line in noise_findings(grid, level_tables(results, grid)):
        console.print(escape(line), soft_wrap=True)
