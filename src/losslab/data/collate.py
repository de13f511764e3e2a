"""Batching for variable numbers of instances, and reproducible DataLoader workers."""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["collate_instances", "make_generator", "worker_init_fn"]


def collate_instances(batch: list[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, list[dict]]:
    """Stack the images; keep the targets as a list (each image has its own number of instances).

    Shape:
        ``batch`` of ``(image (3, S, S), target)`` -> ``(images (B, 3, S, S), [target] * B)``.
    """
    if not batch:
        raise ValueError("collate_instances got an empty batch")
    images, targets = zip(*batch, strict=True)
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        raise ValueError(f"images in a batch must share one shape, got {sorted(shapes)}; use a Letterbox transform")
    return torch.stack(list(images)), list(targets)


def worker_init_fn(worker_id: int) -> None:
    """Seed ``random`` and numpy's global generator from the worker's torch seed.

    DataLoader already gives each worker its own torch seed (``base_seed + worker_id``); our
    transforms draw from it. This also covers third-party code that uses numpy or ``random``.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_generator(seed: int) -> torch.Generator:
    """A torch generator for ``DataLoader(generator=...)``: fixes shuffling and worker seeds."""
    g = torch.Generator()
    g.manual_seed(seed)
    return g
