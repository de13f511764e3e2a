"""From a study's database to its tables: each configuration's metrics over seeds, with intervals,
the verdict against the baseline beside each number, and the best value per column.

Tables (those whose metrics some run has): mask AP as the survey's README (FPS, all, AP50 ... AP95),
box AP, boundary AP, and the dense models' metrics (mask IoU / Dice, depth RMSE ...).

Intervals: with two seeds or more, a t-interval over seeds, and against the baseline the pooled test
of ``losslab.report.verdicts`` (the config x seed layout; a paired t-test for a configuration that cannot
be pooled); with one seed, a bootstrap over the validation images when the runs stored per-image
scores (``result["per_image"] = {name: {image_id: score}}``, e.g. ``{"segm": {...}}``). Either way the
p-values of one column (every configuration against its baseline) are Holm-corrected, and the verdict
is better, worse, equivalent (within the study's ``margin``) or undecided.

Only *verdict* runs enter the tables; a tuned study's *tune* runs (``losslab.study.tuning``) are in
``ConfigResults.tuning`` and the report's tuning section.

``collect`` also measures each done run's health (``losslab.study.flags``: plateau, skipped steps,
collapse); ``StudyResults.flags_of`` gives a configuration's flags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from losslab.report.stats import Comparison, Interval, compare_bootstrap, mean_ci
from losslab.report.verdicts import compare_family
from losslab.study.flags import COLLAPSED, EDGE_OF_GRID, MASKS_FAILED, Flag, RunHealth, config_flags, run_health
from losslab.study.selection import chosen_values, study_choices
from losslab.study.spec import StudySpec, parse_study
from losslab.study.store import StudyStore
from losslab.study.tuning import TuneChoice

__all__ = [
    "Cell",
    "ConfigResults",
    "StudyResults",
    "Table",
    "build_tables",
    "collect",
    "compare",
    "compare_column",
    "lower_is_better",
    "mark_best",
]

_THRESHOLDS = [50 + 5 * i for i in range(10)]
MASK_COLUMNS = [("FPS", "fps"), ("all", "segm.AP")] + [(f"AP{t}", f"segm.AP{t}") for t in _THRESHOLDS]
BOX_COLUMNS = [("all", "bbox.AP")] + [(f"AP{t}", f"bbox.AP{t}") for t in _THRESHOLDS]
BOUNDARY_COLUMNS = [("all", "boundary.AP"), ("AP50", "boundary.AP50"), ("AP75", "boundary.AP75")]
DENSE_GROUPS = ("mask", "depth")
#: Per-image score names tried, in order, for a metric's bootstrap (after the metric's own name).
PER_IMAGE_KEYS = {"segm": ("segm", "mask_iou", "iou"), "bbox": ("bbox", "box_iou"), "boundary": ("boundary",)}
_LOWER = ("rmse", "abs_rel", "absrel", "mae", "loss", "error", "seconds", "_ms", "ms_")


def lower_is_better(metric: str) -> bool:
    """Errors, losses and times: lower is better. Everything else (AP, IoU, FPS): higher."""
    name = metric.lower()
    return any(word in name for word in _LOWER)


@dataclass
class ConfigResults:
    """One configuration: its runs' metrics by seed."""

    label: str
    axes: dict[str, str]
    config: dict[str, Any]
    run_ids: dict[int, str]
    metrics: dict[int, dict[str, float | None]] = field(default_factory=dict)
    per_image: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)
    alias_of: str | None = None
    baseline: str | None = None
    tuning: TuneChoice | None = None

    def values(self, metric: str) -> dict[int, float]:
        """``{seed: value}`` of the done runs that have ``metric``."""
        return {s: m[metric] for s, m in self.metrics.items() if m.get(metric) is not None}

    def interval(self, metric: str) -> Interval:
        return mean_ci(list(self.values(metric).values()))


@dataclass
class Cell:
    """One number of a table: mean, interval half-width, verdict against the baseline, best or not."""

    mean: float
    half: float = math.nan
    n: int = 0
    verdict: str | None = None
    bold: bool = False


@dataclass
class Table:
    """A table: a title, column names, the metric of each column, and a row of cells per config."""

    title: str
    key: str
    columns: list[str]
    metrics: list[str]
    rows: list[tuple[str, list[Cell | None]]]
    comparisons: dict[str, Comparison | None]
    #: every column's comparisons: ``{metric: {label: Comparison | None}}`` (``comparisons`` is the main one's)
    families: dict[str, dict[str, Comparison | None]] = field(default_factory=dict)

    @property
    def compared(self) -> list[Comparison]:
        """The comparisons of the table's main metric that exist (none: no "vs" column)."""
        return [c for c in self.comparisons.values() if c is not None]


@dataclass
class StudyResults:
    """Everything the report shows."""

    spec: StudySpec
    configs: list[ConfigResults]
    runs: list[dict[str, Any]]
    store: StudyStore
    health: dict[str, RunHealth] = field(default_factory=dict)

    def by_label(self, label: str) -> ConfigResults:
        return next(c for c in self.configs if c.label == label)

    def run_healths(self, cfg: ConfigResults) -> list[RunHealth]:
        """The health of ``cfg``'s done runs, by seed."""
        return [self.health[cfg.run_ids[s]] for s in sorted(cfg.metrics) if cfg.run_ids.get(s) in self.health]

    def flags_of(self, cfg: ConfigResults) -> list[Flag]:
        """``cfg``'s flags (collapsed, still falling, 1 seed, steps skipped ...), from its done verdict
        runs, and its tuning's: the best value at the edge of the grid. In a tuned study "collapsed"
        is said only of a configuration that collapsed at every value tried; one that collapsed at its
        chosen value only is flagged "masks failed"."""
        flags = config_flags(self.run_healths(cfg))
        tuning = cfg.tuning
        if tuning is None:
            return flags
        out = []
        for flag in flags:
            if flag.name == COLLAPSED and not tuning.collapsed_everywhere():
                trained = len(tuning.scores) - len(tuning.collapsed_points())
                detail = f"{flag.detail}; not at every value tried: {trained} of {len(tuning.scores)} trained masks"
                flag = Flag(MASKS_FAILED, detail, flag.mode)
            out.append(flag)
        for key in tuning.edge:
            value = (tuning.chosen or {}).get(key)
            out.append(Flag(EDGE_OF_GRID, f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"))
        return out


def collect(store: StudyStore) -> StudyResults:
    """Read the study's spec, runs and metrics from its store.

    Raises:
        ValueError: the store holds no study.
    """
    info = store.study()
    if info is None:
        raise ValueError(f"{store.path} holds no study; run `losslab study run NAME --out DIR` first")
    spec = parse_study(info["spec"], where=str(store.path))
    rows = {r["run_id"]: r for r in store.runs()}
    metrics = store.all_metrics()
    aliases = spec.aliases()
    choices = study_choices(spec, store)
    chosen = chosen_values(choices)
    runs_of: dict[str, dict[int, str]] = {}
    for run in spec.runs(chosen):
        runs_of.setdefault(run.label, {})[run.seed] = run.run_id
    configs = []
    for label, axes, overrides in spec.configurations():
        target = aliases.get(label, label)
        ids = runs_of.get(target, {})
        config = {**spec.config, **overrides, **(chosen.get(target) or {})}
        cfg = ConfigResults(label, axes, config, ids, alias_of=aliases.get(label), tuning=choices.get(target))
        for seed, run_id in ids.items():
            if rows.get(run_id, {}).get("status") == "done":
                cfg.metrics[seed] = metrics.get(run_id, {})
                result = store.result(run_id) or {}
                if isinstance(result.get("per_image"), dict):
                    cfg.per_image[seed] = result["per_image"]
        base = spec.baseline_of(axes)
        cfg.baseline = base if base not in (label, target) and aliases.get(base or "") != target else None
        configs.append(cfg)
    runs = [rows[r.run_id] for r in spec.unique_runs(chosen) if r.run_id in rows]
    health = {
        r["run_id"]: run_health(
            r["run_id"], r["seed"], store.losses(r["run_id"]), metrics.get(r["run_id"], {}), r["run_dir"]
        )
        for r in runs
        if r["status"] == "done"
    }
    return StudyResults(spec, configs, runs, store, health)


def _per_image(cfg: ConfigResults, seed: int, metric: str) -> dict[str, float] | None:
    scores = cfg.per_image.get(seed) or {}
    group, _, name = metric.partition(".")
    # A group's generic per-image score stands for its main metric only (segm.AP, not segm.AP75).
    fallbacks = PER_IMAGE_KEYS.get(group, (group,)) if name in ("AP", "iou", "IoU") else ()
    for key in (metric, *fallbacks):
        if isinstance(scores.get(key), dict) and scores[key]:
            return scores[key]
    return None


def compare(results: StudyResults, cfg: ConfigResults, metric: str) -> Comparison | None:
    """``cfg`` against its baseline on ``metric`` with one seed: a bootstrap over the validation images
    (None with two seeds or more, which ``compare_column`` tests over seeds, or without per-image scores)."""
    if cfg.baseline is None:
        return None
    base = results.by_label(cfg.baseline)
    common = sorted(set(cfg.values(metric)) & set(base.values(metric)))
    if len(common) != 1:
        return None
    pa, pb = _per_image(cfg, common[0], metric), _per_image(base, common[0], metric)
    if pa and pb:
        return compare_bootstrap(pa, pb, higher_is_better=not lower_is_better(metric))
    return None


def _table(results: StudyResults, title: str, key: str, columns: list[tuple[str, str]]) -> Table | None:
    present = [(name, m) for name, m in columns if any(c.values(m) for c in results.configs)]
    if not any(m != "fps" for _, m in present):
        return None
    names = [n for n, _ in present]
    metrics = [m for _, m in present]
    main = next(m for m in metrics if m != "fps")
    # One family per column: every configuration against its baseline, Holm-corrected together.
    family = {m: compare_column(results, m) for m in metrics}
    rows: list[tuple[str, list[Cell | None]]] = []
    for cfg in results.configs:
        cells: list[Cell | None] = []
        for metric in metrics:
            iv = cfg.interval(metric)
            cmp = family[metric].get(cfg.label)
            cells.append(Cell(iv.mean, iv.half_width, iv.n, cmp.verdict if cmp else None) if iv.n else None)
        rows.append((cfg.label, cells))
    mark_best([cells for _, cells in rows], metrics)
    return Table(title, key, names, metrics, rows, family[main], family)


def compare_column(results: StudyResults, metric: str) -> dict[str, Comparison | None]:
    """Every configuration against its baseline on ``metric`` as one family: the pooled test over the
    config x seed layout (collapsed configurations kept out of the pool), with one seed a bootstrap over
    images; Holm-corrected together, with equivalence within the study's margin."""
    higher = not lower_is_better(metric)
    values = {c.label: c.values(metric) for c in results.configs if not c.alias_of and c.values(metric)}
    baselines = {c.label: c.baseline for c in results.configs if not c.alias_of}
    collapsed = [c.label for c in results.configs if any(h.collapsed for h in results.run_healths(c))]
    single = {c.label: compare(results, c, metric) for c in results.configs}  # one-seed configurations only
    family = compare_family(values, baselines, collapsed, higher, results.spec.margin, extra=single)
    return {c.label: None if c.baseline is None else family.get(c.alias_of or c.label) for c in results.configs}


def mark_best(rows: list[list[Cell | None]], metrics: list[str]) -> None:
    """Set ``bold`` on the best cell(s) of each column, compared as shown (two decimals); a column
    where every configuration ties as shown (at this budget often all 0.00) has no best and stays
    plain."""
    for j, metric in enumerate(metrics):
        means = [round(cells[j].mean, 2) for cells in rows if cells[j] is not None]
        if not means or (len(means) > 1 and min(means) == max(means)):
            continue
        best = min(means) if lower_is_better(metric) else max(means)
        for cells in rows:
            if cells[j] is not None and round(cells[j].mean, 2) == best:
                cells[j].bold = True


def _dense_columns(results: StudyResults) -> list[tuple[str, str]]:
    """Mask metrics first (the first one is the table's main metric), then depth, in logged order."""
    names: list[str] = []
    for cfg in results.configs:
        for m in cfg.metrics.values():
            names.extend(k for k in m if k.split(".")[0] in DENSE_GROUPS and k not in names)
    names.sort(key=lambda n: DENSE_GROUPS.index(n.split(".")[0]))
    return [("FPS", "fps"), *((n, n) for n in names)] if names else []


def build_tables(results: StudyResults) -> list[Table]:
    """The tables that the study's metrics allow, in the report's order."""
    specs = [
        ("Mask AP (COCO segm)", "segm", MASK_COLUMNS),
        ("Box AP (COCO bbox)", "bbox", BOX_COLUMNS),
        ("Boundary AP (Boundary IoU)", "boundary", BOUNDARY_COLUMNS),
        ("Dense metrics", "dense", _dense_columns(results)),
    ]
    tables = [_table(results, title, key, cols) for title, key, cols in specs]
    return [t for t in tables if t is not None]
