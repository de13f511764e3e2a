"""COCO-format data, the synthetic Cigarette-Butts-like dataset, joint transforms and loaders.

Public API (docs/architecture.md): ``CocoInstances``, ``DenseDataset``, ``collate_instances``,
``build_dataset``, ``resolve_splits`` (the layout of a dataset root), ``ensure_synthetic``,
``build_transforms``, ``MEAN``, ``STD``, ``denormalize``, ``load_image`` / ``read_image``.
Names load lazily so that ``losslab data synth`` workers do not import torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from losslab.data.layout import DatasetSplits
    from losslab.data.noise import LabelNoise

__all__ = [
    "MEAN",
    "STD",
    "CocoInstances",
    "DatasetSplits",
    "DenseDataset",
    "SynthConfig",
    "build_dataset",
    "build_transforms",
    "check_dataset",
    "collate_instances",
    "denormalize",
    "ensure_synthetic",
    "load_image",
    "make_generator",
    "read_image",
    "resolve_splits",
    "worker_init_fn",
]

_WHERE = {
    "MEAN": "transforms",
    "STD": "transforms",
    "build_transforms": "transforms",
    "denormalize": "transforms",
    "CocoInstances": "coco",
    "DenseDataset": "dense",
    "collate_instances": "collate",
    "make_generator": "collate",
    "worker_init_fn": "collate",
    "ensure_synthetic": "synth",
    "SynthConfig": "synth",
    "check_dataset": "check",
    "DatasetSplits": "layout",
    "resolve_splits": "layout",
    "load_image": "images",
    "read_image": "images",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"losslab.data.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'losslab.data' has no attribute {name!r}")


#: Instance-training augmentations by name (``build_transforms`` switches).
_AUGMENT = {
    "ssd": {},
    "light": {"expand": False, "crop": False},
    "none": {"photometric": False, "expand": False, "crop": False, "flip": False},
}


def build_dataset(
    root: str | Path | DatasetSplits,
    split: str,
    task: str = "instance",
    size: int = 512,
    train: bool = False,
    skip_bad: bool = False,
    augment: str = "ssd",
    label_noise: LabelNoise | None = None,
    augment_variants: int = 0,
) -> Dataset:
    """The dataset of one split of a dataset folder, in any layout ``resolve_splits`` knows.

    Args:
        root: dataset root, or its splits as ``resolve_splits`` found them (explicit keys included).
        split: ``"train"``, ``"val"`` (or ``"valid"``) or ``"test"``.
        task: ``"instance"`` -> ``CocoInstances``; ``"dense"`` -> ``DenseDataset`` (losslab's own
            layout only: ``ROOT/{split}_masks/``).
        size: square input size.
        train: training augmentation (SSD-style for instances; flip + photometric for dense).
        augment: the instance augmentation when ``train``: ``"ssd"`` (photometric, expand, crop,
            flip: YOLACT's), ``"light"`` (photometric and flip) or ``"none"``.
        skip_bad: for instances, skip bad entries instead of raising.
        label_noise: corrupts the masks before augmentation (``losslab.data.noise``; training only).
        augment_variants: instances only: K > 0 fixed augmented copies per image instead of a
            fresh draw per read (``CocoInstances``).
    """
    from losslab.data.layout import DatasetSplits, canonical_split, resolve_splits

    if augment not in _AUGMENT:
        raise ValueError(f"augment must be one of {sorted(_AUGMENT)}, got {augment!r}")
    if task not in ("instance", "dense"):
        raise ValueError(f"task must be 'instance' or 'dense', got {task!r}")
    if task == "dense":
        if augment_variants:
            raise ValueError(
                f"augment_variants={augment_variants} is for instance datasets (a model with a frozen "
                "backbone whose features are cached); a dense dataset draws every augmentation afresh: set it to 0"
            )
        from losslab.data.dense import DenseDataset

        base = root.root if isinstance(root, DatasetSplits) else root
        if base is None:
            raise ValueError("a dense dataset needs data=ROOT (ROOT/{split}/, ROOT/{split}_masks/)")
        return DenseDataset(Path(base), canonical_split(split), size=size, train=train, label_noise=label_noise)
    from losslab.data.coco import CocoInstances
    from losslab.data.transforms import build_transforms

    splits = root if isinstance(root, DatasetSplits) else resolve_splits(root)
    files = splits.split(split)
    transform = build_transforms(size, train, **_AUGMENT[augment])
    return CocoInstances(
        files.json,
        files.images,
        transform=transform,
        skip_bad=skip_bad,
        label_noise=label_noise,
        augment_variants=augment_variants if train else 0,
    )
