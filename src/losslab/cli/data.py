"""`losslab data` commands: generate the synthetic dataset, check a COCO dataset."""

from __future__ import annotations

from pathlib import Path

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
) -> None:
    """Generate a synthetic dataset: OUT/{train,val}/*.png and OUT/annotations/instances_*.json."""
    from losslab.data.synth import SynthConfig, generate

    cfg = SynthConfig(train, val, size, seed, task, objects, categories, difficulty, segmentation)
    try:
        root = generate(out, cfg, workers=workers or None, progress=True)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"wrote {train} train + {val} val images to {root}")


@data_app.command("check")
def check(
    annotations: Path = typer.Argument(..., help="COCO instances json to validate."),
    images: Path = typer.Option(..., "--images", help="Folder the images' file_name are relative to."),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Exit 0 even when problems are found (they are still listed)."
    ),
) -> None:
    """Validate a COCO dataset, print a summary and every problem found (exit 1 on problems)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from losslab.data.check import check_dataset

    console = Console()
    try:
        report = check_dataset(annotations, images)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    table = Table(title=annotations.name, show_header=False)
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
    console.print(table)
    for p in report.problems:
        console.print(f"[yellow]problem:[/yellow] {escape(str(p))}", highlight=False, soft_wrap=True)
    console.print(f"{len(report.problems)} problem(s)")
    if report.problems and not skip_bad:
        raise typer.Exit(1)


data_app.command("noise")(noise)


def register(app: typer.Typer) -> None:
    """Add the `data` command group to the root app."""
    app.add_typer(data_app, name="data")
