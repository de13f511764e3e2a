"""clDice, Dice + clDice, the Hausdorff DT loss and the Generalized Dice loss against MONAI: values and
gradients w.r.t. the logits, per instance and reduced, on several shapes (thin, square, 4-D input,
empty and full targets, soft targets), with and without ``valid``; parameter refusal; the catalogue.

What losslab's per-instance value is in MONAI's terms (the references below):

- ``cldice``: ``SoftclDiceLoss(iter_, smooth_nr=smooth, smooth_dr=smooth, smooth=eps, sigmoid=True,
  reduction="none")`` on ``(N, 1, H, W)`` (MONAI gives one value per batch item).
- ``dice_cldice``: ``SoftDiceclDiceLoss(iter_, alpha, smooth_nr=smooth, smooth_dr=smooth, smooth=eps,
  sigmoid=True)`` on each instance as a ``(1, 1, H, W)`` batch (its ``"none"`` broadcasts (B,1,1,1)
  against (B,), so per instance it is taken one item at a time; its ``"mean"`` on the batch is ours).
- ``hausdorff_dt``: ``HausdorffDTLoss(alpha, sigmoid=True, reduction="none")`` on ``(N, 1, H, W)``.
- ``generalized_dice``: ``GeneralizedDiceLoss(w_type, smooth_nr=smooth, smooth_dr=smooth,
  reduction="none")`` on the two channels ``[1 − p, p]`` against ``[1 − g, g]``.

With ``valid``, all four zero the invalid pixels of ``p`` and ``g`` (and of ``1 − p``, ``1 − g``) before
anything else: MONAI gets those zeroed tensors (``sigmoid=False``); the Hausdorff value, a mean over
the valid pixels, is MONAI's mean over all pixels times ``H·W / count``.

Tolerances: clDice and Dice + clDice run the same pooling ops as MONAI and agree to rounding
(float64: rtol 1e-10, atol 1e-12). MONAI casts the Hausdorff distance maps and the Generalized Dice
class weights to float32, so in float64 those two agree to float32 rounding (rtol 1e-6, atol 1e-9).
Float32 inputs: rtol 1e-5, atol 1e-6 for all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from monai.losses import GeneralizedDiceLoss as MonaiGDL
from monai.losses import HausdorffDTLoss as MonaiHausdorff
from monai.losses import SoftclDiceLoss as MonaiClDice
from monai.losses import SoftDiceclDiceLoss as MonaiDiceClDice
from torch import Tensor

from losslab.losses import SpecError, create_loss, list_losses
from losslab.losses.distance import distance_field

TIGHT = {"rtol": 1e-10, "atol": 1e-12}
F32_MAPS = {"rtol": 1e-6, "atol": 1e-9}  # float64 against MONAI's float32 distance maps / class weights
FLOAT32 = {"rtol": 1e-5, "atol": 1e-6}

NEW_LOSSES = ("cldice", "dice_cldice", "hausdorff_dt", "generalized_dice")

# --- inputs -----------------------------------------------------------------------------------------


def _target(kind: str, n: int, h: int, w: int, gen: torch.Generator) -> Tensor:
    if kind == "empty":
        return torch.zeros(n, h, w)
    if kind == "full":
        return torch.ones(n, h, w)
    if kind == "soft":
        return torch.rand(n, h, w, generator=gen)
    if kind == "vessels":  # thin lines, 1-2 pixels wide, the structures clDice is for
        g = torch.zeros(n, h, w)
        for i in range(n):
            r, c = int(torch.randint(1, h - 1, (1,), generator=gen)), int(torch.randint(1, w - 1, (1,), generator=gen))
            g[i, r, :] = 1.0
            g[i, :, c : c + 1 + i % 2] = 1.0
            for k in range(min(h, w)):  # a diagonal
                g[i, k, (k + i) % w] = 1.0
        return g
    # blobs: smoothed noise, thresholded, with at least one object and one background pixel
    noise = F.avg_pool2d(torch.rand(n, 1, h, w, generator=gen), 3, 1, 1, count_include_pad=False)[:, 0]
    g = (noise > noise.flatten(1).median(dim=1).values.view(n, 1, 1)).float()
    g[:, 0, 0], g[:, -1, -1] = 1.0, 0.0
    return g


# (id, n, h, w, target kind, 4-D input)
SHAPES = [
    ("blobs-3x12x10", 3, 12, 10, "blobs", False),
    ("vessels-2x16x16-4d", 2, 16, 16, "vessels", True),
    ("soft-2x9x11", 2, 9, 11, "soft", False),
    ("thin-2x1x9", 2, 1, 9, "blobs", False),
    ("empty-2x8x8", 2, 8, 8, "empty", False),
    ("full-2x8x8-4d", 2, 8, 8, "full", True),
]
SHAPE_IDS = [s[0] for s in SHAPES]


def _inputs(shape: tuple, valid: bool, dtype: torch.dtype, seed: int = 0) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(logits, target, valid)`` of shape ``(N, H, W)`` or ``(N, 1, H, W)``."""
    _, n, h, w, kind, four_d = shape
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, h, w, generator=gen) * 3.0
    target = _target(kind, n, h, w, gen)
    mask = None
    if valid:
        mask = (torch.rand(n, h, w, generator=gen) > 0.25).float()
        mask[:, 0, 0] = 1.0
    out = [t if t is None else t.to(dtype) for t in (logits, target, mask)]
    if four_d:
        out = [t if t is None else t[:, None] for t in out]
    return out[0], out[1], out[2]


# --- MONAI references: per-instance values (N,) of logits z, targets g, valid v; all (N, H, W) ---------


def _probs(z: Tensor, g: Tensor, v: Tensor | None) -> tuple[Tensor, Tensor]:
    p = torch.sigmoid(z)
    return (p, g) if v is None else (p * v, g * v)


def _cldice(iter_: int = 3, smooth: float = 1.0, eps: float = 0.0) -> Callable:
    # losslab's eps = 0 is MONAI's smooth -> 0 (MONAI requires > 0; 1e-300 vanishes next to Tprec + Tsens).
    def ref(z, g, v):
        monai = MonaiClDice(iter_=iter_, smooth_nr=smooth, smooth_dr=smooth, smooth=eps or 1e-300, reduction="none")
        p, g = _probs(z, g, v)
        return monai(p[:, None], g[:, None]).reshape(-1)

    return ref


def _dice_cldice(iter_: int = 3, alpha: float = 0.5, smooth: float = 1.0, eps: float = 0.0) -> Callable:
    def ref(z, g, v):
        monai = MonaiDiceClDice(iter_=iter_, alpha=alpha, smooth_nr=smooth, smooth_dr=smooth, smooth=eps or 1e-300)
        p, g = _probs(z, g, v)
        return torch.stack([monai(p[i : i + 1, None], g[i : i + 1, None]) for i in range(p.shape[0])])

    return ref


def _hausdorff(alpha: float = 2.0) -> Callable:
    def ref(z, g, v):
        monai = MonaiHausdorff(alpha=alpha, reduction="none")
        p, g = _probs(z, g, v)
        value = monai(p[:, None], g[:, None]).reshape(-1)
        if v is None:
            return value
        return value * (z.shape[-1] * z.shape[-2]) / v.sum(dim=(1, 2)).clamp_min(1.0)

    return ref


def _gdl(w_type: str = "square", smooth: float = 1e-5) -> Callable:
    def ref(z, g, v):
        monai = MonaiGDL(w_type=w_type, smooth_nr=smooth, smooth_dr=smooth, reduction="none")
        p = torch.sigmoid(z)
        one = torch.ones_like(p) if v is None else v
        two_p = torch.stack([(1 - p) * one, p * one], dim=1)
        two_g = torch.stack([(1 - g) * one, g * one], dim=1)
        return monai(two_p, two_g).reshape(-1)

    return ref


REFERENCES: dict[str, tuple[Callable, dict]] = {
    "cldice": (_cldice(), TIGHT),
    "cldice(eps=0.0001)": (_cldice(eps=1e-4), TIGHT),  # MONAI's defaults
    "cldice(iter_=0)": (_cldice(iter_=0), TIGHT),
    "cldice(iter_=5, smooth=0.5)": (_cldice(iter_=5, smooth=0.5), TIGHT),
    "dice_cldice": (_dice_cldice(), TIGHT),
    "dice_cldice(alpha=0.3, iter_=2, eps=0.0001)": (_dice_cldice(iter_=2, alpha=0.3, eps=1e-4), TIGHT),
    "dice_cldice(alpha=0.9, smooth=0.2)": (_dice_cldice(alpha=0.9, smooth=0.2), TIGHT),
    "hausdorff_dt": (_hausdorff(), F32_MAPS),
    "hausdorff_dt(alpha=1)": (_hausdorff(1.0), F32_MAPS),
    "hausdorff_dt(alpha=3.5)": (_hausdorff(3.5), F32_MAPS),
    "generalized_dice": (_gdl(), F32_MAPS),
    "generalized_dice(w_type=simple)": (_gdl("simple"), F32_MAPS),
    "generalized_dice(w_type=uniform, smooth=0.5)": (_gdl("uniform", 0.5), F32_MAPS),
    "generalized_dice(smooth=0)": (_gdl(smooth=0.0), F32_MAPS),
}


def _squeeze(t: Tensor | None) -> Tensor | None:
    return t[:, 0] if t is not None and t.dim() == 4 else t


def _assert_parity(kit, spec: str, logits: Tensor, target: Tensor, valid: Tensor | None, tol: dict) -> None:
    ref, _ = REFERENCES[spec]
    ours_in = logits.clone().requires_grad_(True)
    ref_in = logits.clone().requires_grad_(True)
    ours = kit.create(spec, reduction="none")(ours_in, target, valid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's single-channel notes
        theirs = ref(_squeeze(ref_in), _squeeze(target), _squeeze(valid))
    assert ours.shape == (logits.shape[0],) and torch.isfinite(ours).all()
    torch.testing.assert_close(ours, theirs.to(ours.dtype), **tol)
    ours.sum().backward()
    theirs.sum().backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad, **tol)
    if valid is not None:  # invalid pixels get no gradient at all
        assert torch.all(ours_in.grad[valid == 0] == 0)


@pytest.mark.parametrize("valid", [False, True], ids=["all", "valid"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("spec", list(REFERENCES))
def test_matches_monai_float64(kit, spec, shape, valid):
    logits, target, mask = _inputs(shape, valid, torch.float64, seed=len(spec))
    _assert_parity(kit, spec, logits, target, mask, REFERENCES[spec][1])


@pytest.mark.parametrize("valid", [False, True], ids=["all", "valid"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("spec", ["cldice(eps=0.0001)", "dice_cldice", "hausdorff_dt", "generalized_dice"])
def test_matches_monai_float32(kit, spec, shape, valid):
    logits, target, mask = _inputs(shape, valid, torch.float32, seed=7)
    _assert_parity(kit, spec, logits, target, mask, FLOAT32)


# MONAI on the whole batch, its own reductions: the mean (and sum) of losslab's per-instance values.
BATCH = {
    "cldice(eps=0.0001)": lambda r: MonaiClDice(sigmoid=True, reduction=r),
    "dice_cldice(eps=0.0001)": lambda r: MonaiDiceClDice(sigmoid=True, reduction=r),
    "hausdorff_dt": lambda r: MonaiHausdorff(sigmoid=True, reduction=r),
    "generalized_dice": lambda r: (
        lambda z, g: MonaiGDL(softmax=True, to_onehot_y=True, reduction=r)(
            torch.cat([torch.zeros_like(z), z], dim=1), g
        )
    ),
}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("spec", list(BATCH))
def test_batch_reductions_match_monai(kit, spec, reduction):
    # (N, 1, H, W) straight into MONAI with sigmoid=True (the Generalized Dice as softmax over the
    # logits [0, z] with a one-hot binary target): its reductions over the batch are ours.
    logits, target, _ = _inputs(("blobs", 4, 14, 12, "blobs", True), False, torch.float64, seed=3)
    target[1] = 0.0  # an empty target in the batch
    ours_in = logits.clone().requires_grad_(True)
    ref_in = logits.clone().requires_grad_(True)
    ours = kit.create(spec, reduction=reduction)(ours_in, target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = BATCH[spec](reduction)(ref_in, target)
    assert ours.dim() == 0
    torch.testing.assert_close(ours, theirs.reshape(()), **F32_MAPS)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad, **F32_MAPS)


@pytest.mark.parametrize("spec", NEW_LOSSES)
def test_reduction_none_and_mean_agree(kit, spec):
    logits, target, mask = _inputs(SHAPES[0], True, torch.float64)
    none = kit.create(spec, reduction="none")(logits, target, mask)
    mean = kit.create(spec, reduction="mean")(logits, target, mask)
    assert none.shape == (3,) and mean.dim() == 0
    torch.testing.assert_close(mean, none.mean(), rtol=1e-12, atol=1e-14)


# --- the distance maps, the skeleton, and the single-channel Generalized Dice ------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_distance_field_is_monais_exactly(shape):
    # OpenCV's exact EDT (squared distances rounded to integers) against MONAI's scipy maps, in float64.
    _, target, _ = _inputs(shape, False, torch.float64)
    masks = _squeeze(target)
    theirs = MonaiHausdorff().distance_field(masks[:, None])[:, 0]
    torch.testing.assert_close(distance_field(masks), theirs, rtol=0, atol=1e-12)


def test_cldice_of_a_line_is_zero_when_predicted_and_one_when_missed(kit):
    g = torch.zeros(1, 9, 9, dtype=torch.float64)
    g[0, 4, 1:8] = 1.0
    right = kit.create("cldice(smooth=0.000001)", reduction="none")(40.0 * (2 * g - 1), g)
    missed = kit.create("cldice(smooth=0.000001)", reduction="none")(torch.full_like(g, -40.0), g)
    assert right.item() == pytest.approx(0.0, abs=1e-9)
    assert missed.item() == pytest.approx(1.0, abs=1e-5)  # Tsens = s/(7 + s) -> 0


def test_single_channel_generalized_dice_is_degenerate_in_monai(kit):
    # Why losslab uses [1 - p, p]: on (N, 1, H, W) MONAI's square weight cancels, and an empty target
    # gets weight 0 and loss 0 whatever the prediction. The two-class form still trains that instance.
    logits = torch.full((1, 1, 6, 6), 2.0, dtype=torch.float64)  # predicts the object everywhere
    empty = torch.zeros_like(logits)
    one_channel = MonaiGDL(sigmoid=True, reduction="none")(logits, empty).reshape(())
    assert one_channel.item() == 0.0
    assert kit.create("generalized_dice")(logits, empty).item() > 0.5


# --- valid ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", NEW_LOSSES)
def test_invalid_pixels_do_not_matter(kit, spec):
    logits, target, mask = _inputs(SHAPES[0], True, torch.float64, seed=9)
    loss = kit.create(spec, reduction="none")
    scrambled = torch.where(mask.bool(), logits, torch.randn_like(logits) * 50)
    noisy_target = torch.where(mask.bool(), target, torch.rand_like(target))
    torch.testing.assert_close(loss(logits, target, mask), loss(scrambled, noisy_target, mask), **TIGHT)


@pytest.mark.parametrize("spec", NEW_LOSSES)
def test_all_valid_is_no_valid(kit, spec):
    logits, target, _ = _inputs(SHAPES[1], False, torch.float64)
    loss = kit.create(spec, reduction="none")
    torch.testing.assert_close(loss(logits, target, torch.ones_like(target)), loss(logits, target), **TIGHT)


@pytest.mark.parametrize("spec", [*NEW_LOSSES, "generalized_dice(smooth=0)"])
def test_instance_without_valid_pixels_counts_zero(kit, spec):
    logits, target, _ = _inputs(SHAPES[0], False, torch.float64)
    mask = torch.ones_like(target)
    mask[1] = 0.0
    z = logits.clone().requires_grad_(True)
    per = kit.create(spec, reduction="none")(z, target, mask)
    assert per[1].item() == pytest.approx(0.0, abs=1e-12)
    assert per[0].item() > 0 and per[2].item() > 0
    per.sum().backward()
    assert torch.isfinite(z.grad).all() and torch.all(z.grad[1] == 0)


def test_hausdorff_valid_is_a_mean_over_the_valid_pixels_and_ignores_area(kit):
    logits, target, mask = _inputs(SHAPES[0], True, torch.float64)
    loss = kit.create("hausdorff_dt", reduction="none")
    p, g = torch.sigmoid(logits) * mask, target * mask
    weight = distance_field(p) ** 2 + distance_field(g) ** 2
    expected = ((p - g) ** 2 * weight).sum(dim=(1, 2)) / mask.sum(dim=(1, 2))
    torch.testing.assert_close(loss(logits, target, mask), expected, **TIGHT)
    area = torch.tensor([3.0, 50.0, 7.0], dtype=torch.float64)
    torch.testing.assert_close(loss(logits, target, mask, area=area), expected, **TIGHT)


# --- parameters, hybrids, the catalogue -------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cldice(iter_=-1)", "iter_"),
        ("cldice(iter_=1.5)", "iter_"),
        ("cldice(iter_=true)", "iter_"),
        ("cldice(smooth=0)", "smooth"),
        ("cldice(eps=-0.1)", "eps"),
        ("dice_cldice(alpha=1.5)", "alpha"),
        ("dice_cldice(alpha=-0.5)", "alpha"),
        ("dice_cldice(iter_=-2)", "iter_"),
        ("hausdorff_dt(alpha=0)", "alpha"),
        ("hausdorff_dt(alpha=-2)", "alpha"),
        ("hausdorff_dt(alpha=big)", "alpha"),
        ("generalized_dice(w_type=cube)", "w_type"),
        ("generalized_dice(smooth=-1)", "smooth"),
    ],
)
def test_bad_parameter_values(spec, message):
    with pytest.raises(ValueError, match=message):
        create_loss(spec)


def test_bad_parameters_refused_by_the_classes_too():
    from losslab.losses.generalized import GeneralizedDiceLoss
    from losslab.losses.topology import ClDiceLoss

    with pytest.raises(ValueError, match="iter_"):
        ClDiceLoss(iter_=2.5)
    with pytest.raises(ValueError, match="w_type"):
        GeneralizedDiceLoss(w_type="Square")


@pytest.mark.parametrize(("spec", "simpler"), [("dice_cldice(alpha=0)", "dice"), ("dice_cldice(alpha=1)", "cldice")])
def test_dice_cldice_at_the_ends_is_one_term(kit, spec, simpler):
    from losslab.losses import LossEquivalenceWarning

    logits, target, mask = _inputs(SHAPES[1], True, torch.float64)
    with pytest.warns(LossEquivalenceWarning, match=simpler):
        loss = create_loss(spec, reduction="none")
    torch.testing.assert_close(
        loss(logits, target, mask), kit.create(simpler, reduction="none")(logits, target, mask), **TIGHT
    )


def test_hybrid_builds_and_backpropagates(kit):
    logits, target, mask = _inputs(SHAPES[1], True, torch.float32)
    hybrid = create_loss("bce + 0.5*cldice", reduction="none")
    z = logits.clone().requires_grad_(True)
    value = hybrid(z, target, mask)
    parts = create_loss("bce", reduction="none")(logits, target, mask) + 0.5 * create_loss("cldice", reduction="none")(
        logits, target, mask
    )
    torch.testing.assert_close(value, parts)
    value.mean().backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert hybrid.spec == "bce + 0.5*cldice"
    everything = create_loss("bce + 0.5*cldice + dice_cldice + 0.1*hausdorff_dt + generalized_dice")
    z = logits.clone().requires_grad_(True)
    everything(z, target, mask).backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_spec_errors_are_value_errors_naming_the_loss():
    with pytest.raises(SpecError, match="bad parameters for cldice"):
        create_loss("bce + cldice(iter_=-1)")


def test_registered_with_their_metadata():
    from losslab.losses import get_loss_info

    assert set(NEW_LOSSES) <= set(list_losses(contract="mask"))
    assert get_loss_info("cldice").params == {"iter_": 3, "smooth": 1.0, "eps": 0.0}
    assert get_loss_info("dice_cldice").params == {"iter_": 3, "alpha": 0.5, "smooth": 1.0, "eps": 0.0}
    assert get_loss_info("hausdorff_dt").params == {"alpha": 2.0}
    assert get_loss_info("generalized_dice").params == {"w_type": "square", "smooth": 1e-5}
    kinds = {n: get_loss_info(n).kind for n in NEW_LOSSES}
    assert kinds == {
        "cldice": "structural",
        "dice_cldice": "structural",
        "hausdorff_dt": "boundary",
        "generalized_dice": "region",
    }


def test_losslab_losses_list_shows_them():
    exe = Path(sys.executable).with_name("losslab")
    command = [str(exe)] if exe.exists() else [shutil.which("losslab") or pytest.skip("no losslab script")]
    result = subprocess.run(
        [*command, "losses", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in NEW_LOSSES:
        assert name in result.stdout
    assert "Shit et al. 2021" in result.stdout and "Karimi" in result.stdout and "Sudre" in result.stdout
