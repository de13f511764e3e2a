"""`losslab data` commands: generate the synthetic dataset, check a COCO dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from losslab.cli.noise import noise

data_app = typer.Typer(
    help="Datasets: generate the synthetic Cigarette-Butts-like dataset, validate COCO-format data.",
    no_args_is_help=True,
)


@data_app.command("synth")
def synth(
    out: Path = typer.Argument(..., help="Output folder (created; must be empty)."),
    train: int = typer.Option(2000, help="Number of training images (the real dataset has 2000)."),
    val: int = typer.Option(200, help="Number of validation images (the real dataset has 200)."),
    size: int = typer.Option(512, help="Image side in pixels (square images)."),
    seed: int = typer.Option(0, help="Random seed: the same arguments always give the same bytes."),
    task: str = typer.Option(
        "instance", help="'instance' (COCO json) or 'dense' (also foreground mask and 16-bit depth PNGs)."
    ),
    objects: str = typer.Option(
        "auto", help="Butts per image: 'auto' (mostly one, like the real data), 'N' or 'MIN-MAX'."
    ),
    categories: int = typer.Option(1, help="Number of categories (1 = cig_butt; up to 6 butt styles)."),
    difficulty: str = typer.Option("normal", help="'easy', 'normal' or 'hard' (clutter, distractors, smaller butts)."),
    segmentation: str = typer.Option("polygon", help="Segmentation format: 'polygon' (like the real data) or 'rle'."),
    workers: int = typer.Option(0, help="Worker processes (0 = one per CPU core)."),
    layout: str = typer.Option(
        "losslab",
        help="'losslab' (OUT/{train,val}/*.png + OUT/annotations/instances_*.json), 'cig_butts' "
        "(OUT/{train,val}/images/*.jpg + OUT/{train,val}/coco_annotations.json, as the real download) or "
        "'roboflow' (OUT/{train,valid}/*.jpg + _annotations.coco.json beside them).",
    ),
) -> None:
    """Generate a synthetic dataset: OUT/{train,val}/*.png and OUT/annotations/instances_*.json."""
    from losslab.data.synth import SynthConfig, generate

    cfg = SynthConfig(train, val, size, seed, task, objects, categories, difficulty, segmentation)
    try:
        root = generate(out, cfg, workers=workers or None, progress=True, layout=layout)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"wrote {train} train + {val} val images to {root}")


@data_app.command("check")
def check(
    path: Path = typer.Argument(
        ..., help="A dataset folder (every split of any layout losslab knows), or one COCO json with --images."
    ),
    images: Path = typer.Option(None, "--images", help="With a json: the folder its file_name are relative to."),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Exit 0 even when problems are found (they are still listed)."
    ),
    all_notes: bool = typer.Option(False, "--all-notes", help="List every note, not only the first of each kind."),
) -> None:
    """Validate a dataset: a summary per split, every problem, and notes counted by kind.

    Problems are entries training cannot use (exit 1 unless --skip-bad). Notes are things read in
    a way the file did not spell out (flat-list polygons, EXIF orientations, library warnings, images
    scaled to 8 bit or resized to the json's size, ...): they never fail the check.
    """
    from rich.console import Console
    from rich.markup import escape

    from losslab.data.check import check_dataset, check_root

    console = Console()
    try:
        if path.is_dir():
            splits, reports = check_root(path)
            console.print(f"data: {escape(splits.describe())}", highlight=False, soft_wrap=True)
        elif images is None:
            raise ValueError(f"{path} is not a dataset folder; to check one json pass --images FOLDER too")
        else:
            reports = {path.name: check_dataset(path, images)}
    except ValueError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    problems = sum(len(r.problems) for r in reports.values())
    for name, report in reports.items():
        _print_report(console, name, report, all_notes)
    notes = sum(len(r.notes) for r in reports.values())
    console.print(f"{problems} problem(s), {notes} note(s) in {len(reports)} split(s)")
    if problems and not skip_bad:
        raise typer.Exit(1)


def _print_report(console: Any, title: str, report: Any, all_notes: bool) -> None:
    """One split: its summary table, its problems, and its notes counted by kind."""
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]{escape(title)}[/bold]: {escape(report.ann_file)}", highlight=False, soft_wrap=True)
    table = Table(show_header=False)
    table.add_row("images", str(report.images))
    table.add_row("instances", str(report.annotations))
    table.add_row("empty images", str(report.empty_images))
    table.add_row("crowd regions", str(report.crowd))
    for name, n in report.per_category.items():
        table.add_row(f"category {name}", str(n))
    for name, n in report.sizes.items():
        table.add_row(f"instances {name}", str(n))
    for shape, n in list(report.image_sizes.items())[:5]:
        table.add_row(f"image size {shape}", str(n))
    for kind, n in report.note_counts.items():
        table.add_row(f"notes: {kind}", str(n))
    console.print(table)
    for p in report.problems:
        console.print(f"[yellow]problem:[/yellow] {escape(str(p))}", highlight=False, soft_wrap=True)
    shown: set[str] = set()
    for note in report.notes:
        if all_notes or note.kind not in shown:
            more = "" if all_notes else f" (1 of {report.note_counts[note.kind]}; --all-notes lists all)"
            console.print(f"[cyan]note:[/cyan] {escape(str(note))}{more}", highlight=False, soft_wrap=True)
            shown.add(note.kind)
    console.print(f"{title}: {len(report.problems)} problem(s), {len(report.notes)} note(s)")


data_app.command("noise")(noise)


def register(app: typer.Typer) -> None:
    """Add the `data` command group to the root app."""
    app.add_typer(data_app, name="data")
