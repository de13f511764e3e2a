"""Pixel losses against torch / torchvision references (float64, tight tolerance), hand-computed
values, the U-Net border weights, and the regression contract."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt
from torchvision.ops import sigmoid_focal_loss

from losslab.losses import LossEquivalenceWarning, create_loss
from losslab.losses._functional import log_cosh
from losslab.losses.pixel import unet_border_weights

CASES = [(soft, valid) for soft in (False, True) for valid in (False, True)]
CASE_IDS = [f"{'soft' if s else 'binary'}-{'valid' if v else 'all'}" for s, v in CASES]


def _smoothed(g, s):
    return g * (1 - s) + s / 2


REFERENCES = {
    "bce": lambda z, g: F.binary_cross_entropy_with_logits(z, g),
    "mse": lambda z, g: F.mse_loss(torch.sigmoid(z), g),
    "l1": lambda z, g: F.l1_loss(torch.sigmoid(z), g),
    "rmse": lambda z, g: F.mse_loss(torch.sigmoid(z), g).sqrt(),
    "huber": lambda z, g: F.huber_loss(torch.sigmoid(z), g, delta=1.0),
    "huber(delta=0.3)": lambda z, g: F.huber_loss(torch.sigmoid(z), g, delta=0.3),
    "log_cosh_bce": lambda z, g: torch.log(
        torch.cosh(F.binary_cross_entropy_with_logits(z, g, reduction="none"))
    ).mean(),
    "label_smoothing_bce": lambda z, g: F.binary_cross_entropy_with_logits(z, _smoothed(g, 0.05)),
    "label_smoothing_bce(smoothing=0.3)": lambda z, g: F.binary_cross_entropy_with_logits(z, _smoothed(g, 0.3)),
    "focal": lambda z, g: sigmoid_focal_loss(z, g, alpha=0.25, gamma=2.0, reduction="mean"),
    "focal(alpha=-1, gamma=1.5)": lambda z, g: sigmoid_focal_loss(z, g, alpha=-1, gamma=1.5, reduction="mean"),
    "focal(alpha=0.8, gamma=0)": lambda z, g: sigmoid_focal_loss(z, g, alpha=0.8, gamma=0.0, reduction="mean"),
    "weighted_bce(pos_weight=3)": lambda z, g: F.binary_cross_entropy_with_logits(
        z, g, pos_weight=torch.tensor(3.0, dtype=z.dtype)
    ),
    "weighted_bce(pos_weight=0.2)": lambda z, g: F.binary_cross_entropy_with_logits(
        z, g, pos_weight=torch.tensor(0.2, dtype=z.dtype)
    ),
}


@pytest.mark.parametrize(("soft", "valid"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("spec", list(REFERENCES))
def test_matches_reference(kit, spec, soft, valid):
    logits, target, mask = kit.inputs(seed=len(spec), soft=soft, valid=valid)
    kit.assert_matches_reference(kit.create(spec), REFERENCES[spec], logits, target, mask)


def _scipy_border_weights(target: torch.Tensor, w0: float, sigma: float) -> torch.Tensor:
    # An independent weight map: scipy's exact distance transform in float64 instead of OpenCV's.
    out = []
    for g in (target > 0.5).numpy():
        if not g.any() or g.all():
            out.append(np.ones(g.shape))
            continue
        d = distance_transform_edt(~g)
        out.append(np.where(g, 1.0, 1.0 + w0 * np.exp(-((2 * d) ** 2) / (2 * sigma**2))))
    return torch.from_numpy(np.stack(out))


def test_border_weights_by_hand():
    # One object pixel at the left end: background distances 1, 2, 3, 4.
    target = torch.tensor([[[1.0, 0, 0, 0, 0]]], dtype=torch.float64)
    w = unet_border_weights(target, w0=10, sigma=5)
    expected = [1.0] + [1 + 10 * math.exp(-((2 * d) ** 2) / 50) for d in (1, 2, 3, 4)]
    torch.testing.assert_close(w[0, 0], torch.tensor(expected, dtype=torch.float64))


def test_border_weights_edge_cases():
    empty, full = torch.zeros(1, 4, 4), torch.ones(1, 4, 4)
    assert torch.equal(unet_border_weights(empty), torch.ones(1, 4, 4))
    assert torch.equal(unet_border_weights(full), torch.ones(1, 4, 4))


@pytest.mark.parametrize(("soft", "valid"), CASES, ids=CASE_IDS)
def test_border_bce_matches_scipy_weighted_bce(kit, soft, valid):
    logits, target, mask = kit.inputs(seed=11, h=9, w=8, soft=soft, valid=valid)
    weights = _scipy_border_weights(target, w0=4.0, sigma=2.5)
    # The weights come from the full target; the reference then sees the valid pixels only.
    packed = torch.stack([target, weights], dim=-1)
    ref_loss = kit.create("border_bce(w0=4, sigma=2.5)")
    ours_in = logits.clone().requires_grad_(True)
    ref_in = logits.clone().requires_grad_(True)
    ref_loss.reduction = "none"
    ours = ref_loss(ours_in, target, mask)
    theirs = kit.reference_per_instance(
        lambda z, gw: (gw[:, 1] * F.binary_cross_entropy_with_logits(z, gw[:, 0], reduction="none")).mean(),
        ref_in,
        packed,
        mask,
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-9)  # OpenCV's distances are float32
    ours.sum().backward()
    theirs.sum().backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad, rtol=1e-6, atol=1e-9)


def test_border_bce_weights_background_next_to_object_only():
    # Predicting 0 everywhere: only the object pixel is wrong, so border weights do not change it;
    # predicting 1 everywhere: the wrong background pixels are weighted, more so near the object.
    target = torch.tensor([[[1.0, 0, 0, 0, 0]]], dtype=torch.float64)
    low, high = torch.full_like(target, -20.0), torch.full_like(target, 20.0)
    bce, border = create_loss("bce"), create_loss("border_bce")
    torch.testing.assert_close(border(low, target), bce(low, target), rtol=1e-6, atol=1e-12)
    assert border(high, target) > 5 * bce(high, target)


# --- hand-computed values on [[1, 1, 1, 1]] (a confident all-ones prediction) vs [[1, 1, 0, 0]] ---

ONES = torch.full((1, 1, 4), 40.0, dtype=torch.float64)  # sigmoid(40) == 1.0 in float64
HALF = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]], dtype=torch.float64)
ZERO_LOGITS = torch.zeros(1, 1, 4, dtype=torch.float64)

HAND = [
    ("mse", ONES, 0.5),
    ("l1", ONES, 0.5),
    ("rmse", ONES, math.sqrt(0.5)),
    ("huber(delta=0.5)", ONES, 0.5 * 0.5 * (1 - 0.25)),  # two errors of 1: delta·(|e| − delta/2)
    ("huber(delta=0.5)", ZERO_LOGITS, 0.5 * 0.25),  # every error 0.5 = delta: still quadratic
    ("bce", ONES, 20.0),  # two pixels of -log(1 - sigmoid(40)) = 40 (softplus(40))
    ("focal", ONES, 0.75 * 40 * 2 / 4),  # alpha_t = 0.75 on negatives, (1 - p_t) = 1
    ("weighted_bce(pos_weight=3)", ZERO_LOGITS, (3 + 3 + 1 + 1) / 4 * math.log(2)),
    ("label_smoothing_bce(smoothing=0.2)", ZERO_LOGITS, math.log(2)),  # any target: log 2 at p = 0.5
    ("log_cosh_bce", ONES, (40 - math.log(2)) / 2),  # log(cosh(40)) = 40 - log 2 + e^-80
    ("log_cosh_bce", ZERO_LOGITS, math.log(math.cosh(math.log(2)))),
]


@pytest.mark.parametrize(("spec", "logits", "expected"), HAND, ids=[f"{s}-{i}" for i, (s, _, _) in enumerate(HAND)])
def test_hand_computed(kit, spec, logits, expected):
    value = kit.create(spec)(logits, HALF)
    assert value.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_log_cosh_is_stable_where_cosh_overflows():
    x = torch.tensor([-1000.0, -30.0, 0.0, 1e-8, 30.0, 1000.0], dtype=torch.float64, requires_grad=True)
    y = log_cosh(x)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y[1:-1], torch.log(torch.cosh(x[1:-1].detach())), rtol=1e-12, atol=1e-15)
    assert y[-1].item() == pytest.approx(1000 - math.log(2))
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.tanh(x.detach()), rtol=1e-12, atol=1e-15)


def test_log_cosh_bce_finite_at_huge_bce():
    logits = torch.tensor([[[-1000.0, 1000.0]]], requires_grad=True)
    target = torch.tensor([[[1.0, 0.0]]])
    value = create_loss("log_cosh_bce")(logits, target)
    value.backward()
    assert value.item() == pytest.approx(1000 - math.log(2), rel=1e-6)
    assert torch.isfinite(logits.grad).all()


def test_rmse_gradient_is_zero_not_nan_at_zero_error():
    target = torch.tensor([[[1.0, 0.0]]], dtype=torch.float64)
    pred = target.clone().requires_grad_(True)
    value = create_loss("rmse", contract="regression")(pred, target)
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(pred.grad, torch.zeros_like(pred))


# --- regression contract: raw predictions, any real target ---

RAW_REFERENCES = {
    "mse": lambda y, t: F.mse_loss(y, t),
    "l1": lambda y, t: F.l1_loss(y, t),
    "rmse": lambda y, t: F.mse_loss(y, t).sqrt(),
    "huber": lambda y, t: F.huber_loss(y, t, delta=1.0),
    "huber(delta=2)": lambda y, t: F.huber_loss(y, t, delta=2.0),
}


@pytest.mark.parametrize("valid", [False, True])
@pytest.mark.parametrize("spec", list(RAW_REFERENCES))
def test_regression_contract_on_raw_values(kit, spec, valid):
    pred, _, mask = kit.inputs(seed=3, valid=valid, scale=4.0)
    depth = torch.rand_like(pred) * 10 - 2  # metres, outside [0, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error", LossEquivalenceWarning)  # no 0.5*mse claim on raw values
        loss = create_loss(spec, contract="regression")
    kit.assert_matches_reference(loss, RAW_REFERENCES[spec], pred, depth, mask)


@pytest.mark.parametrize("name", ["bce", "focal", "border_bce", "dice", "log_cosh_bce"])
def test_probability_losses_refuse_the_regression_contract(name):
    with pytest.raises(ValueError, match="regression"):
        create_loss(name, contract="regression")


def test_mask_contract_still_checks_target_range_for_regression_losses():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        create_loss("mse")(torch.zeros(1, 2, 2), torch.full((1, 2, 2), 3.0))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("huber(delta=0)", "delta"),
        ("huber(delta=-1)", "delta"),
        ("focal(alpha=1.5)", "alpha"),
        ("focal(gamma=-1)", "gamma"),
        ("label_smoothing_bce(smoothing=2)", "smoothing"),
        ("weighted_bce(pos_weight=0)", "pos_weight"),
        ("border_bce(sigma=0)", "sigma"),
        ("border_bce(w0=-1)", "w0"),
        ("huber(delta=abc)", "number"),
    ],
)
def test_bad_parameter_values(spec, message):
    with pytest.raises(ValueError, match=message):
        create_loss(spec)
