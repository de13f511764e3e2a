"""``run_experiment``: one training + evaluation + FPS measurement in its own run folder.

The run folder holds ``config.yaml`` (the resolved trainer and model configs), ``metrics.csv``,
``checkpoints/last.pt``, ``eval.json``, ``result.json`` and ``samples/<image_id>.png``. Calling
``run_experiment`` again on the same folder resumes from the last checkpoint, so a study that
crashed re-runs only what was lost.

The data, model and evaluation packages are imported inside the functions, so this module imports
even while one of them is incomplete.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset

from losslab.config import apply_overrides, config_to_dict, suggest
from losslab.engine import checkpoint as ckpt
from losslab.engine.config import TrainConfig, resolve_device
from losslab.engine.distributed import barrier, broadcast_object, init_distributed, is_main_process
from losslab.engine.hooks import EvalHook
from losslab.engine.train import Trainer, seed_everything, to_device

if TYPE_CHECKING:
    from losslab.data.layout import DatasetSplits

__all__ = [
    "ResolvedConfig",
    "build_datasets",
    "build_split",
    "dataset_root",
    "evaluate_model",
    "measure_model_fps",
    "model_from_checkpoint",
    "resolve_config",
    "run_experiment",
    "save_samples",
]

log = logging.getLogger("losslab.engine")


@dataclass
class ResolvedConfig:
    """A run's config split in its two parts, every default filled in."""

    train: TrainConfig
    model: Any  # the preset's config dataclass
    task: str
    model_keys_given: tuple[str, ...] = ()  # model keys the caller set (the rest are defaults)

    def to_dict(self) -> dict[str, Any]:
        """``{"train": {...}, "model": {...}}``: what ``config.yaml`` and checkpoints hold."""
        return {"train": config_to_dict(self.train), "model": config_to_dict(self.model)}


def _default_model_config(name: str) -> Any:
    """The preset's default config dataclass, without building weights where possible."""
    from losslab.models import get_model_info

    builder = get_model_info(name).builder
    if callable(getattr(builder, "config", None)):
        return builder.config()
    try:
        with torch.device("meta"):  # builds the module without allocating its weights
            return builder().config
    except (RuntimeError, NotImplementedError):  # a constructor that computes on real tensors
        return builder().config


def resolve_config(config: Mapping[str, Any]) -> ResolvedConfig:
    """Split a flat run config into trainer keys and the model's keys, with defaults filled in.

    ``config`` is flat (``{"model": "yolact_tiny", "max_iter": 200, "mask_loss": "bce"}``) or the
    nested form of ``config.yaml`` (``{"train": {...}, "model": {...}}``). A flat key that both the
    trainer and the model know (``amp``) is given to both.

    Raises:
        ValueError: a key that is neither a trainer key nor a key of the model's config (with the
            closest of both), an unknown preset, or a bad value.
    """
    config = dict(config)
    nested = isinstance(config.get("model"), Mapping)
    if nested:
        extra = sorted(set(config) - {"train", "model"})
        if extra:
            raise ValueError(f"a nested run config has only 'train' and 'model' sections; remove {extra}")
        train_part, model_part = dict(config.get("train") or {}), dict(config["model"])
    else:
        keys = set(TrainConfig.field_names())
        train_part = {k: v for k, v in config.items() if k in keys}
        model_part = {k: v for k, v in config.items() if k not in keys}
    cfg = apply_overrides(TrainConfig(), train_part, where="train")
    from losslab.models import get_model_info

    task = get_model_info(cfg.model).task
    base = _default_model_config(cfg.model)
    model_keys = [f.name for f in dataclasses.fields(base)]
    train_keys = TrainConfig.field_names()
    for key in model_part:
        if key not in model_keys:
            raise ValueError(
                f"unknown key {key!r} for a run of {cfg.model}.{suggest(key, [*train_keys, *model_keys])} "
                f"Trainer keys: {', '.join(train_keys)}. Model keys of {cfg.model}: {', '.join(model_keys)}"
            )
    if not nested:
        model_part.update({k: v for k, v in train_part.items() if k in model_keys and k != "model"})
    return ResolvedConfig(cfg, apply_overrides(base, model_part, where=cfg.model), task, tuple(model_part))


def dataset_root(cfg: TrainConfig, task: str, progress: bool = False) -> DatasetSplits:
    """The splits of ``cfg.data`` as ``losslab.data.resolve_splits`` finds them (any known layout,
    or the explicit ``train_json`` / ``train_images`` / ``val_json`` / ``val_images``); ``"synthetic"``
    generates the dataset once (cached) from ``synth_*``."""
    from losslab.data import ensure_synthetic, resolve_splits

    # -- data layout (issue 13): explicit keys alone need no synthetic set --
    keys = {k: getattr(cfg, k) for k in ("train_json", "train_images", "val_json", "val_images")}
    data = "" if cfg.data == "synthetic" and all(keys.values()) else cfg.data
    if data == "synthetic":
        root = None
        if is_main_process():  # one process generates; the others wait and reuse the cache
            root = ensure_synthetic(
                cfg.cache_dir or None,
                train=cfg.synth_train,
                val=cfg.synth_val,
                size=cfg.synth_size,
                seed=cfg.synth_seed,
                task=task,
                progress=progress,
            )
        barrier()
        data = str(broadcast_object(root))
    # -- data layout (issue 13): find the splits and say which layout --
    splits = resolve_splits(data, **keys)
    log.info("data: %s", splits.describe())
    if progress and is_main_process():
        print(f"data: {splits.describe()}", flush=True)
    return splits


def build_split(
    root: Path | DatasetSplits, split: str, task: str, size: int, train: bool, augment: str = "ssd"
) -> tuple[Dataset, Any]:
    """One split of a dataset (a folder, or ``dataset_root``'s splits) at the model's input size, and its collate."""
    from losslab.data import build_dataset, collate_instances

    dataset = build_dataset(root, split, task, size, train, augment=augment)
    return dataset, collate_instances if task == "instance" else None


def build_datasets(cfg: TrainConfig, task: str, size: int, progress: bool = False) -> tuple[Dataset, Dataset, Any]:
    """The train and val splits of ``cfg.data`` at the model's input size, and the collate function."""
    root = dataset_root(cfg, task, progress)
    train_set, collate_fn = build_split(root, "train", task, size, True, cfg.augment)
    val_set, _ = build_split(root, "val", task, size, False)
    return train_set, val_set, collate_fn


def _build_model(resolved: ResolvedConfig) -> nn.Module:
    from losslab.models import create_model

    return create_model(resolved.train.model, **config_to_dict(resolved.model))


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
    from losslab.models import create_model

    state = ckpt.load_checkpoint(path)
    conf = state.get("config") or {}
    if "train" not in conf or "model" not in conf:
        raise ValueError(f"{path} stores no run config ('train' and 'model'): it was not written by losslab train")
    # the weights come from the checkpoint: never download pretrained ones again
    model_cfg = {k: (False if k.startswith("pretrained") and v is True else v) for k, v in conf["model"].items()}
    model = create_model(conf["train"]["model"], **{**model_cfg, **overrides})
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state


def evaluate_model(
    model: nn.Module,
    dataset: Dataset,
    task: str,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    collate_fn: Any = None,
    workers: int = 0,
    details: dict[str, Any] | None = None,
) -> dict[str, dict[str, float]]:
    """The evaluator matching ``task`` over the whole ``dataset``.

    Instance task: ``InstanceEvaluator`` (COCO segm / bbox / boundary AP against the dataset's
    ``ann_file``); dense task: ``DenseEvaluator`` (IoU, Dice, Boundary IoU, depth errors).
    When ``details`` is a dict, the instance task also fills it with ``"pr"`` (precision-recall
    curves per IoU type) and ``"per_image"`` (``{"segm": {image_id: AP}}``) for the study report.
    """
    if task == "instance":
        from losslab.engine.evaluate import InstanceEvaluator

        # the json as the dataset read it (integer ids, flat polygons wrapped), else the file itself
        evaluator: Any = InstanceEvaluator(getattr(dataset, "gt", dataset.ann_file), dataset.label_to_cat)
    else:
        from losslab.engine.dense_metrics import DenseEvaluator

        evaluator = DenseEvaluator()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn, num_workers=workers)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for images, targets in loader:
            outputs = model(images.to(device))
            evaluator.process(targets, to_device(outputs, torch.device("cpu")))
    model.train(was_training)
    metrics = evaluator.evaluate()
    if details is not None and task == "instance":
        details["pr"] = evaluator.pr_curves
        details["per_image"] = {"segm": evaluator.per_image_ap("segm")}
    return metrics


def save_samples(
    model: nn.Module, dataset: Dataset, out_dir: str | Path, n: int = 8, device: torch.device | str = "cpu"
) -> list[Path]:
    """PNG overlays of the model's predictions on the first ``n`` images of ``dataset``.

    Written as ``out_dir/<image_id>.png`` at the original image size, so every configuration of a
    study shows the same validation images.
    """
    from losslab.engine.overlay import denormalize, draw_dense, draw_instances, to_original, write_png

    names = list(getattr(dataset, "cat_names", []) or [])
    written = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(min(n, len(dataset))):
            image, target = dataset[i]
            out = model(image[None].to(device))
            picture = denormalize(image)
            if isinstance(out, dict):  # dense task
                picture = draw_dense(picture, out["mask"][0], target.get("mask"))
            else:
                picture = draw_instances(picture, to_device(out[0], torch.device("cpu")), names)
            if "orig_size" in target and "scale" in target:
                picture = to_original(picture, target["orig_size"], float(target["scale"]))
            written.append(write_png(Path(out_dir) / f"{int(target['image_id'])}.png", picture))
    model.train(was_training)
    return written


def measure_model_fps(
    model: nn.Module, input_size: int, device: torch.device, n_images: int, images: torch.Tensor | None = None
) -> dict[str, Any]:
    """``losslab.engine.fps.measure_fps`` timing ``n_images`` calls, cycling through ``images``
    (real inputs give the honest NMS and mask-assembly cost of a trained model; None: random ones).

    Shape:
        images: ``(N, 3, S, S)``.
    """
    from losslab.engine.fps import measure_fps

    return measure_fps(model, input_size, device, n=n_images, images=images)


def _write_config(run_dir: Path, resolved: ResolvedConfig) -> None:
    path = run_dir / "config.yaml"
    new = resolved.to_dict()
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


def run_experiment(config: Mapping[str, Any], run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Train, evaluate on the val split, time inference and write the results into ``run_dir``.

    Args:
        config: flat trainer keys (``TrainConfig``) plus any key of the model's config, or the
            nested ``{"train", "model"}`` form of a ``config.yaml``.
        run_dir: the run folder; its ``checkpoints/last.pt`` is resumed from when present.
        progress: show progress bars.

    Returns:
        ``{"metrics": {"segm", "bbox", "boundary"} or {"mask"[, "depth"]}, "fps", "train_seconds",
        "iterations", "skipped_steps"}`` (also written to ``run_dir/result.json``).
    """
    resolved = resolve_config(config)
    cfg = resolved.train
    info = init_distributed()
    device = resolve_device(cfg.device, info.local_rank)
    run_dir = Path(run_dir)
    if is_main_process():
        run_dir.mkdir(parents=True, exist_ok=True)
    train_set, val_set, collate_fn = build_datasets(cfg, resolved.task, resolved.model.input_size, progress)
    if resolved.task == "instance" and hasattr(resolved.model, "num_classes"):
        n, given = int(train_set.num_classes), int(resolved.model.num_classes)
        if "num_classes" in resolved.model_keys_given and given != n:
            raise ValueError(f"num_classes={given} but the dataset {cfg.data!r} has {n} classes; drop num_classes")
        resolved.model = dataclasses.replace(resolved.model, num_classes=n)
    if is_main_process():
        _write_config(run_dir, resolved)

    seed_everything(cfg.seed)  # the initial weights depend on the seed only
    model = _build_model(resolved)
    stored = resolved.to_dict()
    stored["classes"] = list(getattr(train_set, "cat_names", []) or [])
    trainer = Trainer(
        model, train_set, cfg, collate_fn=collate_fn, run_dir=run_dir, config=stored, device=device, progress=progress
    )

    def eval_fn(m: nn.Module, details: dict[str, Any] | None = None) -> dict:
        return evaluate_model(m, val_set, resolved.task, device, cfg.batch_size, collate_fn, cfg.workers, details)

    if cfg.eval_every > 0:
        trainer.register_hooks([EvalHook(cfg.eval_every, eval_fn, run_dir / "eval_history.jsonl")])
    last = run_dir / "checkpoints" / "last.pt"
    summary = trainer.train(resume_from=last if last.is_file() else None)

    result = None
    if is_main_process():
        model.eval()
        details: dict[str, Any] = {}
        with torch.no_grad():
            metrics = eval_fn(model, details)
        ckpt.atomic_write_json(run_dir / "eval.json", metrics)
        save_samples(model, val_set, run_dir / "samples", cfg.num_samples, device)
        first = torch.stack([val_set[i][0] for i in range(min(8, len(val_set)))])
        fps = measure_model_fps(model, resolved.model.input_size, device, cfg.fps_images, first)
        result = {
            "metrics": metrics,
            "fps": float(fps["fps"]),
            "train_seconds": float(summary["train_seconds"]),
            "iterations": int(summary["iterations"]),
            "skipped_steps": int(summary["skipped_steps"]),
            **details,
        }
        ckpt.atomic_write_json(run_dir / "result.json", result)
    barrier()
    return broadcast_object(result)
