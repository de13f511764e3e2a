"""What the dense-mask models (MaskNet, U-Net, depth + mask) share: reading the batch's targets,
and the training / evaluation interface around a network that maps images to per-pixel maps.

Interface (docs/architecture.md, dense task):

- ``model(images, targets)`` in training mode: ``{"loss_mask": ...[, "loss_depth": ...]}``, each
  weighted, plus detached per-term values of hybrid specs (``"mask/bce"``, ``"mask/2*dice"``)
  that the trainer only logs.
- ``model(images)`` in eval mode: ``{"mask": logits (B, 1, S, S)[, "depth": (B, 1, S, S)]}``.
- ``model(images, targets)`` in eval mode: the predictions *and* the ``loss_*`` terms, so a
  validation loss per epoch costs one forward pass.

Targets come from the default collate, ``{"mask": (B, 1, S, S), "depth": (B, 1, S, S),
"image_id": (B,)}``, or as a list of per-image dicts ``{"mask": (1, S, S), ...}``; both work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from losslab.losses import HybridLoss
from losslab.losses.fields import build_loss, loss_field, loss_fields

__all__ = ["DenseConfig", "DenseModel", "DenseTargets", "HeadLoss", "dense_target", "mask_losses"]


@dataclass
class DenseConfig:
    """What every dense model's config holds: its mask loss and the input of one foreground mask.

    Attributes:
        mask_loss: catalogue spec of the mask loss (mask contract, on logits).
        mask_weight: weight of the mask loss.
        input_size: the square input side S of the data.
        num_classes: foreground classes (1: one binary mask).
        in_channels: image channels.
    """

    mask_loss: str = loss_field("bce")
    mask_weight: float = 1.0
    input_size: int = 128
    num_classes: int = 1
    in_channels: int = 3

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` on values that cannot build a model (run on every new config);
        subclasses add their own checks after ``super().check()``."""
        if self.num_classes != 1:
            raise ValueError(
                f"{type(self).__name__}: a dense model predicts one binary (foreground) mask: num_classes must be 1, "
                f"not {self.num_classes}"
            )
        if self.in_channels < 1:
            raise ValueError(f"{type(self).__name__}: in_channels must be >= 1, got {self.in_channels}")


#: The default collate's batched dict, or one dict per image.
DenseTargets = Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]]


def dense_target(targets: DenseTargets, key: str, like: Tensor) -> Tensor:
    """The batch's ``key`` map as a float ``(B, 1, H, W)`` tensor on ``like``'s device.

    Args:
        targets: a batched dict or a list of per-image dicts.
        key: ``"mask"`` or ``"depth"``.
        like: the prediction ``(B, 1, H, W)`` the target must match.

    Raises:
        ValueError: the key is missing or the shapes disagree with the prediction.
    """
    if isinstance(targets, Mapping):
        if key not in targets:
            raise ValueError(f"targets have no {key!r} (keys: {sorted(targets)}); this model needs {key!r} maps")
        value = targets[key]
    else:
        missing = [i for i, t in enumerate(targets) if key not in t]
        if missing:
            raise ValueError(f"targets[{missing[0]}] has no {key!r}; this model needs {key!r} maps for every image")
        value = torch.stack([torch.as_tensor(t[key]) for t in targets])
    value = torch.as_tensor(value)
    if value.dim() == 3:  # (B, H, W): add the channel
        value = value[:, None]
    if value.shape != like.shape:
        raise ValueError(
            f"targets[{key!r}] has shape {tuple(value.shape)} but the prediction is {tuple(like.shape)}; "
            f"give one (1, S, S) map per image at the input size"
        )
    return value.to(device=like.device, dtype=like.dtype)


class HeadLoss(nn.Module):
    """One head's loss: a config's loss field (its spec and contract, ``loss_field``) and a weight.

    Args:
        config: the model's config dataclass.
        name: its loss field (``"mask_loss"``, ``"depth_loss"``): ``"mask"`` contract (logits vs 0/1)
            or ``"regression"`` (values vs values, e.g. depth); ``valid`` marks ignored pixels, not a crop.
        weight: multiplies the spec's value.
    """

    def __init__(self, config: Any, name: str, weight: float = 1.0):
        super().__init__()
        self.loss = build_loss(config, name)
        self.contract = loss_fields(config)[name]["contract"]
        self.weight = float(weight)

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        """Shape: ``pred``, ``target``, ``valid``: ``(B, 1, H, W)``; output: scalar."""
        return self.weight * self.loss(pred, target, valid)

    @torch.no_grad()
    def terms(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> dict[str, Tensor]:
        """The weighted terms of a hybrid spec, detached, for logging (empty for one loss)."""
        if not isinstance(self.loss, HybridLoss):
            return {}
        return {k: self.weight * v.detach() for k, v in self.loss.forward_terms(pred, target, valid).items()}


class DenseModel(nn.Module):
    """Base of the dense models: subclasses build ``self.config`` and implement ``predict``
    (images to ``{"mask": logits[, "depth": values]}``) and ``losses`` (predictions and targets to
    ``loss_*`` terms).

    Shape:
        - images: ``(B, C_in, S, S)`` normalised (``C_in`` = ``config.in_channels``).
        - eval output: ``{"mask": (B, 1, S, S)[, "depth": (B, 1, S, S)]}``.
    """

    task = "dense"

    def predict(self, images: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def losses(self, outputs: dict[str, Tensor], targets: DenseTargets) -> dict[str, Tensor]:
        raise NotImplementedError

    def forward(self, images: Tensor | Sequence[Tensor], targets: DenseTargets | None = None) -> dict[str, Tensor]:
        if not isinstance(images, Tensor):
            images = torch.stack(list(images))
        expected = self.config.in_channels
        if images.dim() != 4 or images.shape[1] not in self.accepted_channels():
            raise ValueError(f"{type(self).__name__} expects images (B, {expected}, S, S), got {tuple(images.shape)}")
        outputs = self.predict(images)
        if targets is None:
            if self.training:
                raise ValueError(f"{type(self).__name__} in training mode needs targets: model(images, targets)")
            return outputs
        losses = self.losses(outputs, targets)
        return losses if self.training else {**outputs, **losses}

    def accepted_channels(self) -> tuple[int, ...]:
        """Input channel counts ``forward`` accepts."""
        return (self.config.in_channels,)


def mask_losses(head: HeadLoss, logits: Tensor, targets: DenseTargets, name: str = "mask") -> dict[str, Tensor]:
    """``{"loss_<name>": ..., "<name>/<term>": ...}`` of a mask head against ``targets[name]``."""
    target = dense_target(targets, name, logits)
    out = {f"loss_{name}": head(logits, target)}
    out.update({f"{name}/{k}": v for k, v in head.terms(logits, target).items()})
    return out
