"""Tiny dense samples shared by the MaskNet, U-Net and depth + mask tests."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from tests._fit import train_steps


def two_images(size: int = 64, seed: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
    """Two images with a bright disc and a bright square on noise, their 0/1 masks and a depth
    map (metres) that is nearer on the object: ``(2, 3, S, S)`` and the default-collate targets."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = ((yy - size * 0.4) ** 2 + (xx - size * 0.55) ** 2 < (size * 0.25) ** 2).float()
    square = ((yy - size * 0.6).abs() < size * 0.2).float() * ((xx - size * 0.35).abs() < size * 0.15).float()
    mask = torch.stack([disc, square])[:, None]
    images = 0.3 * torch.randn(2, 3, size, size, generator=g) + 1.5 * mask - 0.5
    depth = 3.0 - 1.5 * mask + 0.1 * torch.rand(2, 1, size, size, generator=g)
    return images, {"mask": mask, "depth": depth, "image_id": torch.tensor([0, 1])}


def as_list(targets: dict[str, Tensor]) -> list[dict[str, Tensor]]:
    """The batched targets as a list of per-image dicts (the other accepted form)."""
    return [{k: v[i] for k, v in targets.items()} for i in range(len(targets["image_id"]))]


def iou(logits: Tensor, mask: Tensor) -> float:
    """IoU of ``logits > 0`` with a 0/1 mask, over the whole batch."""
    pred = logits > 0
    gt = mask > 0.5
    return float((pred & gt).sum() / (pred | gt).sum().clamp_min(1))


def overfit(
    build: Callable[[], nn.Module], images: Tensor, targets, steps: int, lr: float, seed: int = 0, bf16: bool = False
) -> tuple[nn.Module, list[float]]:
    """Build a model and train it on one batch with Adam, seeded without touching the global RNG.

    Returns:
        the model (still in training mode) and the summed ``loss_*`` value of every step.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build().train()
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        history = train_steps(model, lambda: (images, targets), steps, opt, bf16=bf16)
    return model, history


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
