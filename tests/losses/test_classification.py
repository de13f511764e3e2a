"""Class-contract losses: OHEM cross-entropy by hand against F.cross_entropy, the focal losses
against torchvision, normalisation, ignored anchors and input errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from losslab.losses import create_loss
from losslab.losses.classification import hard_negatives


def _inputs(b=2, a=12, c=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = (2 * torch.randn(b, a, c + 1, generator=gen, dtype=torch.float64)).requires_grad_(True)
    labels = torch.zeros(b, a, dtype=torch.int64)
    labels[0, [1, 4]] = torch.tensor([2, 1])  # image 0: 2 positives
    labels[0, 7] = -1  # ignored
    labels[1, 3] = 3  # image 1: 1 positive
    labels[1, [0, 9]] = -1
    return logits, labels


def test_ohem_selects_every_positive_and_the_hardest_negatives_by_hand():
    logits, labels = _inputs()
    bg_loss = (torch.logsumexp(logits, dim=2) - logits[..., 0]).detach()
    chosen = []
    for i, k in ((0, 6), (1, 3)):  # neg_pos_ratio 3 x positives of each image
        negatives = [j for j in range(12) if labels[i, j] == 0]
        hardest = sorted(negatives, key=lambda j: -bg_loss[i, j].item())[:k]
        chosen.append(sorted(hardest + [j for j in range(12) if labels[i, j] > 0]))
    neg = hard_negatives(logits, labels, 3.0)
    for i in range(2):
        got = sorted(torch.nonzero(neg[i] | (labels[i] > 0)).flatten().tolist())
        assert got == chosen[i]
    # The loss is a plain cross-entropy on exactly those anchors.
    sel_logits = torch.cat([logits[i, chosen[i]] for i in range(2)])
    sel_labels = torch.cat([labels[i, chosen[i]] for i in range(2)])
    total = F.cross_entropy(sel_logits, sel_labels, reduction="sum")
    ours_sum = create_loss("ohem_ce", reduction="sum", contract="class")(logits, labels)
    torch.testing.assert_close(ours_sum, total)
    ours_mean = create_loss("ohem_ce", contract="class")(logits, labels)
    torch.testing.assert_close(ours_mean, total / 3)  # 3 positives in the batch
    g_ours = torch.autograd.grad(ours_sum, logits)[0]
    g_ref = torch.autograd.grad(total, logits)[0]
    torch.testing.assert_close(g_ours, g_ref)


def test_ohem_never_picks_ignored_or_positive_anchors_as_negatives():
    logits, labels = _inputs()
    logits = logits.detach().clone()
    logits[0, 7, 0] = -50.0  # the ignored anchor has the largest background loss
    neg = hard_negatives(logits, labels, 100.0)  # more negatives wanted than exist
    assert not neg[labels != 0].any()
    assert neg[labels == 0].all()


def test_ohem_none_gives_per_anchor_values_and_an_image_without_positives_adds_nothing():
    logits, labels = _inputs()
    labels[1] = torch.where(labels[1] > 0, 0, labels[1])
    values = create_loss("ohem_ce", reduction="none", contract="class")(logits, labels)
    assert values.shape == (2, 12)
    assert (values[1] == 0).all() and (values[0] > 0).sum() == 2 + 6


def test_softmax_focal_matches_formula_and_reduces_to_ce():
    logits, labels = _inputs()
    keep = labels >= 0
    log_p = F.log_softmax(logits, dim=2).gather(2, labels.clamp_min(0)[..., None])[..., 0]
    alpha_t = torch.where(labels > 0, 0.25, 0.75)
    expected = (-alpha_t * (1 - log_p.exp()) ** 2 * log_p)[keep].sum() / 3
    torch.testing.assert_close(create_loss("softmax_focal", contract="class")(logits, labels), expected)
    # gamma 0, alpha 0.5: half the cross-entropy over the non-ignored anchors.
    half_ce = 0.5 * F.cross_entropy(logits[keep], labels[keep], reduction="sum")
    ours = create_loss("softmax_focal(alpha=0.5, gamma=0)", reduction="sum", contract="class")(logits, labels)
    torch.testing.assert_close(ours, half_ce)


def test_sigmoid_focal_matches_torchvision_on_one_hot_classes():
    logits, labels = _inputs()
    keep = labels >= 0
    onehot = F.one_hot(labels.clamp_min(0), 4)[..., 1:].double()
    ref = sigmoid_focal_loss(logits[..., 1:], onehot, alpha=0.25, gamma=2.0, reduction="none").sum(dim=2)
    ref = (ref * keep).sum()
    ours = create_loss("sigmoid_focal_cls", reduction="sum", contract="class")(logits, labels)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    g_ours = torch.autograd.grad(ours, logits)[0]
    g_ref = torch.autograd.grad(ref, logits)[0]
    torch.testing.assert_close(g_ours, g_ref)
    assert (g_ours[..., 0] == 0).all()  # the background column is not used


@pytest.mark.parametrize("spec", ["ohem_ce", "softmax_focal", "sigmoid_focal_cls"])
def test_gradcheck_and_extremes(spec):
    logits, labels = _inputs()
    logits = logits[:, :6].detach().requires_grad_(True)
    labels = labels[:, :6]
    loss = create_loss(spec, contract="class")
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (logits,))
    big = (100 * torch.sign(logits.detach())).requires_grad_(True)
    value = loss(big, labels)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(big.grad).all()


@pytest.mark.parametrize("spec", ["ohem_ce", "softmax_focal", "sigmoid_focal_cls"])
def test_all_ignored_or_empty_gives_a_zero_that_backpropagates(spec):
    loss = create_loss(spec, contract="class")
    logits = torch.randn(2, 5, 3, requires_grad=True)
    value = loss(logits, torch.full((2, 5), -1))
    value.backward()
    assert value.item() == 0.0 and logits.grad is not None
    empty = torch.zeros(0, 5, 3, requires_grad=True)
    assert loss(empty, torch.zeros(0, 5, dtype=torch.int64)).item() == 0.0


def test_class_input_errors():
    loss = create_loss("ohem_ce", contract="class")
    logits = torch.zeros(2, 5, 3)
    with pytest.raises(ValueError, match=r"labels \(2, 4\) must be \(B, A\)"):
        loss(logits, torch.zeros(2, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="int64"):
        loss(logits, torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"-1\.\.2"):
        loss(logits, torch.full((2, 5), 3))
    with pytest.raises(ValueError, match="NaN or inf"):
        loss(torch.full((2, 5, 3), float("nan")), torch.zeros(2, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\(B, A, C\+1\)"):
        loss(torch.zeros(10, 3), torch.zeros(10, dtype=torch.int64))
