"""Kervadec's boundary loss: the signed distance map by hand and against scipy, values, edges."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from losslab.losses import create_loss
from losslab.losses.boundary import signed_distance_map


def _kervadec_map(mask: np.ndarray) -> np.ndarray:
    # The authors' one_hot2dist for one binary mask with both object and background.
    pos = mask.astype(bool)
    neg = ~pos
    return distance_transform_edt(neg) * neg - (distance_transform_edt(pos) - 1) * pos


def _disks(n=4, size=32, seed=0):
    gen = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = []
    for _ in range(n):
        cy, cx = gen.uniform(size / 4, 3 * size / 4, size=2)
        r = gen.uniform(size / 10, size / 4)
        masks.append(((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.float64))
    return torch.from_numpy(np.stack(masks))


def test_signed_distance_by_hand():
    target = torch.tensor([[[0.0, 1, 1, 1, 1, 1, 0]]])
    assert signed_distance_map(target)[0, 0].tolist() == [1.0, 0.0, -1.0, -2.0, -1.0, 0.0, 1.0]


def test_signed_distance_matches_scipy_edt():
    target = _disks()
    ours = signed_distance_map(target)
    ref = np.stack([_kervadec_map(m) for m in target.numpy()])
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=1e-12)
    assert ours.dtype == target.dtype


def test_raw_value_is_mean_of_p_times_phi():
    target = _disks()
    logits = torch.randn(target.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    logits.requires_grad_(True)
    phi = torch.from_numpy(np.stack([_kervadec_map(m) for m in target.numpy()]))
    raw = create_loss("boundary(shift=false)", reduction="none")(logits, target)
    torch.testing.assert_close(raw, (torch.sigmoid(logits) * phi).mean(dim=(1, 2)), rtol=1e-6, atol=1e-5)
    shifted = create_loss("boundary", reduction="none")(logits, target)
    # The shift is a constant: same gradient, value moved by -mean(min(phi, 0)).
    torch.testing.assert_close(shifted - raw, -phi.clamp(max=0).mean(dim=(1, 2)), rtol=1e-6, atol=1e-5)
    g_raw = torch.autograd.grad(raw.sum(), logits)[0]
    g_shift = torch.autograd.grad(shifted.sum(), logits)[0]
    torch.testing.assert_close(g_raw, g_shift)


def test_valid_and_soft_targets():
    target = _disks(n=2)
    logits = torch.randn(target.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    valid = torch.zeros_like(target)
    valid[:, 4:20, 2:30] = 1
    phi = signed_distance_map(target)
    per_pixel = torch.sigmoid(logits) * phi - phi.clamp(max=0)
    expected = (per_pixel * valid).sum(dim=(1, 2)) / valid.sum(dim=(1, 2))
    torch.testing.assert_close(create_loss("boundary", reduction="none")(logits, target, valid), expected)
    # A soft target is binarised at 0.5 for the distances.
    soft = target * 0.7 + 0.1
    torch.testing.assert_close(signed_distance_map(soft), phi)


def test_perfect_prediction_is_zero_and_values_nonnegative():
    target = _disks()
    loss = create_loss("boundary", reduction="none")
    assert loss((target * 2 - 1) * 100, target).abs().max().item() < 1e-12
    noisy = torch.randn(target.shape, dtype=torch.float64)
    assert (loss(noisy, target) >= 0).all()


def test_empty_and_full_targets():
    logits = torch.randn(2, 8, 8, dtype=torch.float64, requires_grad=True)
    p = torch.sigmoid(logits)
    empty = create_loss("boundary", reduction="none")(logits, torch.zeros(2, 8, 8, dtype=torch.float64))
    torch.testing.assert_close(empty, p.mean(dim=(1, 2)))
    full = create_loss("boundary", reduction="none")(logits, torch.ones(2, 8, 8, dtype=torch.float64))
    torch.testing.assert_close(full, (1 - p).mean(dim=(1, 2)))
    # Both push every pixel the right way: p down for an empty target, up for a full one.
    g_empty = torch.autograd.grad(empty.sum(), logits, retain_graph=True)[0]
    g_full = torch.autograd.grad(full.sum(), logits)[0]
    assert (g_empty > 0).all() and (g_full < 0).all()


def test_single_pixel_extreme_logits_and_empty_batch():
    for value in (-100.0, 100.0):
        logits = torch.full((1, 1, 1), value, requires_grad=True)
        out = create_loss("boundary")(logits, torch.ones(1, 1, 1))
        out.backward()
        assert torch.isfinite(out) and torch.isfinite(logits.grad).all()
    logits = torch.zeros(0, 8, 8, requires_grad=True)
    out = create_loss("boundary")(logits, torch.zeros(0, 8, 8))
    out.backward()
    assert out.item() == 0.0 and logits.grad is not None


def test_gradcheck():
    target = _disks(n=2, size=12)
    logits = torch.randn(target.shape, dtype=torch.float64, requires_grad=True)
    loss = create_loss("boundary")
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits,))


def test_bad_input_message():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        create_loss("boundary")(torch.zeros(1, 4, 4), torch.full((1, 4, 4), 2.0))
