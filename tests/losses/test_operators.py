"""The spec grammar's operators, ``log_cosh(TERM)`` and ``uncropped(TERM)``: values against their
definitions, what each refuses (with the position and the reason), and the equivalences they state."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from losslab.data.noise_spec import parse_label_noise
from losslab.losses import LossEquivalenceWarning, MaskInputs, create_loss, format_spec, parse_spec


def _inputs(seed: int = 0, n: int = 3, size: int = 10) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, size, size, generator=g) * 2
    target = (torch.rand(n, size, size, generator=g) > 0.6).float()
    valid = torch.zeros(n, size, size)
    valid[:, 2:7, 3:9] = 1
    area = torch.tensor([20.0, 25.0, 30.0])[:n]
    return logits, target, valid, area


def _log_cosh(x: torch.Tensor) -> torch.Tensor:
    return torch.log((torch.exp(x) + torch.exp(-x)) / 2.0)


def test_log_cosh_of_pixel_dice_is_the_per_pixel_formula_summed_over_the_crop_over_the_area():
    logits, target, valid, area = _inputs()
    p = torch.sigmoid(logits)
    ratio = 1 - (2 * p * target + 0.1) / (p + target + 0.1)
    expected = (_log_cosh(ratio) * valid).sum(dim=(1, 2)) / area
    got = create_loss("log_cosh(pixel_dice(smooth=0.1))", reduction="none")(logits, target, valid, area=area)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_log_cosh_of_pixel_dice_differs_from_log_cosh_of_the_region_dice():
    logits, target, valid, area = _inputs(seed=1)
    per_pixel = create_loss("log_cosh(pixel_dice(smooth=0.1))")(logits, target, valid, area=area)
    region = create_loss("log_cosh_dice")(logits, target, valid, area=area)
    assert abs(per_pixel.item() - region.item()) > 0.05  # two different losses, not a rounding


def test_log_cosh_of_bce_equals_log_cosh_bce_and_says_so():
    logits, target, valid, _ = _inputs(seed=2)
    with pytest.warns(LossEquivalenceWarning, match="same loss as 'log_cosh_bce'"):
        wrapped = create_loss("log_cosh(bce)")
    torch.testing.assert_close(wrapped(logits, target, valid), create_loss("log_cosh_bce")(logits, target, valid))


def test_log_cosh_under_the_regression_contract_acts_on_the_raw_error():
    g = torch.Generator().manual_seed(3)
    pred, depth = torch.randn(2, 6, 6, generator=g) * 3, torch.randn(2, 6, 6, generator=g) * 3
    got = create_loss("log_cosh(l1)", contract="regression", reduction="none")(pred, depth)
    torch.testing.assert_close(got, _log_cosh((pred - depth).abs()).mean(dim=(1, 2)))


@pytest.mark.parametrize(
    ("spec", "pos", "why"),
    [
        ("log_cosh(dice)", 9, "log_cosh_dice is log-cosh of the region Dice"),
        ("bce + log_cosh(rmse)", 15, "rmse has none"),
        ("log_cosh(uncropped(mse))", 9, "value per pixel"),
        ("log_cosh", 0, "wraps a loss"),
        ("uncropped(delta=1)", 0, "wraps a loss"),
        ("bce(mse)", 4, "takes parameters"),
        ("uncropped(uncropped(mse))", 10, "already uncropped"),
        ("uncropped(0.5*mse)", 10, "put it outside"),
        ("uncropped(msee)", 10, "unknown loss 'msee'"),
    ],
)
def test_misuse_is_refused_with_the_position_and_the_reason(spec, pos, why):
    with pytest.raises(ValueError, match=why) as info:
        create_loss(spec)
    assert info.value.pos == pos


def test_operators_take_no_box_or_class_losses():
    with pytest.raises(ValueError, match="wraps mask losses"):
        create_loss("uncropped(giou)", contract="box")


def test_uncropped_ignores_the_crop_and_the_area():
    logits, target, valid, area = _inputs(seed=4)
    got = create_loss("uncropped(mse)", reduction="none")(logits, target, valid, area=area)
    expected = ((torch.sigmoid(logits) - target) ** 2).sum(dim=(1, 2)) / (10 * 10)
    torch.testing.assert_close(got, expected)


def test_uncropped_region_loss_is_the_region_over_the_whole_mask():
    logits, target, valid, _ = _inputs(seed=5)
    got = create_loss("uncropped(dice)", reduction="none")(logits, target, valid)
    torch.testing.assert_close(got, create_loss("dice", reduction="none")(logits, target))
    assert not torch.allclose(got, create_loss("dice", reduction="none")(logits, target, valid))


def test_hybrid_with_an_uncropped_term_adds_the_two_domains():
    """``bce + 0.5*uncropped(mse)``: BCE in the crop over the area plus half the MSE over the whole map."""
    logits, target, valid, area = _inputs(seed=6)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    mse = (torch.sigmoid(logits) - target) ** 2
    expected = (bce * valid).sum(dim=(1, 2)) / area + 0.5 * mse.mean(dim=(1, 2))
    loss = create_loss("bce + 0.5*uncropped(mse)", reduction="none")
    torch.testing.assert_close(loss(logits, target, valid, area=area), expected)
    logits.requires_grad_()
    loss(logits, target, valid, area=area).sum().backward()
    outside = valid == 0
    assert logits.grad[outside].abs().sum() > 0  # the uncropped term trains pixels outside the crop


def test_a_model_without_a_crop_gets_the_term_itself_and_a_warning():
    logits, target, valid, _ = _inputs(seed=7)
    with pytest.warns(LossEquivalenceWarning, match="no crop"):
        loss = create_loss("bce + uncropped(mse)", crop=False)
    torch.testing.assert_close(loss(logits, target, valid), create_loss("bce + mse")(logits, target, valid))


def test_uncropped_view_shares_the_sigmoid():
    logits, target, valid, area = _inputs()
    x = MaskInputs(logits, target, valid, area=area)
    p = x.p
    assert x.uncropped.p is p
    assert x.uncropped.valid is None and x.uncropped.area is None
    whole = MaskInputs(logits, target, None)
    assert whole.uncropped is whole


@pytest.mark.parametrize(
    "spec",
    ["bce + 0.5*uncropped(mse)", "log_cosh(pixel_dice(smooth=0.1))", "2*uncropped(log_cosh(huber(delta=0.5)))"],
)
def test_operator_specs_print_back_as_written(spec):
    assert format_spec(parse_spec(spec)) == spec
    assert create_loss(spec).spec == spec


def test_the_same_operator_term_twice_is_named_as_such():
    with pytest.warns(LossEquivalenceWarning, match="names the same loss twice"):
        create_loss("uncropped(mse) + 2*uncropped(mse)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_loss("mse + uncropped(mse)")  # two domains: two losses


def test_hybrid_logs_each_operator_term():
    logits, target, valid, _ = _inputs(seed=8)
    terms = create_loss("bce + 0.5*uncropped(mse)").forward_terms(logits, target, valid)
    assert set(terms) == {"bce", "0.5*uncropped(mse)"}
    assert math.isfinite(terms["0.5*uncropped(mse)"].item())


def test_label_noise_refuses_a_nested_term():
    with pytest.raises(ValueError, match="not another term") as info:
        parse_label_noise("drop(boundary(px=1))")
    assert info.value.pos == 5
