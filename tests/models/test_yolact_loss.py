"""MultiBoxLoss on hand-built network outputs: every term against its definition."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from losslab.losses import create_loss
from losslab.models.yolact.box_utils import center_size, decode
from losslab.models.yolact.config import YolactConfig
from losslab.models.yolact.multibox_loss import MultiBoxLoss, YolactOutputs, box_loss_acts_on
from losslab.models.yolact.rescoring import MaskIoUNet

S, HP, K = 32, 8, 4  # image side, prototype side, prototypes
GT_BOX = [8.0, 8.0, 24.0, 24.0]  # pixels; relative 0.25..0.75


def _outputs(num_anchors_on_gt: int = 1, num_classes: int = 2, seed: int = 0, segm: bool = True) -> YolactOutputs:
    """Anchors 0..n-1 equal the ground-truth box, the last anchor is far away (background)."""
    g = torch.Generator().manual_seed(seed)
    on_gt = torch.tensor([GT_BOX]) / S
    far = torch.tensor([[0.0, 0.0, 0.1, 0.1]])
    anchors = center_size(torch.cat([on_gt.repeat(num_anchors_on_gt, 1), far]))
    A = anchors.shape[0]
    coef = torch.randn(1, 1, K, generator=g).repeat(1, A, 1)  # the same coefficients everywhere
    return YolactOutputs(
        loc=(torch.randn(1, A, 4, generator=g) * 0.1).requires_grad_(),
        conf=torch.randn(1, A, num_classes + 1, generator=g).requires_grad_(),
        coef=coef.requires_grad_(),
        protos=torch.rand(1, K, HP, HP, generator=g).requires_grad_(),
        anchors=anchors,
        segm=torch.zeros(1, num_classes, HP, HP, requires_grad=True) if segm else None,
    )


def _target(crowd: bool = False) -> dict[str, torch.Tensor]:
    mask = torch.zeros(S, S, dtype=torch.uint8)
    mask[10:22, 9:20] = 1
    boxes, labels, masks, iscrowd = [GT_BOX], [2], [mask], [False]
    if crowd:
        cm = torch.zeros(S, S, dtype=torch.uint8)
        cm[0:6, 26:32] = 1
        boxes.append([26.0, 0.0, 32.0, 6.0])
        labels.append(1)
        masks.append(cm)
        iscrowd.append(True)
    return {
        "boxes": torch.tensor(boxes),
        "labels": torch.tensor(labels),
        "masks": torch.stack(masks),
        "iscrowd": torch.tensor(iscrowd),
    }


def _expected_mask_inputs(out: YolactOutputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    logits = torch.einsum("khw,k->hw", out.protos[0], out.coef[0, 0])[None]
    small = F.interpolate(_target()["masks"][None].float(), (HP, HP), mode="bilinear", align_corners=False)[0]
    target = small.gt(0.5).float()
    valid = torch.zeros(1, HP, HP)
    valid[:, 1:7, 1:7] = 1  # box 2..6 in prototype pixels, 1 pixel of padding as in YOLACT's crop
    area = torch.tensor([4.0 * 4.0])  # the box itself, 4 x 4 prototype pixels, no padding
    return logits, target, valid, area


@pytest.mark.parametrize("spec", ["bce", "dice", "0.5*mse + bce", "focal(gamma=2)", "bce + dice", "lovasz_hinge"])
def test_mask_loss_equals_catalogue_loss_on_cropped_masks(spec):
    cfg = YolactConfig(mask_loss=spec)
    out = _outputs()
    losses = MultiBoxLoss(cfg)(out, [_target()])
    logits, target, valid, area = _expected_mask_inputs(out)
    per_instance = create_loss(spec, reduction="none")(logits, target, valid, area=area)
    assert losses["num_positives"].item() == 1
    assert losses["loss_mask"].item() == pytest.approx(6.125 * per_instance.sum().item(), rel=1e-5)


def test_bce_is_the_sum_in_the_crop_over_the_box_area():
    """By hand: one instance, one positive: mask_alpha * sum(BCE over the padded crop) / (w * h)."""
    out = _outputs()
    losses = MultiBoxLoss(YolactConfig(mask_loss="bce"))(out, [_target()])
    logits, target, valid, _ = _expected_mask_inputs(out)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    expected = 6.125 * (bce * valid).sum() / (4 * 4) / 1  # box 4 x 4 prototype pixels, N_pos = 1
    assert losses["loss_mask"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_bce_follows_yolacts_emulate_roi_pooling_formula():
    """YOLACT's own steps, restated: sigmoid, zero outside the crop, BCE summed over the whole
    prototype, divided by the box's relative width and height times the prototype area, times
    mask_alpha, divided by the prototype area and by the number of positives."""
    out = _outputs(num_anchors_on_gt=2)
    losses = MultiBoxLoss(YolactConfig(mask_loss="bce"))(out, [_target()])
    logits, target, valid, _ = _expected_mask_inputs(out)
    probs = torch.sigmoid(logits) * valid
    pre = F.binary_cross_entropy(probs, target, reduction="none").sum()
    w_rel = h_rel = (GT_BOX[2] - GT_BOX[0]) / S
    per_instance = pre / (w_rel * HP) / (h_rel * HP) * (HP * HP)
    num_pos = 2
    expected = 6.125 * (num_pos * per_instance) / HP / HP / num_pos
    assert losses["num_positives"].item() == num_pos
    assert losses["loss_mask"].item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("spec", ["bce", "mse", "huber(delta=0.5)", "l1", "log_cosh_bce", "focal"])
def test_pixel_losses_divide_by_the_box_area_not_the_padded_crop(spec):
    """A 2 x 2 prototype-pixel box has a 4 x 4 padded crop: a mean over the crop (losslab before
    it matched YOLACT) gives 4 / 16 of YOLACT's value. Region losses are ratios and do not move."""
    mask = torch.zeros(S, S, dtype=torch.uint8)
    mask[8:16, 8:16] = 1  # 8 px at S = 32 is 2 prototype pixels at HP = 8
    box = [8.0, 8.0, 16.0, 16.0]
    target = {"boxes": torch.tensor([box]), "labels": torch.tensor([1]), "masks": mask[None]}
    out = _outputs(num_classes=1)
    out.anchors = center_size(torch.tensor([box, [0.0, 0.0, 3.2, 3.2]]) / S)
    got = MultiBoxLoss(YolactConfig(mask_loss=spec, num_classes=1))(out, [target])["loss_mask"]
    logits = torch.einsum("khw,k->hw", out.protos[0], out.coef[0, 0])[None]
    small = F.interpolate(mask[None, None].float(), (HP, HP), mode="bilinear", align_corners=False)[0].gt(0.5).float()
    valid = torch.zeros(1, HP, HP)
    valid[:, 1:5, 1:5] = 1
    crop_mean = create_loss(spec, reduction="sum")(logits, small, valid)
    assert got.item() == pytest.approx(6.125 * crop_mean.item() * 16 / 4, rel=1e-5)
    dice = MultiBoxLoss(YolactConfig(mask_loss="dice", num_classes=1))(out, [target])["loss_mask"]
    assert dice.item() == pytest.approx(6.125 * create_loss("dice")(logits, small, valid).item(), rel=1e-5)


def test_masks_to_train_subsamples_and_rescales():
    """Three positives with identical masks: keeping one of them and scaling by 3/1 gives the
    same loss as keeping all three."""
    out = _outputs(num_anchors_on_gt=3)
    full = MultiBoxLoss(YolactConfig())(out, [_target()])
    one = MultiBoxLoss(YolactConfig(masks_to_train=1))(out, [_target()])
    assert full["num_positives"].item() == 3
    assert one["loss_mask"].item() == pytest.approx(full["loss_mask"].item(), rel=1e-5)


def test_class_and_box_terms_follow_their_definitions():
    out = _outputs()
    losses = MultiBoxLoss(YolactConfig(num_classes=2))(out, [_target()])
    conf_t = torch.tensor([[2, 0]])
    expected_c = create_loss("ohem_ce", reduction="sum", contract="class")(out.conf, conf_t)
    assert losses["loss_class"].item() == pytest.approx(expected_c.item(), rel=1e-5)
    # The positive anchor is the ground truth itself: its encoded target is zero.
    expected_b = 1.5 * F.smooth_l1_loss(out.loc[0, 0], torch.zeros(4), reduction="sum")
    assert losses["loss_box"].item() == pytest.approx(expected_b.item(), rel=1e-5)


@pytest.mark.parametrize("spec", ["giou", "diou", "ciou"])
def test_iou_box_losses_decode_boxes_first(spec):
    assert box_loss_acts_on(spec) == "boxes"
    out = _outputs()
    losses = MultiBoxLoss(YolactConfig(box_loss=spec))(out, [_target()])
    pred = decode(out.loc[0, :1], out.anchors[:1])
    expected = 1.5 * create_loss(spec, reduction="sum", contract="box")(pred, torch.tensor([GT_BOX]) / S)
    assert losses["loss_box"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_mixed_box_spec_is_rejected():
    with pytest.raises(ValueError, match="mixes"):
        box_loss_acts_on("smooth_l1 + giou")


def test_semantic_loss_hand_value():
    """Zero logits: BCE is log 2 at every pixel of every class map, normalised by H*W and B."""
    losses = MultiBoxLoss(YolactConfig(num_classes=2))(_outputs(), [_target()])
    assert losses["loss_semantic"].item() == pytest.approx(2 * math.log(2), rel=1e-5)


def test_crowd_instances_train_no_mask_and_no_semantic_target():
    out = _outputs()
    plain = MultiBoxLoss(YolactConfig())(out, [_target()])
    crowd = MultiBoxLoss(YolactConfig())(out, [_target(crowd=True)])
    assert crowd["loss_mask"].item() == pytest.approx(plain["loss_mask"].item())
    assert crowd["loss_semantic"].item() == pytest.approx(plain["loss_semantic"].item())
    assert crowd["num_positives"].item() == plain["num_positives"].item()


def test_image_without_instances_gives_zeros_that_backpropagate():
    out = _outputs()
    empty = {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.long),
        "masks": torch.zeros(0, S, S, dtype=torch.uint8),
    }
    losses = MultiBoxLoss(YolactConfig(num_classes=2))(out, [empty])
    assert losses["loss_box"].item() == 0 and losses["loss_mask"].item() == 0
    total = sum(v for k, v in losses.items() if k.startswith("loss_"))
    assert torch.isfinite(total)
    total.backward()
    assert out.coef.grad is not None and out.protos.grad is not None


def test_non_finite_outputs_give_non_finite_loss_not_an_exception():
    out = _outputs()
    with torch.no_grad():
        out.coef[0, 0, 0] = float("nan")
    losses = MultiBoxLoss(YolactConfig())(out, [_target()])
    assert not torch.isfinite(losses["loss_mask"])


def test_maskiou_loss_targets_the_iou_of_the_thresholded_crop():
    out = _outputs()
    net = MaskIoUNet(num_classes=2)
    cfg = YolactConfig(use_maskiou=True, discard_mask_area=0)
    losses = MultiBoxLoss(cfg)(out, [_target()], maskiou_net=net)
    logits, target, valid, _ = _expected_mask_inputs(out)
    probs = torch.sigmoid(logits) * valid
    binary = probs.gt(0.5).float()
    iou = (binary * target).sum() / (binary.sum() + target.sum() - (binary * target).sum())
    pred = net(probs[:, None])[0, 1]  # label 2 -> column 1
    expected = 25 * F.smooth_l1_loss(pred, iou, reduction="sum")
    assert losses["loss_maskiou"].item() == pytest.approx(expected.item(), rel=1e-5)
    # discard_mask_area above the target's area: no IoU sample, a zero that backpropagates.
    losses = MultiBoxLoss(YolactConfig(use_maskiou=True, discard_mask_area=10_000))(out, [_target()], net)
    assert losses["loss_maskiou"].item() == 0 and losses["loss_maskiou"].requires_grad


def test_hybrid_mask_loss_terms_are_logged_as_weighted_in_loss_mask():
    out = _outputs(num_anchors_on_gt=2)
    losses = MultiBoxLoss(YolactConfig(mask_loss="bce + 0.5*uncropped(mse)"))(out, [_target()])
    terms = {k: v for k, v in losses.items() if k.startswith("mask/")}
    assert set(terms) == {"mask/bce", "mask/0.5*uncropped(mse)"}
    assert not any(v.requires_grad for v in terms.values())
    assert sum(v.item() for v in terms.values()) == pytest.approx(losses["loss_mask"].item(), rel=1e-6)
    single = MultiBoxLoss(YolactConfig(mask_loss="bce"))(out, [_target()])
    assert not any(k.startswith("mask/") for k in single)
