"""``losslab study report DIR``: the study's summary, tables, plots and verdicts, from ``DIR/study.db``.

Writes ``results.csv`` (one row per run), ``report.md``, ``table.tex``, ``report.html`` (one page,
images inline) and ``plots/*``. The page opens with a summary (the verdict per configuration in words,
the flags, the budget), then the tables: each number is the mean over seeds ``± the half-width of its
95% interval``, ``▲``/``▼`` where it is better/worse than the baseline's (a paired t-test over seeds,
or with one seed a bootstrap over validation images; Holm-corrected per column), the best of each
column in bold; then every run, how to reproduce the study, and the figures with captions. A study
whose grid has a ``label_noise`` axis gets a section of its own after the tables
(``losslab.report.noise_report``, ``plots/noise_robustness.png``).

``results.csv`` keeps its first columns (``CSV_COLUMNS[:23]``, DESIGN.md's contract: a tuned study's
``stage``, ``tune`` or ``verdict``, and the ``lr`` each run trained with follow the seed) and appends the
run's health (``losslab.study.flags``): ``iterations``, ``skipped_steps``, ``loss_slope`` (the total
loss's least-squares slope over the last 20 % of iterations, relative to its mean there, per 1000
iterations), its 95 % interval ``loss_slope_low`` / ``loss_slope_high``, ``loss_fall`` (the fitted
relative fall across that window), ``converged`` (true / false / empty when too few points), ``flags``,
``wall_seconds`` and ``precision`` (how the run trained: ``fp32``, ``bf16+channels-last``, ...; with
``amp=true`` that depends on the CPU, and so can the numbers).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from losslab.engine.metric_keys import AP_KEYS
from losslab.report.document import Block, Grid, TableView, flags_text, format_cell, render_markdown, tex_table
from losslab.report.figures import make_plots
from losslab.report.noise_report import noise_blocks, print_noise
from losslab.report.page import render_html
from losslab.report.reproduce import config_grid, environment, grid_axes, runs_grid
from losslab.report.summary import config_lines, main_table, summary_items, table_note
from losslab.report.tables import StudyResults, Table, build_tables, collect
from losslab.report.tuning_report import tuning_blocks, write_verdicts_csv
from losslab.study.flags import COLLAPSE_BOX_AP, COLLAPSE_MASK_AP, PLATEAU_FRACTION, PLATEAU_TOLERANCE
from losslab.study.store import StudyStore

__all__ = ["CSV_COLUMNS", "format_cell", "make_plots", "print_tables", "write_report", "write_results_csv"]

_AP = list(AP_KEYS)
#: The columns of ``results.csv``, in order (DESIGN.md's first; new columns are appended).
CSV_COLUMNS = ["run_id", "config", "loss", "seed", "stage", "lr", "batch_size", "fps", "AP", *_AP, "box_AP",
               "boundary_AP", "train_seconds", "status", "iterations", "skipped_steps", "loss_slope", "loss_slope_low",
               "loss_slope_high", "loss_fall", "converged", "flags", "wall_seconds", "precision", "mask_fill",
               "gt_fill"]  # fmt: skip
_CSV_METRICS = {"fps": "fps", "AP": "segm.AP", **{a: f"segm.{a}" for a in _AP}, "box_AP": "bbox.AP",
                "boundary_AP": "boundary.AP", "train_seconds": "train_seconds", "iterations": "iterations",
                "mask_fill": "mask_fill.detections", "gt_fill": "mask_fill.ground_truth"}  # fmt: skip


def _number(value: float | None, digits: int = 4) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _lr(config: dict[str, Any]) -> str:
    """The learning rate a run trained with: its config's, else the trainer's default."""
    from losslab.engine.config import TrainConfig

    value = config.get("lr", TrainConfig.lr)
    return f"{float(value):g}"


def write_results_csv(results: StudyResults, path: Path) -> Path:
    """One row per run: ``CSV_COLUMNS``; metrics of runs that are not done stay empty."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for run in results.runs:
            metrics = results.store.metrics(run["run_id"]) if run["status"] == "done" else {}
            health = results.health.get(run["run_id"])
            plateau = health.plateau if health else None
            row: dict[str, Any] = {
                "run_id": run["run_id"],
                "config": run["label"],
                "loss": run["config"].get("mask_loss", ""),
                "seed": run["seed"],
                "stage": run.get("stage") or "verdict",
                "lr": _lr(run["config"]),
                "batch_size": run["config"].get("batch_size", ""),
                "status": run["status"],
                "skipped_steps": health.skipped_steps if health else "",
                "loss_slope": _number(plateau.slope if plateau else None, 6),
                "loss_slope_low": _number(plateau.low if plateau else None, 6),
                "loss_slope_high": _number(plateau.high if plateau else None, 6),
                "loss_fall": _number(plateau.fall if plateau else None, 6),
                "converged": "" if plateau is None or plateau.converged is None else str(plateau.converged).lower(),
                "flags": flags_text(health.flags(), details=False) if health else "",
                "wall_seconds": _number(run["wall_seconds"], 1),
                "precision": (results.store.result(run["run_id"]) or {}).get("precision", "") if metrics else "",
            }
            for col, metric in _CSV_METRICS.items():
                row[col] = _number(metrics.get(metric))
            if row["iterations"]:
                row["iterations"] = str(int(float(row["iterations"])))
            writer.writerow([row[c] for c in CSV_COLUMNS])
    return path


def _result_blocks(results: StudyResults, tables: list[Table]) -> list[Block]:
    flags = {cfg.label: results.flags_of(cfg) for cfg in results.configs}
    blocks = []
    for table in tables:
        view = TableView(table, results.spec.baseline, flags, table_note(results, table, tables[0]))
        blocks += [Block("h2", table.title, anchor=table.key), Block("results", view)]
    return blocks


def _method_notes(results: StudyResults) -> list[str]:
    notes = list(results.spec.notes) + list(results.spec.warnings)
    for cfg in results.configs:
        if cfg.alias_of:
            notes.append(f"'{cfg.label}' is the same configuration as '{cfg.alias_of}': its numbers are those runs.")
    notes += [
        _evaluation_note(results),
        f"Converged / still falling: a least-squares line through the total training loss that metrics.csv "
        f"logged over the last {100 * PLATEAU_FRACTION:.0f} % of a run's iterations; its slope is given relative "
        "to the mean loss there, per 1000 iterations, with its 95 % t-interval. A run has converged when the "
        f"fitted line falls by less than {100 * PLATEAU_TOLERANCE:.0f} % of that mean across the window, or the "
        "interval covers zero; it is still falling otherwise (results.csv: loss_slope, loss_fall, converged).",
        f"Collapsed: mean mask AP over seeds below {COLLAPSE_MASK_AP:g} while box AP is at least "
        f"{COLLAPSE_BOX_AP:g}. Steps skipped: steps the trainer skipped for a non-finite loss "
        "(result.json's skipped_steps, the run folder's skipped_steps.csv).",
        "Verdicts: with 2 seeds or more, a pooled t-test over the config × seed layout: every configuration "
        "trains on the same seeds, so the seeds are blocks and the residual variance of the two-way fit "
        "(configuration + seed) is pooled over the configurations that take part; a collapsed configuration, "
        "one that misses some seeds, or a layout whose configurations' variances differ (Bartlett p < 0.01) "
        "gets the paired t-test over its own seeds instead. With 1 seed, a bootstrap over the validation images "
        "(it covers image sampling, not training noise). The p-values of one column are Holm-corrected across the "
        "configurations compared with the baseline. Better / worse: the corrected p < 0.05; equivalent: within "
        f"±{results.spec.margin:g} by two one-sided tests (TOST, Holm-corrected); undecided: neither. The smallest "
        "detectable difference is the true difference the test finds with power 0.8 at level 0.05 / m.",
    ]
    return notes


def _published_blocks(results: StudyResults) -> list[Block]:
    """ "What the published numbers say": the shipped results a spec names (``published``)."""
    if not results.spec.published:
        return []
    from losslab.report.published import own_numbers_text

    text = own_numbers_text(results.spec.published)
    return [
        Block("h2", "What the published numbers say", anchor="published"),
        Block("p", text.intro),
        Block("grid", Grid(text.header, text.rows, numeric=(1, 3))),
        Block("list", text.bullets),
    ]


def _evaluation_note(results: StudyResults) -> str:
    threshold = float(results.spec.config.get("eval_score_threshold", 0.0) or 0.0)
    if threshold > 0:
        return (
            f"Evaluation: detections scoring below {threshold:g} are left out of the COCO evaluation "
            "(eval_score_threshold; the YOLACT++ loss survey's eval.py used 0.15), which truncates the "
            "precision-recall curves: these APs are not comparable with APs computed from every detection."
        )
    return "Evaluation: every detection the model returns enters the COCO evaluation (eval_score_threshold 0)."


def _failed_blocks(results: StudyResults) -> list[Block]:
    failed = [r for r in results.runs if r["status"] == "failed"]
    if not failed:
        return []
    items = []
    for run in failed:
        last = (run["error"] or "").strip().splitlines()[-1:] or [""]
        items.append(f"{run['label']} · seed {run['seed']} ({run['run_id']}): {last[0]}")
    return [Block("h2", "Failed runs", anchor="failed"), Block("list", items)]


def write_report(out_dir: str | Path) -> dict[str, Path]:
    """Write every report file of the study in ``out_dir``; returns ``{name: path}``.

    Raises:
        ValueError: ``out_dir`` has no ``study.db``.
    """
    out_dir = Path(out_dir)
    db = out_dir / "study.db"
    if not db.is_file():
        raise ValueError(f"{db} does not exist; run `losslab study run NAME --out {out_dir}` first")
    with StudyStore(db) as store:
        results = collect(store)
        tables = build_tables(results)
        files: dict[str, Path] = {"results.csv": write_results_csv(results, out_dir / "results.csv")}
        files["verdicts.csv"] = write_verdicts_csv(results, tables, out_dir / "verdicts.csv")
        figures = make_plots(results, out_dir / "plots")
        tuning, tuning_figures = tuning_blocks(results, out_dir / "plots")
        spec = results.spec
        main = main_table(tables)
        blocks = [Block("h1", f"Study {spec.name}")]
        blocks += [Block("p", spec.description)] if spec.description else []
        blocks += [Block("h2", "Summary", anchor="summary"), Block("summary", summary_items(results, tables))]
        blocks += [Block("list", config_lines(results, main))] if main else []
        blocks += tuning
        blocks += _result_blocks(results, tables)
        blocks += _published_blocks(results)
        noise, noise_figures = noise_blocks(results, tables, out_dir / "plots")  # a label_noise axis only
        blocks += noise
        blocks += [Block("h2", "Runs", anchor="runs"), Block("grid", runs_grid(results, out_dir))]
        blocks += _failed_blocks(results)
        blocks += [
            Block("h2", "Reproduce", anchor="reproduce"),
            Block("grid", environment(results, out_dir)),
            Block("p", "Base config of every run:"),
            Block("grid", config_grid(results)),
            Block("p", "What each configuration sets:"),
            Block("grid", grid_axes(results)),
        ]
        blocks += [Block("h2", "Method and notes", anchor="notes"), Block("list", _method_notes(results))]
        if figures:
            blocks += [Block("h2", "Plots", anchor="plots"), Block("figures", list(figures.values()))]
        (out_dir / "report.md").write_text(render_markdown(blocks))
        (out_dir / "report.html").write_text(render_html(blocks, f"Study {spec.name}"))
        (out_dir / "table.tex").write_text("\n".join(tex_table(t) for t in tables) or "% no results yet\n")
        files.update({n: out_dir / n for n in ("report.md", "report.html", "table.tex")})
        files.update({f"plots/{f.path.name}": f.path for f in [*figures.values(), *noise_figures, *tuning_figures]})
        return files


#: The columns of the terminal summary: (table key, column name, header).
_TERMINAL = [("segm", "FPS", "FPS"), ("segm", "all", "mask AP"), ("segm", "AP50", "AP50"), ("segm", "AP75", "AP75"),
             ("segm", "AP95", "AP95"), ("bbox", "all", "box AP"), ("boundary", "all", "boundary AP")]  # fmt: skip


def print_tables(out_dir: str | Path, console: Any) -> None:
    """Print the study's summary table on a rich console: the paper's main columns (the report has
    every column), best values bold, ▲/▼ verdicts, the main metric against the baseline, each
    configuration's flags, then the summary's verdict and warnings."""
    from rich.markup import escape
    from rich.table import Table as RichTable

    with StudyStore(Path(out_dir) / "study.db") as store:
        results = collect(store)
        tables = {t.key: t for t in build_tables(results)}
        flags = {cfg.label: results.flags_of(cfg) for cfg in results.configs}
        summary = summary_items(results, list(tables.values()))
    if not tables:
        console.print("no results yet")
        return
    picks = [(tables[k], c, h) for k, c, h in _TERMINAL if k in tables and c in tables[k].columns]
    if "dense" in tables:
        picks += [(tables["dense"], c, c) for c in tables["dense"].columns if not c.endswith("_image")]
    main = main_table(list(tables.values()))
    rich = RichTable(title=f"study {results.spec.name}: mean ± 95% interval over seeds (full tables: report.md)")
    rich.add_column("configuration", overflow="fold")
    for _, _, header in picks:
        rich.add_column(header, justify="right")
    rich.add_column(f"vs {results.spec.baseline}", overflow="fold")
    rich.add_column("flags", overflow="fold")
    for i, cfg in enumerate(results.configs):
        texts = []
        for table, col, _ in picks:
            cell = table.rows[i][1][table.columns.index(col)]
            text = escape(format_cell(cell, bold=""))
            texts.append(f"[bold]{text}[/]" if cell is not None and cell.bold else text)
        cmp = main.comparisons.get(cfg.label) if main else None
        rich.add_row(escape(cfg.label), *texts, escape(cmp.describe(digits=2)) if cmp else "",
                     f"[yellow]{escape(flags_text(flags[cfg.label], details=False))}[/]")  # fmt: skip
    console.print(rich)
    for line in summary[:-1]:  # the verdict, the warnings and the budget; not the report's date
        console.print(escape(line), soft_wrap=True)
    print_noise(results, list(tables.values()), console)
