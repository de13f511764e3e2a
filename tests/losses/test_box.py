"""Box losses against torch / torchvision, the berHu regression loss, and box input checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss

from losslab.losses import create_loss

REFS = {"giou": generalized_box_iou_loss, "diou": distance_box_iou_loss, "ciou": complete_box_iou_loss}


def _boxes(m=16, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def make():
        xy = 50 * torch.rand(m, 2, generator=gen, dtype=torch.float64)
        wh = 1 + 30 * torch.rand(m, 2, generator=gen, dtype=torch.float64)
        return torch.cat([xy, xy + wh], dim=1)

    return make().requires_grad_(True), make()


@pytest.mark.parametrize("name", sorted(REFS))
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_iou_losses_match_torchvision(name, reduction):
    pred, target = _boxes()
    target[:4] = pred[:4].detach() + 0.5  # some overlapping pairs, not only disjoint ones
    ours = create_loss(name, reduction=reduction, contract="box")(pred, target)
    ref = REFS[name](pred, target, reduction=reduction)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    if reduction == "none":
        assert ours.shape == (16,)
    g_ours = torch.autograd.grad(ours.sum(), pred)[0]
    g_ref = torch.autograd.grad(ref.sum(), pred)[0]
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["giou", "diou", "ciou"])
def test_iou_losses_zero_for_identical_boxes_and_gradcheck(name):
    pred, target = _boxes(m=4, seed=1)
    loss = create_loss(name, contract="box")
    assert loss(target, target).item() == pytest.approx(0.0, abs=1e-6)
    if name != "ciou":  # CIoU holds its trade-off alpha constant (torchvision): not a true gradient
        assert torch.autograd.gradcheck(lambda b: loss(b, target), (pred,))


@pytest.mark.parametrize("beta", [1.0, 0.5, 0.0])
def test_smooth_l1_sums_coordinates_per_box(beta):
    gen = torch.Generator().manual_seed(2)
    pred = torch.randn(7, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    per_box = create_loss(f"smooth_l1(beta={beta})", reduction="none", contract="box")(pred, target)
    ref = F.smooth_l1_loss(pred, target, reduction="none", beta=beta).sum(dim=1)
    torch.testing.assert_close(per_box, ref)
    mean = create_loss(f"smooth_l1(beta={beta})", contract="box")(pred, target)
    # "mean" is YOLACT's sum over all coordinates divided by the number of positives.
    torch.testing.assert_close(mean, F.smooth_l1_loss(pred, target, reduction="sum", beta=beta) / 7)
    with pytest.raises(ValueError, match="target contains NaN"):
        create_loss("smooth_l1", contract="box")(torch.zeros(3, 2), torch.full((3, 2), float("inf")))
    # Offsets may have any width D.
    assert create_loss("smooth_l1", contract="box")(torch.zeros(3, 2), torch.ones(3, 2)).item() == 1.0


@pytest.mark.parametrize("name", ["smooth_l1", "giou", "diou", "ciou"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_no_boxes_give_a_zero_that_backpropagates(name, reduction):
    pred = torch.zeros(0, 4, requires_grad=True)
    value = create_loss(name, reduction=reduction, contract="box")(pred, torch.zeros(0, 4))
    value.backward()
    assert value.item() == 0.0 and pred.grad.shape == (0, 4)


def test_box_input_errors():
    giou = create_loss("giou", contract="box")
    good = torch.tensor([[0.0, 0, 2, 2]])
    with pytest.raises(ValueError, match=r"\(M, 4\)"):
        giou(torch.zeros(2, 5), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="same shape"):
        giou(good, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="x2 < x1"):
        giou(torch.tensor([[2.0, 0, 0, 2]]), good)
    with pytest.raises(ValueError, match="NaN or inf"):
        giou(torch.tensor([[0.0, 0, float("nan"), 2]]), good)
    with pytest.raises(ValueError, match="float"):
        giou(good.long(), good.long())
    with pytest.raises(ValueError, match="contract"):
        create_loss("giou")  # the mask contract does not take box losses


def test_berhu_by_hand_and_contract():
    pred = torch.tensor([[[0.0, 0.1, 1.0, 0.0, 0.0]]], dtype=torch.float64, requires_grad=True)
    target = torch.zeros(1, 1, 5, dtype=torch.float64)
    value = create_loss("berhu", contract="regression")(pred, target)
    # c = 0.2: |0.1| -> 0.1, |1.0| -> (1 + 0.04) / 0.4 = 2.6; mean over 5 pixels.
    assert value.item() == pytest.approx((0.1 + 2.6) / 5)
    value.backward()
    assert torch.isfinite(pred.grad).all()
    assert create_loss("berhu", contract="regression")(target, target).item() == 0.0
    with pytest.raises(ValueError, match="regression"):
        create_loss("berhu")


def test_berhu_with_valid_and_gradcheck():
    gen = torch.Generator().manual_seed(3)
    pred = (3 * torch.randn(2, 6, 6, generator=gen, dtype=torch.float64)).requires_grad_(True)
    target = 3 * torch.rand(2, 6, 6, generator=gen, dtype=torch.float64)
    valid = (torch.rand(2, 6, 6, generator=gen) > 0.4).double()
    err = (pred - target).abs()
    c = 0.2 * (err * valid).amax(dim=(1, 2), keepdim=True)
    per_pixel = torch.where(err <= c, err, (err**2 + c**2) / (2 * c))
    expected = (per_pixel * valid).sum(dim=(1, 2)) / valid.sum(dim=(1, 2))
    loss = create_loss("berhu", reduction="none", contract="regression")
    torch.testing.assert_close(loss(pred, target, valid), expected)
    assert torch.autograd.gradcheck(lambda p: loss(p, target, valid), (pred,))


def test_depth_losses_exist_under_the_regression_contract():
    from losslab.losses import list_losses

    assert {"rmse", "l1", "ssim", "berhu"} <= set(list_losses(contract="regression"))
