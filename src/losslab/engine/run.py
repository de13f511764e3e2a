"""``run_experiment``: one training + evaluation + FPS measurement in its own run folder.

The run folder holds ``config.yaml`` (the resolved trainer and model configs), ``metrics.csv``,
``checkpoints/last.pt`` (and ``previous.pt``), ``eval.json``, ``result.json`` and
``samples/<image_id>.png``. Calling ``run_experiment`` again on the same folder resumes from the
last good checkpoint (``checkpoint.load_resumable``: ``last.pt``, else ``previous.pt``, else from
the start, and it logs which), after removing the temporaries an interrupted write left, so a
study that crashed re-runs only what was lost.

A run is a result or it fails with the reason: too many skipped steps or non-finite weights
(``train.NonFiniteLossError``), a split without annotations, or an undefined mask AP (NaN) fail
it; nothing broken is written as ``result.json``. The run sets its own torch thread count
(``threads``; 0 is the count torch has at the start, and ``config.yaml`` records the number) and
puts the caller's back afterwards.

This module only orchestrates: the config seam is ``engine.config.resolve_run_config``, the data
``engine.datasets``, the loop ``engine.train``, the metrics ``engine.evaluate``, the pictures
``engine.overlay`` and the speed ``engine.fps``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.utils.data import Dataset

from losslab.engine import checkpoint as ckpt
from losslab.engine.config import RunConfig, resolve_run_config
from losslab.engine.datasets import build_datasets
from losslab.engine.distributed import barrier, broadcast_object, init_distributed, is_main_process, resolve_device
from losslab.engine.evaluate import Evaluation, evaluate_model
from losslab.engine.fps import measure_fps
from losslab.engine.hooks import EvalHook
from losslab.engine.overlay import save_samples
from losslab.engine.train import Trainer, seed_everything

__all__ = ["run_experiment"]

log = logging.getLogger("losslab.engine")

#: How many validation images the FPS measurement cycles through.
FPS_INPUTS = 8


def _write_config(run_dir: Path, run: RunConfig) -> None:
    """``run_dir/config.yaml``, warning about the keys that changed since the folder's last run."""
    path = run_dir / "config.yaml"
    new = run.to_dict()
    if path.is_file():
        old = yaml.safe_load(path.read_text()) or {}
        changed = sorted(
            f"{part}.{k}"
            for part in ("train", "model")
            for k in set(old.get(part, {})) | set(new[part])
            if old.get(part, {}).get(k) != new[part].get(k)
        )
        if changed:
            log.warning("%s: the config changed since the last run (%s)", path, ", ".join(changed))
    ckpt.atomic_write_text(path, yaml.safe_dump(new, sort_keys=False))


def _fit_num_classes(run: RunConfig, train_set: Dataset) -> None:
    """An instance model predicts the dataset's classes; a ``num_classes`` the caller set must agree.

    Raises:
        ValueError: the caller's ``num_classes`` differs from the dataset's class count.
    """
    if run.task != "instance" or not hasattr(run.model, "num_classes"):
        return
    n, given = int(train_set.num_classes), int(run.model.num_classes)
    if "num_classes" in run.model_keys_given and given != n:
        raise ValueError(f"num_classes={given} but the dataset {run.train.data!r} has {n} classes; drop num_classes")
    run.model = dataclasses.replace(run.model, num_classes=n)


def _final_measurements(
    model: nn.Module,
    val_set: Dataset,
    evaluate: Callable[..., Evaluation],
    run: RunConfig,
    device: torch.device,
    run_dir: Path,
) -> tuple[Evaluation, float]:
    """The trained model's evaluation (with per-image AP), sample pictures and FPS (rank 0 only)."""
    cfg = run.train
    evaluation = evaluate(model, per_image=True)
    _check_defined(evaluation.metrics, val_set)
    ckpt.atomic_write_json(run_dir / "eval.json", evaluation.metrics)
    save_samples(model, val_set, run_dir / "samples", cfg.num_samples, device)
    # real inputs give the honest NMS and mask-assembly cost of a trained model
    inputs = torch.stack([val_set[i][0] for i in range(min(FPS_INPUTS, len(val_set)))])
    fps = measure_fps(model, run.model.input_size, device, n=cfg.fps_images, images=inputs)
    return evaluation, float(fps["fps"])


def _check_defined(metrics: Mapping[str, Any], val_set: Dataset) -> None:
    """Refuse a result whose mask AP is undefined (NaN: COCOeval had no ground truth to score).

    Raises:
        ValueError: naming the validation split's json and why.
    """
    ap = metrics.get("segm", {}).get("AP", 0.0)
    if not math.isnan(ap):
        return
    ann_file = getattr(val_set, "ann_file", "?")
    if not getattr(val_set, "gt", {}).get("annotations"):
        raise ValueError(f"the validation split {ann_file} has no annotations: AP is undefined")
    raise ValueError(f"mask AP on the validation split {ann_file} is undefined (no non-crowd ground truth)")


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """The run's thread count, the caller's put back after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _resume_state(last: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The state to resume from and its file (``(None, None)``: from the start), after removing the
    stale temporaries of interrupted writes; a damaged checkpoint is set aside (``*.damaged``)."""
    for folder in (last.parent.parent, last.parent):
        for stale in ckpt.clean_stale_temporaries(folder):
            log.warning("removed %s, left by an interrupted write", stale)
    if not last.is_file() and not ckpt.previous_of(last).is_file():
        return None, None
    state, note = ckpt.load_resumable(last, set_aside=True)
    if state is None or not note.startswith("resuming from"):
        log.warning("%s", note)  # a damaged file: the run falls back or restarts, and says which
    else:
        log.info("%s", note)
    if state is None:
        return None, None
    state["path"] = str(last if last.is_file() else ckpt.previous_of(last))  # for the trainer's messages
    return state, state["path"]


def run_experiment(config: Mapping[str, Any] | RunConfig, run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Train, evaluate on the val split, time inference and write the results into ``run_dir``.

    Args:
        config: flat trainer keys (``TrainConfig``) plus any key of the model's config, the nested
            ``{"train", "model"}`` form of a ``config.yaml``, or an already resolved ``RunConfig``.
        run_dir: the run folder; its ``checkpoints/last.pt`` is resumed from when present.
        progress: show progress bars.

    Returns:
        ``{"metrics": {"segm", "bbox", "boundary"} or {"mask"[, "depth"]}, "fps", "train_seconds",
        "iterations", "skipped_steps", "precision"}`` (how training computed, e.g. ``"bf16+channels-last"``:
        ``amp=true`` depends on the CPU) plus, for the instance task, ``"pr"`` and ``"per_image"``
        (also written to ``run_dir/result.json``).
    """
    # a copy: fitting num_classes to the dataset must not change the caller's RunConfig
    run = dataclasses.replace(config) if isinstance(config, RunConfig) else resolve_run_config(config)
    if run.train.threads == 0:  # torch's count: recorded in config.yaml, so that a resume keeps it
        run.train = dataclasses.replace(run.train, threads=torch.get_num_threads())
    with _torch_threads(run.train.threads):
        return _run(run, Path(run_dir), progress)


def _run(run: RunConfig, run_dir: Path, progress: bool) -> dict[str, Any]:
    cfg = run.train
    device = resolve_device(cfg.device, init_distributed().local_rank)
    if is_main_process():
        run_dir.mkdir(parents=True, exist_ok=True)
    train_set, val_set, collate_fn = build_datasets(cfg, run.task, run.model.input_size, progress)
    _fit_num_classes(run, train_set)
    if is_main_process():
        _write_config(run_dir, run)

    seed_everything(cfg.seed)  # the initial weights depend on the seed only
    model = run.build_model()
    stored = {**run.to_dict(), "classes": list(getattr(train_set, "cat_names", []) or [])}
    trainer = Trainer(
        model, train_set, cfg, collate_fn=collate_fn, run_dir=run_dir, config=stored, device=device, progress=progress
    )

    def evaluate(m: nn.Module, per_image: bool = False) -> Evaluation:
        return evaluate_model(
            m, val_set, run.task, device, cfg.batch_size, collate_fn, cfg.workers, per_image, cfg.eval_score_threshold
        )

    if cfg.eval_every > 0:
        trainer.register_hooks(
            [EvalHook(cfg.eval_every, lambda m: evaluate(m).metrics, run_dir / "eval_history.jsonl")]
        )
    if cfg.tensorboard and is_main_process():
        from losslab.engine.tensorboard import TensorBoardHook

        trainer.register_hooks([TensorBoardHook(run_dir / "tensorboard")])
    state, source = _resume_state(run_dir / "checkpoints" / "last.pt") if is_main_process() else (None, None)
    source = broadcast_object(source)  # under torchrun the other processes read the file rank 0 chose
    cache = getattr(model, "feature_cache", None)
    before = (cache.hits, cache.misses) if cache is not None else (0, 0)
    summary = trainer.train(resume_from=state if is_main_process() else source)

    result = None
    if is_main_process():
        evaluation, fps = _final_measurements(model, val_set, evaluate, run, device, run_dir)
        result = {
            "metrics": evaluation.metrics,
            "fps": fps,
            "train_seconds": float(summary["train_seconds"]),
            "iterations": int(summary["iterations"]),
            "skipped_steps": int(summary["skipped_steps"]),
            "precision": trainer.precision.name,
            **evaluation.details,
        }
        if cfg.tensorboard:
            from losslab.engine.tensorboard import write_metrics

            write_metrics(run_dir / "tensorboard", evaluation.metrics, int(summary["iterations"]))
        if cache is not None:  # what the frozen backbone's feature cache saved (training + evaluation)
            result["feature_cache"] = {"hits": cache.hits - before[0], "misses": cache.misses - before[1]}
        ckpt.atomic_write_json(run_dir / "result.json", result)
    barrier()
    return broadcast_object(result)
