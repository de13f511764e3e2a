"""YOLACT's mask term with the survey's losses as its code ran, against a direct transcription of
the formulas of its ``lincomb_mask_loss`` (selamikarakas/YolactLossSurvey,
``layers/modules/multibox_loss.py``): sigmoid, an optional second ("double") loss on the uncropped
prototype-resolution mask with ``reduction='sum'`` times α, the crop, the clamped per-pixel loss
summed over the map and divided by the box's width and height in prototype pixels (times h·w), then
× mask_alpha ÷ h ÷ w ÷ the number of positives.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from losslab.models.yolact.box_utils import center_size
from losslab.models.yolact.config import YolactConfig
from losslab.models.yolact.multibox_loss import MultiBoxLoss, YolactOutputs

S, HP, K = 64, 16, 6  # image side, prototype side, prototypes
BOXES = [[8.0, 12.0, 40.0, 36.0], [36.0, 40.0, 60.0, 60.0]]  # pixels, xyxy
ANCHORS_PER_BOX = (2, 1)


def _scene() -> tuple[YolactOutputs, dict[str, torch.Tensor]]:
    """Two objects; anchors equal to their boxes (2 on the first, 1 on the second) and one far away,
    each anchor with its own coefficients."""
    g = torch.Generator().manual_seed(11)
    rel = torch.tensor(BOXES) / S
    on_gt = torch.cat([rel[i].repeat(n, 1) for i, n in enumerate(ANCHORS_PER_BOX)])
    anchors = center_size(torch.cat([on_gt, torch.tensor([[0.0, 0.0, 0.08, 0.08]])]))
    A = anchors.shape[0]
    out = YolactOutputs(
        loc=torch.zeros(1, A, 4),
        conf=torch.zeros(1, A, 2),
        coef=torch.randn(1, A, K, generator=g),
        protos=torch.rand(1, K, HP, HP, generator=g),
        anchors=anchors,
    )
    masks = torch.zeros(2, S, S)
    masks[0, 14:34, 10:38] = 1
    masks[0, 14:20, 10:16] = 0  # not a rectangle
    masks[1, 42:58, 38:58] = 1
    return out, {"boxes": torch.tensor(BOXES), "labels": torch.tensor([1, 1]), "masks": masks}


def _crop(pred: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """dbolya's ``crop`` with padding 1 and ``cast=False``: zero outside each (padded) box.
    pred ``(h, w, n)``, boxes ``(n, 4)`` relative xyxy."""
    h, w, _ = pred.shape

    def sanitize(a: torch.Tensor, b: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = a * size, b * size
        return torch.clamp(torch.min(a, b) - 1, min=0), torch.clamp(torch.max(a, b) + 1, max=size)

    x1, x2 = sanitize(boxes[:, 0], boxes[:, 2], w)
    y1, y2 = sanitize(boxes[:, 1], boxes[:, 3], h)
    rows = torch.arange(w, dtype=pred.dtype).view(1, -1, 1).expand(h, w, -1)
    cols = torch.arange(h, dtype=pred.dtype).view(-1, 1, 1).expand(h, w, -1)
    keep = (rows >= x1) & (rows < x2) & (cols >= y1) & (cols < y2)
    return pred * keep.float()


def _dice(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return 1 - (2 * (p * g) + 0.1) / (p + g + 0.1)


def _log_cosh(x: torch.Tensor) -> torch.Tensor:
    return torch.log((torch.exp(x) + torch.exp(-x)) / 2.0)


#: The survey's per-pixel losses (``reduction='none'``) on clamped probabilities.
MAIN = {
    "bce": lambda p, g: F.binary_cross_entropy(torch.clamp(p, 0, 1), g, reduction="none"),
    "mse": lambda p, g: F.mse_loss(torch.clamp(p, 0, 1), g, reduction="none"),
    "huber": lambda p, g: F.huber_loss(torch.clamp(p, 0, 1), g, reduction="none", delta=1.0),
    "dice": lambda p, g: _dice(torch.clamp(p, 0, 1), g),
    "lcdl": lambda p, g: _log_cosh(_dice(torch.clamp(p, 0, 1), g)),
}
#: The survey's double-loss types (``reduction='sum'``).
DOUBLE = {
    "mse_loss": lambda p, g: F.mse_loss(torch.clamp(p, 0, 1), g, reduction="sum"),
    "huber_loss": lambda p, g: F.huber_loss(torch.clamp(p, 0, 1), g, reduction="sum"),
    "bce": lambda p, g: F.binary_cross_entropy(torch.clamp(p, 0, 1), g, reduction="sum"),
}


def survey_mask_loss(main: str, double: str | None, alpha: float, mask_alpha: float = 6.125) -> float:
    """The survey's ``lincomb_mask_loss`` for the scene, transcribed (one image, all positives kept)."""
    out, target = _scene()
    proto = out.protos[0].permute(1, 2, 0)  # (h, w, k), the survey's layout
    h, w = proto.shape[:2]
    anchor_gt = [i for i, n in enumerate(ANCHORS_PER_BOX) for _ in range(n)]
    coef = out.coef[0, : len(anchor_gt)]
    small = F.interpolate(target["masks"][None], (h, w), mode="bilinear", align_corners=False)[0]
    mask_t = small.gt(0.5).float().permute(1, 2, 0)[:, :, anchor_gt]  # (h, w, num_pos)
    boxes = (target["boxes"] / S)[anchor_gt]
    pred = torch.sigmoid(proto @ coef.t())
    loss_m = torch.zeros(())
    if double is not None:
        loss_m = loss_m + alpha * DOUBLE[double](pred, mask_t)
    pred = _crop(pred, boxes)
    pre = MAIN[main](pred, mask_t)
    size = center_size(boxes)
    pre = pre.sum(dim=(0, 1)) / (size[:, 2] * w) / (size[:, 3] * h) * (h * w)
    loss_m = loss_m + pre.sum()
    num_pos = len(anchor_gt)
    return float(loss_m * mask_alpha / h / w / num_pos)


def losslab_mask_loss(spec: str) -> float:
    out, target = _scene()
    losses = MultiBoxLoss(YolactConfig(mask_loss=spec, num_classes=1))(out, [target])
    assert losses["num_positives"].item() == sum(ANCHORS_PER_BOX)
    return losses["loss_mask"].item()


@pytest.mark.parametrize(
    ("spec", "main", "double", "alpha"),
    [
        ("bce", "bce", None, 0),
        ("pixel_dice(smooth=0.1)", "dice", None, 0),  # its Dice as run
        ("log_cosh(pixel_dice(smooth=0.1))", "lcdl", None, 0),  # its LCDL as run (71.56 mAP)
        ("bce + 0.5*uncropped(mse)", "bce", "mse_loss", 0.5),  # "0.5·MSE + BCE", the claimed winner
        ("bce + uncropped(mse)", "bce", "mse_loss", 1),
        ("bce + 2*uncropped(mse)", "bce", "mse_loss", 2),
        ("bce + 3*uncropped(mse)", "bce", "mse_loss", 3),
        ("bce + uncropped(huber)", "bce", "huber_loss", 1),  # "HL + BCE"
        ("bce + 0.5*uncropped(huber)", "bce", "huber_loss", 0.5),
        ("huber + uncropped(mse)", "huber", "mse_loss", 1),  # "HL + MSE" / "MSE + HL"
        ("huber + 3*uncropped(mse)", "huber", "mse_loss", 3),
    ],
)
def test_losslab_equals_the_survey_code_as_it_ran(spec, main, double, alpha):
    assert losslab_mask_loss(spec) == pytest.approx(survey_mask_loss(main, double, alpha), rel=2e-6)


def test_the_in_crop_hybrid_is_not_the_survey_hybrid():
    """What the hybrid meant (both terms in the crop) and what ran differ on the same tensors."""
    as_run = survey_mask_loss("bce", "mse_loss", 1)
    in_crop = losslab_mask_loss("bce + mse")
    assert abs(in_crop - as_run) / as_run > 0.01
