"""Using a trained model: rebuild it from a checkpoint, evaluate it on a dataset split, draw its
predictions over image files (``losslab eval`` and ``losslab predict``).

Every input goes through the data pipeline's own letterbox and normalisation
(``losslab.data.transforms``), so prediction sees images exactly as training and evaluation did.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from losslab.data.images import read_image
from losslab.data.transforms import letterbox_image
from losslab.engine import checkpoint as ckpt
from losslab.engine.config import DATA_FILE_KEYS, RunConfig, resolve_run_config
from losslab.engine.datasets import build_split, dataset_root
from losslab.engine.evaluate import evaluate_model
from losslab.engine.overlay import render_prediction, write_png
from losslab.engine.slim import is_slim, load_weights
from losslab.models import create_model

__all__ = ["evaluate_checkpoint", "model_from_checkpoint", "predict_files", "stored_run_config"]


def stored_run_config(state: dict[str, Any], path: str | Path) -> RunConfig:
    """The run config a checkpoint was trained with, checked like any other run config.

    Raises:
        ValueError: the checkpoint stores no ``{"train", "model"}`` config.
    """
    conf = state.get("config") or {}
    if "train" not in conf or "model" not in conf:
        raise ValueError(f"{path} stores no run config ('train' and 'model'): it was not written by losslab train")
    # a plugin edited since the run trained is loaded as it is now (with a warning): evaluating needs its model
    return resolve_run_config({"train": conf["train"], "model": conf["model"]}, strict_plugins=False)


def model_from_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", **overrides: Any
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from the config stored in a checkpoint and load its weights.

    Args:
        path: a checkpoint written by the trainer.
        device: where the model goes.
        **overrides: model-config keys to change (inference settings such as ``conf_thresh``).

    Returns:
        The model in eval mode and the checkpoint's dict.
    """
    state = ckpt.load_checkpoint(path)
    run = stored_run_config(state, path)
    model_cfg = dict(state["config"]["model"])
    if not is_slim(state):  # every weight comes from the checkpoint: never load pretrained ones again
        model_cfg = {k: (False if k.startswith("pretrained") and v is True else v) for k, v in model_cfg.items()}
    model = create_model(run.train.model, **{**model_cfg, **overrides})
    load_weights(model, state, path)
    return model.to(device).eval(), state


def evaluate_checkpoint(
    path: str | Path,
    data: str = "",
    split: str = "val",
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    skip_bad: bool = False,
) -> dict[str, dict[str, float]]:
    """The metrics of a checkpoint on one split of ``data``: a dataset folder in any layout,
    ``"synthetic"`` (the synthetic dataset of the run's own ``synth_*`` keys), or ``""`` for the
    run's own data (its explicit ``*_json`` / ``*_images`` files included). A new ``data`` drops
    the run's explicit files, so that they cannot shadow it. ``skip_bad`` (or the run's own
    ``skip_bad``) leaves unusable entries out; undefined metrics (no ground truth) are NaN.

    Raises:
        ValueError: not a losslab checkpoint, or a dataset that cannot be read.
        FileNotFoundError: no checkpoint at ``path``.
    """
    model, state = model_from_checkpoint(path, device)
    run = stored_run_config(state, path)
    train = run.train if not data else replace(run.train, data=data, **dict.fromkeys(DATA_FILE_KEYS, ""))
    root = dataset_root(train, model.task)
    size = int(model.config.input_size)
    dataset, collate_fn = build_split(root, split, model.task, size, False, skip_bad=skip_bad or train.skip_bad)
    return evaluate_model(
        model, dataset, model.task, device, batch_size, collate_fn, score_threshold=train.eval_score_threshold
    ).metrics


def predict_files(
    path: str | Path,
    images: Sequence[str | Path],
    out_dir: str | Path,
    score_threshold: float = 0.3,
    device: torch.device | str = "cpu",
) -> Iterator[Path]:
    """Draw a checkpoint's predictions over image files at their full size: ``out_dir/<stem>.png``.

    Yields each written path as it is written.

    Raises:
        ValueError: not a losslab checkpoint, or an image that cannot be read (named).
    """
    model, state = model_from_checkpoint(path, device)
    names = list(state["config"].get("classes") or [])
    size = int(model.config.input_size)
    for image_path in map(Path, images):
        try:
            rgb = read_image(image_path)
        except ValueError as exc:
            raise ValueError(f"cannot read the image {image_path}: {exc}") from None
        x, scale = letterbox_image(rgb, size)
        picture = render_prediction(
            model,
            x,
            orig_size=rgb.shape[:2],
            scale=scale,
            class_names=names,
            score_threshold=score_threshold,
            device=device,
        )
        yield write_png(Path(out_dir) / f"{image_path.stem}.png", picture)
