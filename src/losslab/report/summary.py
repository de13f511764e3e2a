"""What a reader needs first, in words: the verdict per configuration, the flags, the budget, and what
each table's columns and intervals mean (which test, which correction, over how many seeds or images).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

from losslab.config import format_seconds
from losslab.report.document import comparison_numbers, flags_text
from losslab.report.stats import BETTER, EQUIVALENT, UNDECIDED, WORSE, Comparison
from losslab.report.tables import StudyResults, Table
from losslab.study.flags import (
    COLLAPSE_BOX_AP,
    COLLAPSE_MASK_AP,
    COLLAPSED,
    MASKS_FAILED,
    MIN_PLATEAU_POINTS,
    ONE_SEED,
    PLATEAU_FRACTION,
    STEPS_SKIPPED,
    STILL_FALLING,
)

__all__ = [
    "budget_line",
    "config_lines",
    "headline",
    "join_names",
    "main_table",
    "method_of",
    "summary_items",
    "table_note",
    "tests_text",
]

_COLUMN_MEANING = {
    "segm": "AP is COCO mask AP@[.50:.95], the mean of AP50, AP55, …, AP95 (AP at mask IoU 0.50, 0.55, …, 0.95). "
    "FPS: images per second at batch 1; it does not depend on the training loss (how it was timed: Reproduce).",
    "bbox": "COCO box AP: AP@[.50:.95] and AP at each box IoU threshold.",
    "boundary": "Boundary AP: COCO AP with Boundary IoU (Cheng et al. 2021) in place of mask IoU; it weighs the "
    "mask's outline.",
    "dense": "The dense model's metrics on the val split (mask IoU, Dice, Boundary IoU; depth errors: lower is "
    "better). FPS: images per second at batch 1; it does not depend on the training loss.",
}
_NAME = {"segm": "mask AP", "bbox": "box AP", "boundary": "boundary AP"}


def main_table(tables: Sequence[Table]) -> Table | None:
    """The table whose comparisons are the study's verdict: mask AP, else the dense metrics."""
    by_key = {t.key: t for t in tables}
    return by_key.get("segm") or by_key.get("dense") or (tables[0] if tables else None)


def _metric_name(table: Table) -> str:
    return _NAME.get(table.key) or next(
        (c for c, m in zip(table.columns, table.metrics, strict=True) if m != "fps"), ""
    )


def tests_text(comparisons: Mapping[str, Comparison | None]) -> str:
    """Which test gave the verdicts over seeds: ``"pooled t-test over the config × seed layout (3 seeds,
    df=16); paired t-test for Dice (not pooled: ...)"``; ``""`` when none was over seeds."""
    over_seeds = {k: c for k, c in comparisons.items() if c is not None and c.method != "bootstrap"}
    if not over_seeds:
        return ""
    n = max(c.diff.n for c in over_seeds.values())
    pooled = [c for c in over_seeds.values() if c.method.startswith("pooled")]
    paired = [label for label, c in over_seeds.items() if c.method.startswith("paired")]
    parts = []
    if pooled:
        parts.append(f"pooled t-test over the config × seed layout ({n} seeds, df={pooled[0].df:g})")
    if paired:
        who = f" for {join_names(paired)}" if pooled else f" over {n} seeds"
        parts.append(f"paired t-test{who} (not pooled: collapsed, other seeds or unequal variances)")
    return "; ".join(parts)


def method_of(table: Table, baseline: str) -> str:
    """``"pooled t-test over the config × seed layout (3 seeds, df=16), Holm-corrected across 8
    comparisons with BCE"``, or ``""``."""
    compared = table.compared
    if not compared:
        return ""
    n = max(c.diff.n for c in compared)
    holm = f"Holm-corrected across {len(compared)} comparison{'s' if len(compared) != 1 else ''} with {baseline}"
    if all(c.method == "bootstrap" for c in compared):
        return f"1 seed: bootstrap over {n} images, which covers image sampling, not training noise; {holm}"
    return f"{tests_text(table.comparisons)}; {holm}"


def _margin_text(table: Table) -> str:
    mdes = sorted(c.mde for c in table.compared if c.mde is not None and math.isfinite(c.mde))
    margin = next((c.margin for c in table.compared if c.margin is not None), None)
    if margin is None:
        return ""
    text = f"equivalent: within ±{margin:g} by two one-sided tests (Holm)"
    if mdes:
        span = f"{mdes[0]:.2f}" if mdes[-1] - mdes[0] < 0.005 else f"{mdes[0]:.2f}–{mdes[-1]:.2f}"
        text += f"; the smallest difference this design detects with power 0.8: {span}"
    return text


def join_names(labels: Sequence[str], limit: int = 6) -> str:
    """``"a, b and c"``; past ``limit`` names, the rest as ``"N more"``."""
    shown = list(labels[:limit]) + ([f"{len(labels) - limit} more"] if len(labels) > limit else [])
    return ", ".join(shown[:-1]) + (" and " if len(shown) > 1 else "") + shown[-1]


def headline(results: StudyResults, table: Table) -> str:
    """One sentence: who beat the baseline, who was worse, who could not be told apart, and how."""
    base = results.spec.baseline
    metric = _metric_name(table)
    groups: dict[str, list[str]] = {BETTER: [], WORSE: [], EQUIVALENT: [], UNDECIDED: []}
    for label, cmp in table.comparisons.items():
        if cmp is not None and not results.by_label(label).alias_of:
            groups[cmp.verdict].append(label)
    if not table.compared:
        return (
            f"No verdicts against {base}: a comparison needs two seeds, or one seed with per-image scores "
            "(run with --seeds 3)."
        )
    if groups[BETTER]:
        parts = [f"Better than {base} on {metric}: {join_names(groups[BETTER])}"]
    else:
        parts = [f"No configuration beat {base} on {metric}"]
    if groups[WORSE]:
        parts.append(f"worse: {join_names(groups[WORSE])}")
    margin = next((c.margin for c in table.compared if c.margin is not None), None)
    if groups[EQUIVALENT]:
        parts.append(f"equivalent within ±{margin:g} of {base}: {join_names(groups[EQUIVALENT])}")
    if groups[UNDECIDED]:
        parts.append(f"undecided: {join_names(groups[UNDECIDED])}")
    how = "; ".join(p for p in (method_of(table, base), _margin_text(table)) if p)
    return "; ".join(parts) + f" ({how})."


def config_lines(results: StudyResults, table: Table) -> list[str]:
    """Per configuration: its main number, its verdict against the baseline with the difference, its
    flags."""
    main = next((j for j, m in enumerate(table.metrics) if m != "fps"), 0)
    rows = dict(table.rows)
    out = []
    for cfg in results.configs:
        cell = rows.get(cfg.label, [None] * len(table.metrics))[main]
        if cfg.alias_of:
            out.append(f"{cfg.label}: the same runs as {cfg.alias_of}.")
            continue
        if cell is None:
            out.append(f"{cfg.label}: no finished run.")
            continue
        value = f"{_metric_name(table)} {cell.mean:.2f}" + ("" if math.isnan(cell.half) else f" ±{cell.half:.2f}")
        cmp = table.comparisons.get(cfg.label)
        if cfg.baseline is None:
            verdict = "the baseline"
        elif cmp is None:
            verdict = f"no comparison with {cfg.baseline}"
        else:
            verdict = _verdict_words(cmp, cfg.baseline) + f" (Δ {comparison_numbers(cmp)})"
        flags = results.flags_of(cfg)
        out.append(f"{cfg.label}: {value}, {verdict}" + (f"; {flags_text(flags)}." if flags else "."))
    return out


def _verdict_words(cmp: Comparison, baseline: str) -> str:
    """``"worse than BCE"``, ``"equivalent within ±2 of BCE"``, ``"undecided"``."""
    if cmp.verdict in (BETTER, WORSE):
        return f"{cmp.verdict} than {baseline}"
    if cmp.verdict == EQUIVALENT:
        return f"equivalent within ±{cmp.margin:g} of {baseline}"
    return cmp.verdict


def _labels_with(results: StudyResults, name: str) -> list[str]:
    return [c.label for c in results.configs if not c.alias_of and any(f.name == name for f in results.flags_of(c))]


def _collapse_modes(results: StudyResults) -> str:
    """``" (masks fill their boxes: A and B; masks are empty: C)"``, from the collapsed flags' modes."""
    modes: dict[str, list[str]] = {}
    for c in results.configs:
        for f in results.flags_of(c):
            if f.name == COLLAPSED and f.mode and not c.alias_of:
                modes.setdefault(f.mode, []).append(c.label)
    return f" ({'; '.join(f'{m}: {join_names(labels)}' for m, labels in modes.items())})" if modes else ""


def _untrained(results: StudyResults, table: Table | None) -> str:
    """A warning when no configuration's main metric reached what "collapsed" calls near zero."""
    if table is None or table.key != "segm":
        return ""
    main = table.metrics.index("segm.AP")
    means = [cells[main].mean for _, cells in table.rows if cells[main] is not None]
    if not means or max(means) >= COLLAPSE_MASK_AP:
        return ""
    return (
        f"No configuration reached mask AP {COLLAPSE_MASK_AP:g} at this budget: the comparisons are between models "
        "that have not learned masks yet."
    )


def _unmeasured(results: StudyResults) -> str:
    healths = list(results.health.values())
    unknown = [h for h in healths if h.plateau is None or h.plateau.converged is None]
    if not unknown:
        return ""
    return (
        f"Plateau not measured for {len(unknown)} of {len(healths)} runs: fewer than {MIN_PLATEAU_POINTS} logged "
        f"losses in their last {100 * PLATEAU_FRACTION:.0f} % of iterations (lower log_every)."
    )


def warnings_of(results: StudyResults, table: Table | None = None) -> list[str]:
    """The flags, gathered: nothing learned, smoke-test budget, curves still falling or not measured,
    collapsed masks, one seed, skipped steps, unfinished runs (``table``: the main results table)."""
    out = [w for w in (_untrained(results, table),) if w]
    falling = _labels_with(results, STILL_FALLING)
    base = next((c for c in results.configs if c.label == results.spec.baseline), None)
    if base is not None and base.label in falling:
        out.append(
            f"Smoke-test budget: the baseline {base.label}'s training loss is still falling at the end, so "
            "every number here may change with more iterations."
        )
    if falling:
        out.append(f"Still falling over the last {100 * PLATEAU_FRACTION:.0f} % of iterations: {join_names(falling)}.")
    out += [w for w in (_unmeasured(results),) if w]
    collapsed = _labels_with(results, COLLAPSED)
    if collapsed:
        out.append(
            f"Collapsed (mask AP below {COLLAPSE_MASK_AP:g} while box AP is at least {COLLAPSE_BOX_AP:g}): "
            f"{join_names(collapsed)}: the boxes train, the masks do not{_collapse_modes(results)}"
            + (", at every value tried." if results.spec.tune is not None else ".")
        )
    failed = _labels_with(results, MASKS_FAILED)
    if failed:
        out.append(
            f"Masks failed at the chosen value but trained at another value tried: {join_names(failed)} "
            "(not a collapse of the loss: see the Tuning section)."
        )
    if _labels_with(results, ONE_SEED):
        out.append(
            "1 seed: intervals cover image sampling, not training noise; run with --seeds 3 for verdicts over seeds."
        )
    skipped = _labels_with(results, STEPS_SKIPPED)
    if skipped:
        out.append(f"Steps skipped for a non-finite loss: {join_names(skipped)} (see the runs table).")
    counts: dict[str, int] = {}
    for run in results.runs:
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    unfinished = {s: n for s, n in counts.items() if s != "done"}
    if unfinished:
        out.append("Not all runs are done: " + ", ".join(f"{n} {s}" for s, n in sorted(unfinished.items())) + ".")
    return out


def _values(results: StudyResults, key: str) -> str:
    seen = []
    for run in results.runs:  # tune and verdict runs, as stored
        value = run["config"].get(key)
        if value is not None and value not in seen:
            seen.append(value)
    return "/".join(str(v) for v in seen) or "?"


def budget_line(results: StudyResults) -> str:
    """``"Budget: yolact_tiny · synthetic, 200 train / 40 val images, 128 px · 450 iterations at batch 4 ·
    1 seed · 9 runs, 13:27 wall"``."""
    spec = results.spec
    synth = spec.dataset.get("synthetic")
    if synth is not None:
        data = f"synthetic data, {synth.get('train', '?')} train / {synth.get('val', '?')} val images"
        data += f", {synth['size']} px" if "size" in synth else ""
    else:
        data = f"data {spec.dataset.get('path')}"
    epochs = _values(results, "epochs")
    steps = f"{_values(results, 'max_iter')} iterations" if epochs in ("?", "0") else f"{epochs} epochs"
    seeds = f"{len(spec.seeds)} seed" + ("s" if len(spec.seeds) != 1 else "")
    if spec.tune is not None:
        tried = " × ".join(f"{len(v)} {k}" for k, v in spec.tune.grid.items())
        seeds = (
            f"tuning: {tried} × {len(spec.tune.seeds)} seed{'s' if len(spec.tune.seeds) != 1 else ''}; verdict: {seeds}"
        )
    starts = [r["started"] for r in results.runs if r["started"]]
    ends = [r["finished"] for r in results.runs if r["finished"]]
    wall = f", {format_seconds(max(ends) - min(starts))} wall" if starts and ends else ""
    model = spec.model or _values(results, "model")
    batch = _values(results, "batch_size")
    return f"Budget: {model} · {data} · {steps} at batch {batch} · {seeds} · {len(results.runs)} runs{wall}."


def _no_results(results: StudyResults) -> str:
    tune = [r for r in results.runs if r.get("stage") == "tune"]
    if not tune:
        return "No results yet: no run is done."
    done = sum(1 for r in tune if r["status"] == "done")
    return f"No verdict run is done yet (tuning: {done} of {len(tune)} runs done); the Tuning section shows them."


def summary_items(results: StudyResults, tables: Sequence[Table]) -> list[str]:
    """The summary box: the verdict, the warnings, the budget."""
    table = main_table(tables)
    first = headline(results, table) if table else _no_results(results)
    return [
        first,
        *warnings_of(results, table),
        budget_line(results),
        f"Report written {time.strftime('%Y-%m-%d %H:%M %Z')}.",
    ]


def table_note(results: StudyResults, table: Table, first: Table | None = None) -> str:
    """What the table's columns, intervals, marks and "vs" column mean; after the ``first`` table
    (which explains them in full) only its columns and what differs."""
    base = results.spec.baseline
    cells = [c for _, cells in table.rows for c in cells if c is not None]
    seeds = max((c.n for c in cells), default=0)
    parts = [_COLUMN_MEANING.get(table.key, "")]
    if first is not None and first is not table:
        parts.append(f"Intervals, bold, grey and ▲/▼ as in the {first.title} table.")
        if not table.compared and any(c.baseline for c in results.configs):
            parts.append("No 'vs' column: with one seed, the runs store per-image scores for mask AP only.")
        elif table.compared:
            parts.append(f"vs {base}: {method_of(table, base)}.")
        return " ".join(p for p in parts if p)
    parts.append(
        f"Each number is the mean over {seeds} seeds ± the half-width of its 95 % t-interval."
        if seeds >= 2
        else "One seed: the numbers have no interval."
    )
    parts.append("Bold: the best of its column; grey: a column where every configuration is 0.00.")
    compared = table.compared
    if compared and all(c.method == "bootstrap" for c in compared):
        n = max(c.diff.n for c in compared)
        parts.append(
            f"1 seed: the interval covers image sampling, not training noise. vs {base}: the mean, over the {n} "
            f"validation images that hold an object, of the per-image {_metric_name(table)} difference "
            f"(configuration − {base}), with its 95 % bootstrap interval (2,000 resamples of the images); it is "
            "not the difference of the 'all' column, which pools every detection of the split."
        )
    elif compared:
        parts.append(
            f"vs {base}: the mean paired difference (configuration − {base}, same seed, same data order) with its "
            "95 % t-interval."
        )
    if compared:
        parts.append(
            f"The verdict and ▲/▼ (better/worse in that column): {method_of(table, base)}, per column; better or "
            "worse when the corrected p < 0.05 (the interval shown is not corrected)."
        )
    elif any(c.baseline for c in results.configs):
        parts.append("No 'vs' column: with one seed, the runs store per-image scores for mask AP only.")
    return " ".join(p for p in parts if p)
