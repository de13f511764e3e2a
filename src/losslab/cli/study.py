"""`losslab study` commands: run a study grid, report on it, watch it, list the built-in ones."""

from __future__ import annotations

import importlib
import sys
import time
import warnings
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from losslab.config import parse_kv

study_app = typer.Typer(
    help=(
        "Studies: train once per configuration of a grid (loss x batch size x model x seed), store every "
        "result in DIR/study.db, resume after a crash, and report tables with confidence intervals and plots."
    ),
    no_args_is_help=True,
)
# Piped output (make study | tee) gets a wide table instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
    raise typer.Exit(2)


def _load_run_fn(text: str | None):
    if text is None:
        return None
    module, _, name = text.partition(":")
    if not name:
        raise ValueError(f"--run-fn must be MODULE:FUNCTION, got {text!r}")
    return getattr(importlib.import_module(module), name)


@study_app.command("run")
def run_cmd(
    name_or_yaml: str = typer.Argument(..., help="A built-in study (`losslab study list`) or a study YAML file."),
    out: Path = typer.Option(
        None, "--out", "-o", help="The study folder (study.db, runs/, the report); not needed with --dry-run."
    ),
    seeds: int = typer.Option(None, "--seeds", help="Run seeds 0..N-1 instead of the spec's seeds."),
    workers: int = typer.Option(
        1,
        "--workers",
        "-w",
        help="Runs at once, in parallel processes (1: in this process). Each run uses the torch threads its "
        "config says (the trainer key `threads`: 1 unless the spec sets it, e.g. --set threads=2), so --workers "
        "never changes a run's numbers; keep workers x threads within the cores.",
    ),
    executor: str = typer.Option("local", "--executor", help="'local' or 'ray' (one run per Ray task)."),
    address: str = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray instance)."),
    set_: list[str] = typer.Option([], "--set", help="Override a base config key for every run: key=value."),
    retry_failed: bool = typer.Option(True, help="Run again the runs that failed in an earlier attempt."),
    report: bool = typer.Option(True, help="Write the report when the runs are finished."),
    run_fn: str = typer.Option(None, "--run-fn", hidden=True, help="MODULE:FUNCTION replacing run_experiment."),
    plugin: list[str] = typer.Option(
        [],
        "--plugin",
        help="Import this Python file or module first (repeatable), in every worker too: user code that calls "
        "register_loss / register_model. Added to the spec's plugins; its source hash is part of every run id.",
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the resolved config of every run (YAML, every default filled in) and stop: nothing is "
        "trained or written. Check a study against its paper before renting GPUs.",
    ),
) -> None:
    """Run (or resume) a study: every run not done yet, then print its table and write its report.

    Killing it loses at most the work since each run's last checkpoint; run the same command again to
    resume. Runs that fail are recorded with their traceback and the study goes on.
    """
    from losslab.losses.check import LossEquivalenceWarning
    from losslab.report.write import print_tables, write_report
    from losslab.study.runner import run_study
    from losslab.study.spec import load_study, parse_study

    # The study collects the loss equivalences into its notes (shown in the report), once; checking,
    # planning and slimming its runs would print each again. Its workers do the same (execute_run).
    warnings.filterwarnings("ignore", category=LossEquivalenceWarning)
    try:
        if plugin:  # before the spec is read: its grid may name the plugins' losses and models
            from losslab.plugins import load_plugins

            load_plugins(plugin)
        study = load_study(name_or_yaml, seeds=seeds)
        if set_ or plugin:
            data = study.to_dict()
            data["config"].update({k: yaml.safe_load(v) for k, v in parse_kv(set_).items()})
            data["plugins"] = [*data.get("plugins", []), *plugin]
            study = parse_study(data, where=name_or_yaml)
        if dry_run:
            from losslab.study.dry_run import dry_run_yaml

            typer.echo(dry_run_yaml(study), nl=False)
            return
        if out is None:
            raise ValueError("--out DIR is required: the study folder (or pass --dry-run to print the runs)")
        fn = _load_run_fn(run_fn)
        start = time.time()
        summary = run_study(study, out, run_fn=fn, executor=executor, workers=workers, address=address,
                            retry_failed=retry_failed, console=err)  # fmt: skip
    except ValueError as exc:
        _fail(exc)
    err.print(
        f"study {study.name}: {summary['done']} runs done and {summary['failed']} failed now, "
        f"{summary['skipped']} done before, of {summary['total']} ({time.time() - start:.0f} s)"
    )
    print_tables(out, console)
    if report:
        files = write_report(out)
        console.print(f"report: {files['report.md']} (and report.html, table.tex, results.csv, plots/)")
    if summary["failed"]:
        raise typer.Exit(1)


@study_app.command("tensorboard")
def tensorboard_cmd(
    out: Path = typer.Argument(..., help="The study folder."),
    log_dir: Path = typer.Option(None, "--logdir", help="Where the event files go (default: DIR/tensorboard)."),
) -> None:
    """Write a study's finished runs as TensorBoard event files, from what it stored (old studies too):
    each run's loss terms and final metrics, and an HParams table (configuration, stage, seed and every
    key that differs between runs, such as the loss spec and the tuned lr -> mask, box and boundary AP).
    Needs the tensorboard extra; open with `tensorboard --logdir DIR/tensorboard`."""
    from losslab.report.tensorboard_export import export_study

    try:
        target, n = export_study(out, log_dir)
    except ValueError as exc:
        _fail(exc)
    console.print(f"{n} runs written to {target}: tensorboard --logdir {target}")


@study_app.command("prune")
def prune_cmd(out: Path = typer.Argument(..., help="The study folder.")) -> None:
    """Shrink a study's finished runs to their trained weights: drop each done run's optimiser state,
    its previous.pt and the pretrained tensors its model loads itself (studies do this as each run
    finishes; this is for older study folders). `losslab eval` and `predict` still load them."""
    from losslab.study.runner import prune_study

    try:
        runs, before, after = prune_study(out)
    except ValueError as exc:
        _fail(exc)
    console.print(f"{runs} finished runs slimmed: checkpoints {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")


@study_app.command("report")
def report_cmd(out: Path = typer.Argument(..., help="The study folder.")) -> None:
    """Write report.md, report.html, table.tex, results.csv, verdicts.csv and plots/ from DIR/study.db."""
    from losslab.report.write import print_tables, write_report

    try:
        files = write_report(out)
    except ValueError as exc:
        _fail(exc)
    print_tables(out, console)
    console.print(f"report: {files['report.md']}")
    for name in sorted(files):
        console.print(f"  {files[name]}")


@study_app.command("compare")
def compare_cmd(
    first: Path = typer.Argument(..., help="A study folder (or its verdicts.csv)."),
    second: Path = typer.Argument(..., help="Another study folder, e.g. the same study under other numerics."),
    metric: str = typer.Option("segm.AP", "--metric", help="The metric to compare ('all' for every one)."),
) -> None:
    """Two studies' verdicts side by side; exits 1 when one contradicts the other.

    A contradiction: better in one study and worse or equivalent in the other (or worse against
    equivalent). Undecided contradicts nothing. Run a study twice (another CPU, or `--set amp=false`) and
    compare: a verdict that flips was noise.
    """
    from losslab.report.compare import compare_verdicts

    try:
        pairs = compare_verdicts(first, second, None if metric == "all" else metric)
    except ValueError as exc:
        _fail(exc)
    table = RichTable(title=f"verdicts: {first} against {second}")
    for col in ("configuration", "metric", str(first), str(second), "Δ", "Δ", ""):
        table.add_column(escape(col), overflow="fold")
    for p in pairs:
        mark = "[red]contradicts[/]" if p.contradiction else ""
        table.add_row(escape(p.config), p.metric, p.first or "–", p.second or "–", p.delta_first, p.delta_second, mark)
    console.print(table)
    bad = [p for p in pairs if p.contradiction]
    console.print(f"{len(bad)} contradicting verdict{'s' if len(bad) != 1 else ''} of {len(pairs)} compared")
    if bad:
        raise typer.Exit(1)


@study_app.command("status")
def status_cmd(out: Path = typer.Argument(..., help="The study folder.")) -> None:
    """A table of the study's runs: state, progress, time and ETA."""
    from losslab.study.status import status_table

    try:
        table, footer = status_table(out)
    except ValueError as exc:
        _fail(exc)
    console.print(table)
    console.print(footer)


@study_app.command("list")
def list_cmd() -> None:
    """The built-in studies with their number of configurations and runs."""
    from losslab.study.builtin import BUILTIN_STUDIES
    from losslab.study.spec import load_study

    table = RichTable(title="built-in studies (`losslab study show NAME` prints one as YAML)")
    for col in ("name", "model", "configs", "seeds", "runs"):
        table.add_column(col, no_wrap=True)
    table.add_column("description", overflow="fold", ratio=1)
    for name in BUILTIN_STUDIES:
        try:
            study = load_study(name)
        except ValueError as exc:
            table.add_row(name, "", "", "", "", f"[red]invalid here: {exc}[/]")
            continue
        models = {str(v.get("model")) for _, _, v in study.configurations() if v.get("model")}
        model = study.model or ", ".join(sorted(models))
        table.add_row(name, model, str(len(study.labels())), str(len(study.seeds)), str(study.run_count()),
                      study.description)  # fmt: skip
    console.print(table)


@study_app.command("show")
def show_cmd(name: str = typer.Argument(..., help="A built-in study name or a YAML file.")) -> None:
    """Print a study spec as YAML (to copy and edit)."""
    from losslab.study.spec import load_study

    try:
        typer.echo(load_study(name).to_yaml())
    except ValueError as exc:
        _fail(exc)


def register(app: typer.Typer) -> None:
    """Add `losslab study ...` to the root app."""
    app.add_typer(study_app, name="study")
