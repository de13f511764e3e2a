"""The optional ``area`` divisor: pixel losses divide their sum over the valid pixels by it;
region and structural losses ignore it."""

from __future__ import annotations

import pytest
import torch

from losslab.losses import create_loss, get_loss_info, list_losses


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 12, 12, generator=g, dtype=torch.float64)
    target = (torch.rand(3, 12, 12, generator=g) > 0.5).double()
    valid = torch.zeros(3, 12, 12, dtype=torch.float64)
    valid[0, 2:10, 3:9] = 1
    valid[1, :5, :5] = 1
    valid[2] = 1
    return logits, target, valid


MASK_LOSSES = [n for n in list_losses() if "mask" in get_loss_info(n).contracts]


@pytest.mark.parametrize("name", MASK_LOSSES)
@pytest.mark.filterwarnings("ignore::losslab.losses.LossEquivalenceWarning")  # huber, tversky: by design
def test_area_rescales_pixel_losses_and_leaves_the_others(name):
    logits, target, valid = _inputs()
    loss = create_loss(name, reduction="none")
    count = valid.sum(dim=(1, 2))
    area = torch.tensor([20.0, 9.0, 144.0], dtype=torch.float64)
    plain, divided = loss(logits, target, valid), loss(logits, target, valid, area=area)
    if name == "rmse":  # the root of the divided sum
        expected = plain * (count / area).sqrt()
    elif get_loss_info(name).kind == "pixel" or name == "boundary":
        expected = plain * count / area
    else:
        expected = plain
    assert torch.allclose(divided, expected, rtol=1e-10, atol=1e-12)


def test_area_in_a_hybrid_applies_per_term():
    logits, target, valid = _inputs(1)
    area = torch.tensor([10.0, 4.0, 100.0], dtype=torch.float64)
    hybrid = create_loss("0.5*mse + dice", reduction="none")(logits, target, valid, area=area)
    mse = create_loss("mse", reduction="none")(logits, target, valid, area=area)
    dice = create_loss("dice", reduction="none")(logits, target, valid)
    assert torch.allclose(hybrid, 0.5 * mse + dice)


@pytest.mark.parametrize("bad", [torch.ones(2), torch.ones(3, 1), 3.0])
def test_an_area_of_the_wrong_shape_is_refused(bad):
    logits, target, valid = _inputs()
    with pytest.raises(ValueError, match=r"area must be a tensor of shape \(3,\)"):
        create_loss("bce")(logits, target, valid, area=bad)


@pytest.mark.parametrize("name", ["dice", "lovasz_hinge", "bce", "mse"])
def test_half_precision_logits_give_a_float32_loss(name):
    logits, target, valid = _inputs()
    value = create_loss(name)(logits.to(torch.bfloat16), target.float(), valid.float())
    assert value.dtype == torch.float32
