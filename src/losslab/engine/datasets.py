"""The datasets of a run: ``cfg.data`` as a folder (the synthetic one generated once, cached) and its
splits at the model's input size, with the collate function of the task."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from losslab.data import DatasetSplits, build_dataset, collate_instances, ensure_synthetic, resolve_splits
from losslab.data.noise import LabelNoise, make_label_noise
from losslab.engine.config import DATA_FILE_KEYS, TrainConfig, synthetic_args
from losslab.engine.distributed import barrier, broadcast_object, is_main_process

__all__ = ["build_datasets", "build_split", "dataset_root", "require_annotations", "synthetic_root"]

log = logging.getLogger("losslab.engine")


def synthetic_root(cfg: TrainConfig, task: str, progress: bool = False) -> Path:
    """The synthetic dataset of ``cfg`` (its ``synth_*`` keys), generated on first use and cached."""
    return ensure_synthetic(cfg.cache_dir or None, task=task, progress=progress, **synthetic_args(cfg))


def dataset_root(cfg: TrainConfig, task: str, progress: bool = False) -> DatasetSplits:
    """The splits of ``cfg.data`` as ``losslab.data.resolve_splits`` finds them (any known layout,
    or the explicit ``train_json`` / ``train_images`` / ``val_json`` / ``val_images``);
    ``"synthetic"`` generates the dataset once (cached) from ``synth_*``.

    Under torchrun one process generates the synthetic data; the others wait and reuse the cache.

    Raises:
        ValueError: no layout fits ``data`` (every path tried is listed), or a key names a missing file.
    """
    keys = {k: getattr(cfg, k) for k in DATA_FILE_KEYS}
    data = "" if cfg.data == "synthetic" and all(keys.values()) else cfg.data  # explicit files alone
    if data == "synthetic":
        root = synthetic_root(cfg, task, progress) if is_main_process() else None
        barrier()
        data = str(broadcast_object(root))
    splits = resolve_splits(data, **keys)
    log.info("data: %s", splits.describe())
    if progress and is_main_process():
        print(f"data: {splits.describe()}", flush=True)
    return splits


def build_split(
    root: Path | DatasetSplits,
    split: str,
    task: str,
    size: int,
    train: bool,
    augment: str = "ssd",
    label_noise: LabelNoise | None = None,
    skip_bad: bool = False,
    augment_variants: int = 0,
) -> tuple[Dataset, Callable[[list], Any] | None]:
    """One split of a dataset folder at the model's input size, and its collate function
    (``collate_instances`` for the instance task, torch's default for the dense one);
    ``label_noise`` corrupts its masks before augmentation; ``skip_bad`` leaves unusable entries out;
    ``augment_variants`` fixes K augmented copies per training image (``CocoInstances``)."""
    dataset = build_dataset(
        root,
        split,
        task,
        size,
        train,
        augment=augment,
        label_noise=label_noise,
        skip_bad=skip_bad,
        augment_variants=augment_variants,
    )
    return dataset, collate_instances if task == "instance" else None


def require_annotations(dataset: Dataset, split: str) -> None:
    """Refuse an instance split without a single (non-crowd) annotation, before any training.

    A training split without one has nothing to learn; on a validation split without one COCO AP
    is undefined (COCOeval's -1), so the run could never give a result.

    Raises:
        ValueError: naming the split's json.
    """
    gt = getattr(dataset, "gt", None)
    if gt is None:  # the dense task: every pixel is labelled
        return
    if not any(not a.get("iscrowd", 0) for a in gt.get("annotations", [])):
        why = "nothing to learn from" if split == "train" else "AP is undefined"
        raise ValueError(
            f"the {'training' if split == 'train' else 'validation'} split {dataset.ann_file} has no annotations "
            f"({len(dataset)} images, no non-crowd object): {why}. Annotate it or point "
            f"{split}_json / data at another dataset (`losslab data check` lists what each split holds)"
        )


def build_datasets(
    cfg: TrainConfig, task: str, size: int, progress: bool = False
) -> tuple[Dataset, Dataset, Callable[[list], Any] | None]:
    """The train and val splits of ``cfg.data`` at the model's input size, and the collate function.
    ``cfg.label_noise`` corrupts the training split only: validation stays clean.

    Raises:
        ValueError: a split that cannot be read, or an instance split without annotations.
    """
    root = dataset_root(cfg, task, progress)
    noise = make_label_noise(cfg.label_noise, cfg.seed)
    train_set, collate_fn = build_split(
        root, "train", task, size, True, cfg.augment, noise, cfg.skip_bad, cfg.augment_variants
    )
    val_set, _ = build_split(root, "val", task, size, False, skip_bad=cfg.skip_bad)
    require_annotations(train_set, "train")
    require_annotations(val_set, "val")
    return train_set, val_set, collate_fn
