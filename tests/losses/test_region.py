"""Region losses against MONAI's DiceLoss / TverskyLoss (float64, tight tolerance), hand-computed
values, the Tversky = Dice identity, and the survey's per-pixel Dice."""

from __future__ import annotations

import math

import pytest
import torch
from monai.losses import DiceLoss as MonaiDice
from monai.losses import TverskyLoss as MonaiTversky

from losslab.losses import create_loss

CASES = [(soft, valid) for soft in (False, True) for valid in (False, True)]
CASE_IDS = [f"{'soft' if s else 'binary'}-{'valid' if v else 'all'}" for s, v in CASES]


def _monai(loss):
    # MONAI wants (B, C, spatial...); one instance's valid pixels become a (1, 1, K) volume. Its
    # soft_label=False path is the textbook Σp·g, Σp, Σg formula that losslab uses for soft targets too.
    def ref(z, g):
        return loss(z.view(1, 1, -1), g.view(1, 1, -1)).reshape(())

    return ref


def _dice(s, squared=False):
    return _monai(MonaiDice(sigmoid=True, smooth_nr=s, smooth_dr=s, squared_pred=squared, reduction="none"))


def _tversky(a, b, s):
    return _monai(MonaiTversky(sigmoid=True, alpha=a, beta=b, smooth_nr=s, smooth_dr=s, reduction="none"))


REFERENCES = {
    "dice": _dice(1.0),
    "dice(smooth=0.01)": _dice(0.01),
    "dice(squared=true)": _dice(1.0, squared=True),
    "dice(smooth=3, squared=true)": _dice(3.0, squared=True),
    # MONAI's Jaccard is 1 - (2·TP + s_nr) / (2·(Σp + Σg - TP) + s_dr): ours with s is MONAI's with 2s.
    "jaccard": _monai(MonaiDice(sigmoid=True, jaccard=True, smooth_nr=2.0, smooth_dr=2.0, reduction="none")),
    "jaccard(smooth=0.5)": _monai(
        MonaiDice(sigmoid=True, jaccard=True, smooth_nr=1.0, smooth_dr=1.0, reduction="none")
    ),
    "tversky": _tversky(0.5, 0.5, 1.0),
    "tversky(alpha=0.3, beta=0.7)": _tversky(0.3, 0.7, 1.0),
    "tversky(alpha=0.9, beta=0.1, smooth=0.2)": _tversky(0.9, 0.1, 0.2),
    "focal_tversky": lambda z, g: _tversky(0.5, 0.5, 1.0)(z, g) ** 0.75,
    "focal_tversky(alpha=0.3, beta=0.7, gamma=2)": lambda z, g: _tversky(0.3, 0.7, 1.0)(z, g) ** 2,
    "log_cosh_dice": lambda z, g: torch.log(torch.cosh(_dice(1.0)(z, g))),
    "log_cosh_dice(squared=true)": lambda z, g: torch.log(torch.cosh(_dice(1.0, squared=True)(z, g))),
    # The YOLACT++ survey's dice_loss: (2·p·g + 0.1) / (p + g + 0.1) pixel by pixel, then averaged.
    "pixel_dice": lambda z, g: (1 - (2 * z.sigmoid() * g + 0.1) / (z.sigmoid() + g + 0.1)).mean(),
}


@pytest.mark.parametrize(("soft", "valid"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("spec", list(REFERENCES))
def test_matches_reference(kit, spec, soft, valid):
    logits, target, mask = kit.inputs(seed=len(spec), soft=soft, valid=valid)
    kit.assert_matches_reference(kit.create(spec), REFERENCES[spec], logits, target, mask)


# --- hand-computed values: a confident [[1, 1, 1, 1]] against the target [[1, 1, 0, 0]] ---

ONES = torch.full((1, 1, 4), 40.0, dtype=torch.float64)  # sigmoid(40) == 1.0 in float64
HALF = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]], dtype=torch.float64)

HAND = [
    ("dice(smooth=0)", 1 - 2 * 2 / (4 + 2)),  # smp's [[1,1,1,1]] vs [[1,1,0,0]]: 1/3
    ("dice", 1 - (4 + 1) / (6 + 1)),
    ("dice(smooth=0, squared=true)", 1 - 4 / (4 + 2)),  # 0/1 values: squares change nothing
    ("jaccard(smooth=0)", 0.5),  # IoU 2/4
    ("jaccard", 1 - 3 / 5),
    ("tversky(alpha=0.3, beta=0.7, smooth=0)", 1 - 2 / (2 + 0.3 * 2)),  # FP = 2, FN = 0
    ("focal_tversky(alpha=0.3, beta=0.7, gamma=0.5, smooth=0)", math.sqrt(1 - 2 / 2.6)),
    ("log_cosh_dice(smooth=0)", math.log(math.cosh(1 / 3))),
    ("pixel_dice", (0 + 0 + 2 * (1 - 0.1 / 1.1)) / 4),  # right pixels 0, wrong ones 1 - s/(1 + s)
]


@pytest.mark.parametrize(("spec", "expected"), HAND, ids=[s for s, _ in HAND])
def test_hand_computed(kit, spec, expected):
    assert kit.create(spec)(ONES, HALF).item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_dice_is_per_instance_not_per_batch(kit):
    # Two instances: one perfect, one all wrong. Per instance the mean is (0 + 1) / 2; a batch Dice
    # (the whole batch as one region) would give a different number.
    logits = torch.stack([torch.full((2, 2), 40.0), torch.full((2, 2), -40.0)]).double()
    target = torch.stack([torch.ones(2, 2), torch.ones(2, 2)]).double()
    per = create_loss("dice(smooth=0)", reduction="none")(logits, target)
    torch.testing.assert_close(per, torch.tensor([0.0, 1.0], dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize(("soft", "valid"), CASES, ids=CASE_IDS)
def test_tversky_half_half_is_dice_with_double_smooth(kit, soft, valid):
    logits, target, mask = kit.inputs(seed=5, soft=soft, valid=valid)
    t = kit.create("tversky(alpha=0.5, beta=0.5, smooth=0.7)", reduction="none")(logits, target, mask)
    d = create_loss("dice(smooth=1.4)", reduction="none")(logits, target, mask)
    torch.testing.assert_close(t, d, **kit.tight)


@pytest.mark.parametrize("spec", ["dice", "dice(squared=true)", "jaccard", "tversky(alpha=0.2, beta=0.8)"])
def test_invalid_pixels_do_not_matter(kit, spec):
    logits, target, mask = kit.inputs(seed=9, soft=True, valid=True)
    loss = kit.create(spec, reduction="none")
    scrambled = torch.where(mask.bool(), logits, torch.randn_like(logits) * 50)
    noisy_target = torch.where(mask.bool(), target, torch.rand_like(target))
    torch.testing.assert_close(loss(logits, target, mask), loss(scrambled, noisy_target, mask), **kit.tight)


@pytest.mark.parametrize("name", ["dice", "jaccard", "tversky", "focal_tversky", "log_cosh_dice"])
def test_empty_target_and_empty_prediction_is_zero(kit, name):
    logits = torch.full((2, 3, 3), -40.0, dtype=torch.float64)
    assert kit.create(name)(logits, torch.zeros_like(logits)).item() == pytest.approx(0.0, abs=1e-12)


def test_instance_without_valid_pixels_counts_zero(kit):
    logits, target, _ = kit.inputs(seed=2, n=2)
    mask = torch.ones_like(target)
    mask[1] = 0
    for name in ("dice", "jaccard", "pixel_dice", "bce"):
        per = kit.create(name, reduction="none")(logits, target, mask)
        assert per[1].item() == pytest.approx(0.0, abs=1e-12)
        assert per[0].item() > 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("dice(smooth=-1)", "smooth"),
        ("dice(squared=1)", "squared"),
        ("tversky(alpha=-0.1)", "alpha"),
        ("focal_tversky(gamma=0)", "gamma"),
        ("pixel_dice(smooth=0)", "smooth"),
    ],
)
def test_bad_parameter_values(spec, message):
    with pytest.raises(ValueError, match=message):
        create_loss(spec)
