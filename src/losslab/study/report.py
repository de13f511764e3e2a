"""``losslab study report DIR``: the study's tables, plots and verdicts, from ``DIR/study.db``.

Writes ``results.csv`` (one row per run), ``report.md``, ``table.tex``, ``report.html`` (one page,
images inline) and ``plots/*.png``. Each number is the mean over seeds ``± the half-width of its 95%
interval``, ``▲``/``▼`` where it is better/worse than the baseline's (a paired test over seeds, or a
bootstrap over validation images with a single seed), the best of each column in bold.
"""

from __future__ import annotations

import base64
import csv
import html
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from losslab.engine.metric_keys import AP_KEYS
from losslab.study import plots
from losslab.study.runner import run_dir_of
from losslab.study.stats import BETTER, WORSE
from losslab.study.store import StudyStore
from losslab.study.tables import Cell, StudyResults, Table, build_tables, collect

__all__ = ["CSV_COLUMNS", "format_cell", "write_report", "write_results_csv"]

_AP = list(AP_KEYS)
#: The columns of ``results.csv``, in order.
CSV_COLUMNS = ["run_id", "config", "loss", "seed", "batch_size", "fps", "AP", *_AP, "box_AP", "boundary_AP",
               "train_seconds", "status"]  # fmt: skip
_CSV_METRICS = {"fps": "fps", "AP": "segm.AP", **{a: f"segm.{a}" for a in _AP}, "box_AP": "bbox.AP",
                "boundary_AP": "boundary.AP", "train_seconds": "train_seconds"}  # fmt: skip
_MARK = {BETTER: "▲", WORSE: "▼"}


def format_cell(cell: Cell | None, bold: str = "**") -> str:
    """``"**83.65** ±1.20 ▲"``: the mean (bold when best), its interval, the verdict's mark."""
    if cell is None:
        return "–"
    number = f"{cell.mean:.2f}"
    text = f"{bold}{number}{bold}" if cell.bold and bold else number
    if not math.isnan(cell.half):
        text += f" ±{cell.half:.2f}"
    return text + (f" {_MARK[cell.verdict]}" if cell.verdict in _MARK else "")


def write_results_csv(results: StudyResults, path: Path) -> Path:
    """One row per run: ``CSV_COLUMNS``; metrics of runs that are not done stay empty."""
    label_of = {r.run_id: r.label for r in results.spec.unique_runs()}
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for run in results.runs:
            metrics = results.store.metrics(run["run_id"]) if run["status"] == "done" else {}
            row: dict[str, Any] = {
                "run_id": run["run_id"],
                "config": label_of.get(run["run_id"], run["label"]),
                "loss": run["config"].get("mask_loss", ""),
                "seed": run["seed"],
                "batch_size": run["config"].get("batch_size", ""),
                "status": run["status"],
            }
            for col, metric in _CSV_METRICS.items():
                value = metrics.get(metric)
                row[col] = "" if value is None else f"{value:.4f}"
            writer.writerow([row[c] for c in CSV_COLUMNS])
    return path


# ---- the document, as blocks that render to Markdown and HTML -----------------------------------
@dataclass
class _Block:
    kind: str  # "h1", "h2", "p", "list", "table", "image", "pre"
    content: Any


def _md_table(table: Table, baseline: str) -> str:
    head = ["configuration", *table.columns, f"vs {baseline}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + [":---:"] * (len(head) - 1)) + "|"]
    for label, cells in table.rows:
        cmp = table.comparisons.get(label)
        lines.append("| " + " | ".join([label, *(format_cell(c) for c in cells), cmp.describe() if cmp else ""]) + " |")
    return "\n".join(lines)


def _html_table(table: Table, baseline: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["configuration", *table.columns, f"vs {baseline}"])
    body = []
    for label, cells in table.rows:
        cmp = table.comparisons.get(label)
        tds = [f"<td>{html.escape(label)}</td>"]
        for cell in cells:
            text = html.escape(format_cell(cell, bold=""))
            tds.append(f"<td><b>{text}</b></td>" if cell is not None and cell.bold else f"<td>{text}</td>")
        tds.append(f"<td>{html.escape(cmp.describe()) if cmp else ''}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _tex_table(table: Table) -> str:
    def cell(c: Cell | None) -> str:
        if c is None:
            return "--"
        number = f"\\textbf{{{c.mean:.2f}}}" if c.bold else f"{c.mean:.2f}"
        if not math.isnan(c.half):
            number += f"\\,$\\pm${c.half:.2f}"
        return number + {BETTER: "$^\\uparrow$", WORSE: "$^\\downarrow$"}.get(c.verdict or "", "")

    cols = "l" + "c" * len(table.columns)
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


def _render_md(blocks: list[_Block], baseline: str) -> str:
    out = []
    for b in blocks:
        if b.kind == "h1":
            out.append(f"# {b.content}")
        elif b.kind == "h2":
            out.append(f"## {b.content}")
        elif b.kind == "p":
            out.append(b.content)
        elif b.kind == "list":
            out.append("\n".join(f"- {item}" for item in b.content))
        elif b.kind == "table":
            out.append(_md_table(b.content, baseline))
        elif b.kind == "image":
            out.append(f"![{b.content.stem}](plots/{b.content.name})")
        elif b.kind == "pre":
            out.append("```\n" + b.content + "\n```")
    return "\n\n".join(out) + "\n"


_CSS = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px}"
    "th{background:#f0f0f0}img{max-width:100%}pre{background:#f6f6f6;padding:.5em;overflow:auto}"
)


def _render_html(blocks: list[_Block], baseline: str, title: str) -> str:
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_CSS}</style></head><body>"]  # fmt: skip
    for b in blocks:
        if b.kind in ("h1", "h2"):
            out.append(f"<{b.kind}>{html.escape(b.content)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{html.escape(b.content)}</p>")
        elif b.kind == "list":
            out.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in b.content) + "</ul>")
        elif b.kind == "table":
            out.append(_html_table(b.content, baseline))
        elif b.kind == "image":
            data = base64.b64encode(b.content.read_bytes()).decode()
            out.append(f"<p><img alt='{html.escape(b.content.stem)}' src='data:image/png;base64,{data}'></p>")
        elif b.kind == "pre":
            out.append(f"<pre>{html.escape(b.content)}</pre>")
    out.append("</body></html>")
    return "\n".join(out)


def _summary(results: StudyResults) -> list[str]:
    spec = results.spec
    counts: dict[str, int] = {}
    for run in results.runs:
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    data = spec.dataset.get("path") or f"synthetic {spec.dataset.get('synthetic') or {}}"
    return [
        f"dataset: {data}",
        f"model: {spec.model or 'varies (grid axis)'}; base config: {spec.config}",
        f"seeds: {spec.seeds}; baseline: {spec.baseline}",
        "runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
    ]


def _notes(results: StudyResults) -> list[str]:
    notes = list(results.spec.notes) + list(results.spec.warnings)
    for cfg in results.configs:
        if cfg.alias_of:
            notes.append(f"'{cfg.label}' is the same configuration as '{cfg.alias_of}': its numbers are those runs.")
    single = any(len(c.metrics) == 1 for c in results.configs)
    if single and not any(c.per_image for c in results.configs):
        notes.append(
            "One seed and no per-image scores in the runs' results (result['per_image']): no intervals and "
            "no verdicts; run with --seeds 3 for paired tests."
        )
    if single and any(c.per_image for c in results.configs):
        notes.append(
            "One seed: the 'vs' column compares the runs' per-image scores (result['per_image']) with a "
            "bootstrap over the validation images; other columns have no interval."
        )
    notes.append("± is the half-width of the 95% t-interval over seeds.")
    notes.append("▲/▼: better/worse than the baseline (95% interval of the difference excludes 0).")
    return notes


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
        figures = make_plots(results, out_dir / "plots")
        spec = results.spec
        blocks = [_Block("h1", f"Study {spec.name}")]
        if spec.description:
            blocks.append(_Block("p", spec.description))
        blocks.append(_Block("list", _summary(results)))
        for table in tables:
            blocks += [_Block("h2", table.title), _Block("table", table)]
        blocks += [_Block("h2", "Notes"), _Block("list", _notes(results))]
        failed = [r for r in results.runs if r["status"] == "failed"]
        if failed:
            blocks.append(_Block("h2", "Failed runs"))
            for run in failed:
                last = (run["error"] or "").strip().splitlines()[-1:] or [""]
                blocks.append(_Block("p", f"{run['label']} · seed {run['seed']} ({run['run_id']}): {last[0]}"))
        if figures:
            blocks.append(_Block("h2", "Plots"))
            blocks += [_Block("image", p) for p in figures.values()]
        (out_dir / "report.md").write_text(_render_md(blocks, spec.baseline))
        (out_dir / "report.html").write_text(_render_html(blocks, spec.baseline, f"Study {spec.name}"))
        (out_dir / "table.tex").write_text("\n".join(_tex_table(t) for t in tables) or "% no results yet\n")
        files.update({n: out_dir / n for n in ("report.md", "report.html", "table.tex")})
        files.update({f"plots/{p.name}": p for p in figures.values()})
        return files


def make_plots(results: StudyResults, plot_dir: Path) -> dict[str, Path]:
    """The figures the stored data allows (see ``losslab.study.plots``)."""
    from losslab.study.curves import loss_panels, pr_curves, sample_images

    made: dict[str, Path | None] = {
        "loss_curves": plots.plot_curves(loss_panels(results), plot_dir / "loss_curves.png", "training loss"),
        "ap_vs_iou": plots.plot_ap_vs_iou(_ap_series(results), plot_dir / "ap_vs_iou.png"),
        "pr_curves": plots.plot_pr_curves(pr_curves(results), plot_dir / "pr_curves.png", "mask PR at IoU 0.5"),
        "samples": plots.plot_sample_grid(
            sample_images(results, lambda run_id: run_dir_of(results.store.path.parent, run_id)),
            plot_dir / "samples.png",
        ),
        "losses": _catalogue_picture(results, plot_dir / "losses.png"),
    }
    return {k: v for k, v in made.items() if v is not None}


def _ap_series(results: StudyResults) -> dict[str, dict[str, list[float | None]]]:
    out: dict[str, dict[str, list[float | None]]] = {}
    for kind, group in (("mask", "segm"), ("box", "bbox")):
        rows = {}
        for cfg in results.configs:
            values = [cfg.interval(f"{group}.{ap}").mean for ap in _AP]
            if any(not math.isnan(v) for v in values):
                rows[cfg.label] = [None if math.isnan(v) else v for v in values]
        if rows:
            out[kind] = rows
    return out


def _catalogue_picture(results: StudyResults, path: Path) -> Path | None:
    """The loss catalogue's loss/gradient picture of the study's mask losses (if the catalogue has one)."""
    specs: list[str] = []
    for cfg in results.configs:
        spec = cfg.config.get("mask_loss")
        if isinstance(spec, str) and spec not in specs:
            specs.append(spec)
    if not specs:
        return None
    try:
        from losslab.losses.plot import plot_losses
    except ImportError:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # equivalences are already in the report's notes
            return Path(plot_losses(specs, path, title="the study's mask losses"))
    except (ValueError, RuntimeError):
        return None


#: The columns of the terminal summary: (table key, column name, header).
_TERMINAL = [("segm", "FPS", "FPS"), ("segm", "all", "mask AP"), ("segm", "AP50", "AP50"), ("segm", "AP75", "AP75"),
             ("segm", "AP95", "AP95"), ("bbox", "all", "box AP"), ("boundary", "all", "boundary AP")]  # fmt: skip


def print_tables(out_dir: str | Path, console: Any) -> None:
    """Print the study's summary table on a rich console: the paper's main columns (the report has
    every column), best values bold, ▲/▼ verdicts, and the main metric against the baseline."""
    from rich.markup import escape
    from rich.table import Table as RichTable

    with StudyStore(Path(out_dir) / "study.db") as store:
        results = collect(store)
        tables = {t.key: t for t in build_tables(results)}
    if not tables:
        console.print("no results yet")
        return
    picks = [(tables[k], c, h) for k, c, h in _TERMINAL if k in tables and c in tables[k].columns]
    if "dense" in tables:
        picks += [(tables["dense"], c, c) for c in tables["dense"].columns if not c.endswith("_image")]
    main = tables.get("segm") or tables.get("dense") or next(iter(tables.values()))
    rich = RichTable(title=f"study {results.spec.name}: mean ± 95% interval over seeds (full tables: report.md)")
    rich.add_column("configuration", overflow="fold")
    for _, _, header in picks:
        rich.add_column(header, justify="right")
    rich.add_column(f"vs {results.spec.baseline}", overflow="fold")
    for i, cfg in enumerate(results.configs):
        texts = []
        for table, col, _ in picks:
            cell = table.rows[i][1][table.columns.index(col)]
            text = escape(format_cell(cell, bold=""))
            texts.append(f"[bold]{text}[/]" if cell is not None and cell.bold else text)
        cmp = main.comparisons.get(cfg.label)
        rich.add_row(escape(cfg.label), *texts, escape(cmp.describe(digits=2)) if cmp else "")
    console.print(rich)
