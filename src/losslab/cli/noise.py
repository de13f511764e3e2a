"""`losslab data noise`: what a ``label_noise`` level does to the training masks, as a picture and as
the mean IoU between clean and corrupted masks (registered on the ``data`` app by cli/data.py)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["noise"]


def _dataset(data: str, split: str, size: int):  # -> CocoInstances
    """The split of ``data``: the default synthetic training dataset at ``size`` px, or a folder."""
    from losslab.data import build_dataset, ensure_synthetic
    from losslab.engine.config import TrainConfig

    if data == "synthetic":
        d = TrainConfig()  # the same cached dataset `losslab train` uses by default
        root = ensure_synthetic(
            d.cache_dir or None, train=d.synth_train, val=d.synth_val, size=size, seed=d.synth_seed, progress=False
        )
    else:
        root = Path(data).expanduser()
        if not root.is_dir():
            raise ValueError(f"--data {data!r} is neither 'synthetic' nor an existing dataset folder")
    return build_dataset(root, split, "instance", size=size, train=False)


def noise(
    spec: str = typer.Argument(
        ..., help="A label_noise spec: 'none', 'boundary(px=2)', 'boundary(px=2) + drop(p=0.1)'."
    ),
    data: str = typer.Option(
        "synthetic", "--data", help="'synthetic' (the default training dataset, see --size) or a dataset folder."
    ),
    out: Path = typer.Option(Path("noise.png"), "--out", "-o", help="PNG file to write."),
    images: int = typer.Option(100, "--images", "-n", min=1, help="How many annotated images the mean IoU runs over."),
    show: int = typer.Option(6, "--show", min=1, help="How many of them the picture shows."),
    seed: int = typer.Option(0, "--seed", help="The run's seed: noise is drawn per (seed, image, instance)."),
    size: int = typer.Option(256, "--size", help="Image side of the synthetic dataset (synth_size)."),
    split: str = typer.Option("train", "--split", help="Which split to corrupt (training corrupts 'train' only)."),
    as_json: bool = typer.Option(False, "--json", help="Print the measurement as JSON instead of a sentence."),
) -> None:
    """Corrupt the masks of the first images of a split as `label_noise=SPEC` would in training, draw
    clean and corrupted masks (top / bottom row, IoU per image) and print the mean IoU between them:
    how much noise a level really is."""
    from losslab.data.noise import LabelNoise
    from losslab.data.noise_preview import measure_label_noise, plot_label_noise

    try:
        level = LabelNoise(spec, seed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="SPEC") from None
    try:
        dataset = _dataset(data, split, size)
        result = measure_label_noise(dataset, level, images, examples=show)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--data") from None
    title = f"label_noise={result.spec} (seed {seed}): mean IoU {result.mean_iou:.3f} over {result.images} images"
    path = plot_label_noise(result.examples, out, title)
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), "data": data, "split": split, "out": str(path)}))
        return
    typer.echo(
        f"label_noise={result.spec}: mean IoU {result.mean_iou:.4f} over {result.images} images "
        f"(instance IoU {result.mean_instance_iou:.4f} over {result.instances} instances; "
        f"{result.dropped} dropped, {result.emptied} emptied)"
    )
    typer.echo(str(path))
