"""Anchor classification losses for the detection heads (the class contract).

``loss(logits (B, A, C+1), labels (B, A) int64)``: column 0 of the logits and label 0 are the
background, labels 1..C the classes, -1 an ignored anchor (neutral IoU, crowd). Every loss computes
a per-anchor value (zero where the anchor is not used); ``reduction="sum"`` sums them, ``"mean"``
divides that sum by the number of positive anchors in the batch (at least 1), which is how SSD,
RetinaNet and YOLACT normalise; ``"none"`` returns the ``(B, A)`` values.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab.losses._base import ReducedLoss, hook
from losslab.losses.registry import register_loss

__all__ = ["ClassLoss", "OHEMCrossEntropyLoss", "SigmoidFocalClassLoss", "SoftmaxFocalLoss", "hard_negatives"]


class ClassLoss(ReducedLoss):
    """Base of the class contract: checks inputs, computes ``per_anchor`` and reduces it.

    ``check_inputs=False`` (a constructor argument) skips the label-range check, which costs a device sync.

    Shape:
        - logits: ``(B, A, C + 1)`` raw scores, column 0 the background.
        - labels: ``(B, A)`` int64 in ``-1..C`` (-1 ignored, 0 background).
        - output: scalar for ``"mean"``/``"sum"``; ``(B, A)`` for ``"none"``.
    """

    loss_name = "?"

    def check(self, logits: Tensor, labels: Tensor) -> None:
        """Raise ``ValueError`` for inputs outside the class contract."""
        name = self.loss_name
        if not isinstance(logits, Tensor) or not isinstance(labels, Tensor):
            raise ValueError(f"{name}: logits and labels must be torch tensors")
        if logits.dim() != 3 or not logits.is_floating_point():
            raise ValueError(
                f"{name}: logits must be float (B, A, C+1), got shape {tuple(logits.shape)} dtype {logits.dtype}"
            )
        if labels.shape != logits.shape[:2]:
            raise ValueError(
                f"{name}: labels {tuple(labels.shape)} must be (B, A) = {tuple(logits.shape[:2])} "
                f"for logits {tuple(logits.shape)}"
            )
        if labels.dtype != torch.int64:
            raise ValueError(f"{name}: labels must be int64 class indices (-1, 0..C), got dtype {labels.dtype}")
        if logits.shape[2] < 2:
            raise ValueError(f"{name}: logits need a background column and at least one class, got C+1 = 1")
        if self.check_inputs and labels.numel():
            # One sync: the label range and whether the logits are finite (a sum is finite iff
            # every element is, barring an overflow past 1e308 in float64).
            lo, hi, total = torch.stack(
                [labels.min().double(), labels.max().double(), logits.detach().sum().double()]
            ).tolist()
            if not math.isfinite(total):
                raise ValueError(f"{name}: logits contain NaN or inf values")
            if lo < -1 or hi >= logits.shape[2]:
                raise ValueError(
                    f"{name}: labels must lie in -1..{logits.shape[2] - 1} (-1 ignored, 0 background), "
                    f"found {int(lo)}..{int(hi)}"
                )

    @hook
    def per_anchor(self, logits: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        self.check(logits, labels)
        values = self.per_anchor(logits, labels)
        if self.reduction == "none":
            return values
        total = values.sum()
        if self.reduction == "sum":
            return total
        return total / (labels > 0).sum().clamp_min(1).to(total.dtype)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


@torch.no_grad()
def hard_negatives(logits: Tensor, labels: Tensor, neg_pos_ratio: float) -> Tensor:
    """SSD / YOLACT online hard negative mining: per image, the background anchors with the
    largest background loss ``log Σ exp(x) − x₀``, up to ``neg_pos_ratio × positives`` of that image
    (and at most ``A − 1``). Positives and ignored anchors never enter the ranking.

    Shape:
        - logits: ``(B, A, C + 1)``; labels: ``(B, A)``.
        - output: ``(B, A)`` bool, True for the selected negatives.
    """
    negative = labels == 0
    bg_loss = torch.logsumexp(logits, dim=2) - logits[..., 0]
    bg_loss = bg_loss.masked_fill(~negative, float("-inf"))
    order = bg_loss.argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    num_pos = (labels > 0).sum(dim=1, keepdim=True)
    num_neg = (num_pos * neg_pos_ratio).floor().clamp(max=labels.shape[1] - 1)
    return (rank < num_neg) & negative


@register_loss(
    "ohem_ce",
    kind="class",
    acts_on="logits",
    description="softmax cross-entropy on all positives and the hardest negatives (3:1), as SSD/YOLACT",
    source="Liu et al. 2016 (SSD); Bolya et al. 2019 (YOLACT multibox_loss ohem_conf_loss)",
    contracts=("class",),
)
class OHEMCrossEntropyLoss(ClassLoss):
    """Softmax cross-entropy with online hard negative mining (``hard_negatives``): every positive
    anchor and, per image, the ``neg_pos_ratio × positives`` negatives with the largest background
    loss. An image without positives contributes nothing, as in YOLACT.

    Args:
        neg_pos_ratio: negatives kept per positive (3).

    Shape:
        logits ``(B, A, C+1)``, labels ``(B, A)``; output scalar or ``(B, A)``.
    """

    def __init__(self, neg_pos_ratio: float = 3.0, **base: Any):
        super().__init__(**base)
        if neg_pos_ratio < 0:
            raise ValueError(f"ohem_ce neg_pos_ratio must be >= 0, got {neg_pos_ratio}")
        self.neg_pos_ratio = float(neg_pos_ratio)

    def per_anchor(self, logits: Tensor, labels: Tensor) -> Tensor:
        selected = (labels > 0) | hard_negatives(logits, labels, self.neg_pos_ratio)
        b, a, k = logits.shape
        ce = F.cross_entropy(logits.reshape(-1, k), labels.clamp_min(0).reshape(-1), reduction="none")
        return ce.view(b, a) * selected

    def extra_repr(self) -> str:
        return f"neg_pos_ratio={self.neg_pos_ratio}, " + super().extra_repr()


class _FocalClassLoss(ClassLoss):
    """The two focal class losses' parameters: ``alpha`` (foreground weight) and ``gamma``."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, **base: Any):
        super().__init__(**base)
        if not 0 <= alpha <= 1 or gamma < 0:
            raise ValueError(f"{self.loss_name} needs 0 <= alpha <= 1 and gamma >= 0, got {alpha}, {gamma}")
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, " + super().extra_repr()


@register_loss(
    "softmax_focal",
    kind="class",
    acts_on="logits",
    description="softmax focal loss over all non-ignored anchors (YOLACT's focal_conf_loss)",
    source="Lin et al. 2017 (RetinaNet); YOLACT multibox_loss focal_conf_loss",
    contracts=("class",),
)
class SoftmaxFocalLoss(_FocalClassLoss):
    """``−α_t (1 − p_t)^γ log p_t`` with ``p_t`` the softmax probability of the true class, over
    every non-ignored anchor; ``α_t = α`` for a class and ``1 − α`` for the background (YOLACT's
    convention). ``"mean"`` divides the sum by the number of positives.

    Args:
        alpha: weight of the foreground classes (0.25); the background gets ``1 − alpha``.
        gamma: focusing exponent (2).

    Shape:
        logits ``(B, A, C+1)``, labels ``(B, A)``; output scalar or ``(B, A)``.
    """

    def per_anchor(self, logits: Tensor, labels: Tensor) -> Tensor:
        keep = labels >= 0
        log_pt = F.log_softmax(logits, dim=2).gather(2, labels.clamp_min(0).unsqueeze(2)).squeeze(2)
        alpha_t = torch.where(labels > 0, self.alpha, 1.0 - self.alpha)
        return -alpha_t * (1 - log_pt.exp()) ** self.gamma * log_pt * keep


@register_loss(
    "sigmoid_focal_cls",
    kind="class",
    acts_on="logits",
    description="sigmoid focal loss per class on one-hot labels (background = all zeros), RetinaNet",
    source="Lin et al. 2017 (RetinaNet); torchvision.ops.sigmoid_focal_loss",
    contracts=("class",),
)
class SigmoidFocalClassLoss(_FocalClassLoss):
    """torchvision's sigmoid focal loss on the class columns ``1..C`` against the one-hot label (the
    background is the all-zeros row, its logit column 0 is unused, as YOLACT's
    ``focal_conf_sigmoid_loss``), summed over the C classes of each non-ignored anchor. ``"mean"``
    divides the sum by the number of positives, as RetinaNet.

    Args:
        alpha: weight of the positive class entries (0.25); negatives get ``1 − alpha``.
        gamma: focusing exponent (2).

    Shape:
        logits ``(B, A, C+1)``, labels ``(B, A)``; output scalar or ``(B, A)``.
    """

    def per_anchor(self, logits: Tensor, labels: Tensor) -> Tensor:
        x = logits[..., 1:]
        onehot = F.one_hot(labels.clamp_min(0), logits.shape[2])[..., 1:].to(x.dtype)
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, onehot, reduction="none")
        p_t = p * onehot + (1 - p) * (1 - onehot)
        alpha_t = self.alpha * onehot + (1 - self.alpha) * (1 - onehot)
        return (alpha_t * ce * (1 - p_t) ** self.gamma).sum(dim=2) * (labels >= 0)
