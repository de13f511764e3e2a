"""SSIM against pytorch-msssim and the Lovász hinge against smp, plus edge cases."""

from __future__ import annotations

import pytest
import torch

from losslab.losses import create_loss
from losslab.losses.structural import gaussian_window

pytorch_msssim = pytest.importorskip("pytorch_msssim")
smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")


def _inputs(n=3, h=24, w=28, soft=False, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(n, 1, h, w, generator=gen, dtype=dtype)).requires_grad_(True)
    target = torch.rand(n, 1, h, w, generator=gen, dtype=dtype)
    if not soft:
        target = (target > 0.6).to(dtype)
    return logits, target


def _ref_ssim(p, g, win=None):
    return 1 - pytorch_msssim.ssim(p, g, data_range=1.0, size_average=False, win_size=11, win_sigma=1.5, win=win)


@pytest.mark.parametrize("soft", [False, True])
def test_ssim_matches_pytorch_msssim(soft):
    logits, target = _inputs(soft=soft)
    ours = create_loss("ssim", reduction="none")(logits, target)
    # Same window taps as ours (the reference builds its kernel in float32): agreement to 1e-12.
    win = gaussian_window(11, 1.5, torch.float64, torch.device("cpu")).view(1, 1, 1, 11)
    ref = _ref_ssim(torch.sigmoid(logits), target, win=win)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    g_ours = torch.autograd.grad(ours.sum(), logits)[0]
    g_ref = torch.autograd.grad(ref.sum(), logits)[0]
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-12)
    # With the reference's own float32 kernel the difference is the kernel's rounding only.
    torch.testing.assert_close(ours, _ref_ssim(torch.sigmoid(logits), target), rtol=0, atol=1e-6)


def test_ssim_valid_averages_over_valid_window_centres():
    logits, target = _inputs(n=2, h=20, w=20)
    valid = torch.zeros_like(target)
    valid[:, :, 5:15, 6:12] = 1
    ours = create_loss("ssim", reduction="none")(logits, target, valid)
    from losslab.losses.structural import ssim_map

    smap = ssim_map(torch.sigmoid(logits[:, 0]), target[:, 0], 11, 1.5)  # (2, 10, 10), centres 5..14
    expected = 1 - smap[:, 0:10, 1:7].mean(dim=(1, 2))
    torch.testing.assert_close(ours, expected)
    # Valid pixels only on the border, where no window is centred: the instance contributes zero.
    border = torch.zeros_like(target)
    border[:, :, :3] = 1
    assert create_loss("ssim", reduction="none")(logits, target, border).tolist() == [0.0, 0.0]


def test_ssim_is_zero_at_perfect_prediction_and_finite_at_extremes():
    target = torch.zeros(2, 16, 16, dtype=torch.float64)
    target[:, 4:10, 4:10] = 1
    logits = (target * 2 - 1) * 100.0
    logits.requires_grad_(True)
    value = create_loss("ssim")(logits, target)
    assert value.item() == pytest.approx(0.0, abs=1e-9)
    value.backward()
    assert torch.isfinite(logits.grad).all()


def test_ssim_regression_data_range():
    gen = torch.Generator().manual_seed(1)
    depth = 5 * torch.rand(2, 16, 16, generator=gen, dtype=torch.float64)
    pred = depth + 0.3 * torch.randn(2, 16, 16, generator=gen, dtype=torch.float64)
    fixed = create_loss("ssim(data_range=5)", reduction="none", contract="regression")(pred, depth)
    ref = 1 - pytorch_msssim.ssim(pred[:, None], depth[:, None], data_range=5.0, size_average=False)
    torch.testing.assert_close(fixed, ref, rtol=0, atol=1e-6)
    auto = create_loss("ssim(data_range=none)", reduction="none", contract="regression")(pred, depth)
    for i in range(2):
        rng = float(depth[i].max() - depth[i].min())
        one = 1 - pytorch_msssim.ssim(pred[i : i + 1, None], depth[i : i + 1, None], data_range=rng)
        assert auto[i].item() == pytest.approx(one.item(), abs=1e-6)


def test_ssim_gradcheck():
    logits, target = _inputs(n=1, h=7, w=8, soft=True)
    loss = create_loss("ssim(window=5, sigma=1)")
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits,))


def test_ssim_too_small_and_bad_window():
    with pytest.raises(ValueError, match=r"8x8 pixels for window 11"):
        create_loss("ssim")(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="odd"):
        create_loss("ssim(window=4)")


@pytest.mark.parametrize("soft", [False, True])
def test_lovasz_matches_smp(soft):
    # smp's Lovász builds its weights in float32 (``.float()``), so the comparison runs in float32.
    logits, target = _inputs(soft=soft, dtype=torch.float32)
    ours = create_loss("lovasz_hinge")(logits, target)
    ref = smp_losses.LovaszLoss("binary", per_image=True)(logits, target)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    g_ours = torch.autograd.grad(ours, logits)[0]
    g_ref = torch.autograd.grad(ref, logits)[0]
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-6, atol=1e-7)


def test_lovasz_valid_matches_smp_ignore_index():
    logits, target = _inputs(dtype=torch.float32, seed=3)
    valid = (torch.rand(target.shape, generator=torch.Generator().manual_seed(4)) > 0.3).float()
    ours = create_loss("lovasz_hinge", reduction="none")(logits, target, valid)
    labels = target.masked_fill(valid == 0, -1)
    ref = [
        smp_losses.LovaszLoss("binary", per_image=True, ignore_index=-1)(logits[i : i + 1], labels[i : i + 1])
        for i in range(3)
    ]
    torch.testing.assert_close(ours, torch.stack(ref), rtol=1e-6, atol=1e-6)


def test_lovasz_hand_value_and_edges():
    # One pixel, target 1, logit 0: error 1, weight 1 -> loss 1.
    value = create_loss("lovasz_hinge")(torch.zeros(1, 1, 1), torch.ones(1, 1, 1))
    assert value.item() == pytest.approx(1.0)
    logits = torch.tensor([[[100.0, -100.0]]], dtype=torch.float64, requires_grad=True)
    value = create_loss("lovasz_hinge")(logits, torch.tensor([[[1.0, 0.0]]], dtype=torch.float64))
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(logits.grad).all()
    # An instance without a valid pixel contributes zero.
    out = create_loss("lovasz_hinge", reduction="none")(torch.randn(2, 4, 4), torch.ones(2, 4, 4), torch.zeros(2, 4, 4))
    assert out.tolist() == [0.0, 0.0]


def _scaled(right: float, scales: tuple[float, ...]) -> dict[str, list[float]]:
    """Each loss at ``t * u`` for a mask pattern ``u`` whose sign is right on a ``right`` share of the
    pixels (a box-shaped ground truth on 32x32), for each scale ``t``."""
    gen = torch.Generator().manual_seed(0)
    g = torch.zeros(1, 32, 32, dtype=torch.float64)
    g[:, 8:24, 10:22] = 1
    flip = (torch.rand(g.shape, generator=gen, dtype=torch.float64) > right).to(g.dtype)
    u = (2 * g - 1) * (1 - 2 * flip) * (0.5 + torch.rand(g.shape, generator=gen, dtype=torch.float64))
    return {name: [create_loss(name)(t * u, g).item() for t in scales] for name in ("lovasz_hinge", "bce")}


@pytest.mark.parametrize("right", [0.6, 0.8])
def test_lovasz_rewards_confidence_only_in_nearly_right_masks(right):
    """Why the hinge alone collapses YOLACT's masks (docs/results.md, `noise`): scaling up the logits
    of a mask whose sign is right on 60-80 % of its pixels raises the hinge above its value at zero
    logits (1.0, every error 1) while BCE falls; only a nearly right mask gains from confidence. So
    early in training the hinge's descent shrinks every logit towards 0."""
    values = _scaled(right, (0.0, 1.0))
    (lovasz_zero, lovasz_one), (bce_zero, bce_one) = values["lovasz_hinge"], values["bce"]
    assert lovasz_zero == pytest.approx(1.0)
    assert lovasz_one > lovasz_zero + 0.1  # 1.23 at 80 %, 1.74 at 60 %
    if right == 0.8:
        assert bce_one < bce_zero - 0.1  # 0.69 -> 0.51


def test_lovasz_rewards_confidence_in_a_right_mask():
    values = _scaled(1.0, (0.0, 0.5, 1.0, 2.0))["lovasz_hinge"]
    assert values[0] == pytest.approx(1.0) and values == sorted(values, reverse=True) and values[-1] < 0.1


def test_lovasz_gradcheck():
    logits, target = _inputs(n=2, h=5, w=6)
    loss = create_loss("lovasz_hinge")
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits,))


@pytest.mark.parametrize("spec", ["ssim", "lovasz_hinge"])
def test_empty_batch_gives_a_zero_that_backpropagates(spec):
    logits = torch.zeros(0, 1, 16, 16, requires_grad=True)
    value = create_loss(spec)(logits, torch.zeros(0, 1, 16, 16))
    value.backward()
    assert value.item() == 0.0 and logits.grad.shape == logits.shape


@pytest.mark.parametrize("spec", ["ssim", "lovasz_hinge"])
@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_empty_and_full_targets_are_finite(spec, fill):
    logits = torch.randn(2, 16, 16, dtype=torch.float64, requires_grad=True)
    value = create_loss(spec)(logits, torch.full((2, 16, 16), fill, dtype=torch.float64))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all() and value.item() >= 0


def test_gaussian_filter_matmul_and_conv_paths_agree(monkeypatch):
    import torch.nn.functional as F

    from losslab.losses import structural

    stack = torch.rand(2, 5, 17, 23, dtype=torch.float64)
    win = gaussian_window(7, 1.2, torch.float64, torch.device("cpu"))
    by_matmul = structural.gaussian_filter(stack, win)
    conv = F.conv2d(
        F.conv2d(stack, win.view(1, 1, 7, 1).expand(5, 1, 7, 1), groups=5),
        win.view(1, 1, 1, 7).expand(5, 1, 1, 7),
        groups=5,
    )
    torch.testing.assert_close(by_matmul, conv, rtol=1e-12, atol=1e-14)
    monkeypatch.setattr(structural, "_MATMUL_MAX_SIDE", 0)
    torch.testing.assert_close(structural.gaussian_filter(stack, win), conv, rtol=1e-12, atol=1e-14)
