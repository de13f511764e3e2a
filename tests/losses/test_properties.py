"""Properties every mask loss in the registry must have; the tests grow with the registry.

Non-negative; zero and minimal at a perfect prediction; a hybrid is the weighted sum of its terms;
the reductions agree; ``gradcheck`` in float64; finite values and gradients at logits of ±100, on
empty and full targets and on a single pixel; an empty batch gives a zero that back-propagates; bad
input raises a ``ValueError`` that says what is wrong.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from losslab.losses import list_losses

MASK_LOSSES = list_losses(contract="mask")

# Losses whose minimum is not at a hard 0/1 prediction: name -> (reason, logits at the minimum).
MINIMUM_ELSEWHERE = {
    "label_smoothing_bce": (
        "its minimum is at p = g·(1 − s) + s/2, not at a confident prediction; checked there instead",
        lambda g: torch.logit(g * 0.95 + 0.025),
    ),
}

# A fixed, modest set of examples: the same on every run and no example database on disk.
PROPERTY = settings(max_examples=8, deadline=None, derandomize=True, database=None)


@st.composite
def cases(draw, binary: bool | None = None):
    """``(seed, n, h, w, soft, valid)`` for ``kit.inputs``; sizes from 3 px so a window of 3 fits."""
    soft = draw(st.booleans()) if binary is None else not binary
    return {
        "seed": draw(st.integers(0, 2**16)),
        "n": draw(st.integers(1, 3)),
        "h": draw(st.integers(3, 7)),
        "w": draw(st.integers(3, 7)),
        "soft": soft,
        "valid": draw(st.booleans()),
        "scale": draw(st.sampled_from([0.5, 3.0, 12.0])),
    }


@pytest.mark.parametrize("name", MASK_LOSSES)
@PROPERTY
@given(case=cases())
def test_non_negative(kit, name, case):
    logits, target, valid = kit.inputs(**case)
    per = kit.create(kit.spec(name, min(case["h"], case["w"])), reduction="none")(logits, target, valid)
    assert per.shape == (case["n"],)
    assert (per >= -1e-12).all(), per


@pytest.mark.parametrize("name", MASK_LOSSES)
@PROPERTY
@given(case=cases(binary=True))
def test_zero_and_minimal_at_a_perfect_prediction(kit, name, case):
    logits, target, valid = kit.inputs(**case)
    loss = kit.create(kit.spec(name, min(case["h"], case["w"])), reduction="none")
    if name in MINIMUM_ELSEWHERE:
        perfect = MINIMUM_ELSEWHERE[name][1](target)
    else:
        perfect = 30.0 * (2.0 * target - 1.0)  # sigmoid(±30) is 1 or 0 within 1e-13
        assert (loss(perfect, target, valid) <= 1e-6).all()
    at_best = loss(perfect, target, valid)
    assert (at_best <= loss(logits, target, valid) + 1e-9).all()
    nudged = perfect + torch.randn_like(perfect).clamp(-1, 1) * 0.5
    assert (at_best <= loss(nudged, target, valid) + 1e-9).all()


@PROPERTY
@given(
    case=cases(),
    names=st.lists(st.sampled_from(MASK_LOSSES), min_size=2, max_size=3, unique=True),
    weights=st.lists(st.sampled_from([0.1, 0.5, 1.0, 2.5]), min_size=3, max_size=3),
)
def test_hybrid_is_the_weighted_sum_of_its_terms(kit, case, names, weights):
    size = min(case["h"], case["w"])
    specs = [kit.spec(n, size) for n in names]
    spec = " + ".join(f"{w:g}*{s}" for w, s in zip(weights, specs, strict=False))
    logits, target, valid = kit.inputs(**case)
    hybrid = kit.create(spec, reduction="none")(logits, target, valid)
    parts = sum(
        w * kit.create(s, reduction="none")(logits, target, valid) for w, s in zip(weights, specs, strict=False)
    )
    torch.testing.assert_close(hybrid, parts, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", MASK_LOSSES)
@PROPERTY
@given(case=cases())
def test_reductions_agree(kit, name, case):
    logits, target, valid = kit.inputs(**case)
    spec = kit.spec(name, min(case["h"], case["w"]))
    none = kit.create(spec, reduction="none")(logits, target, valid)
    mean = kit.create(spec, reduction="mean")(logits, target, valid)
    total = kit.create(spec, reduction="sum")(logits, target, valid)
    assert mean.dim() == 0 and total.dim() == 0
    torch.testing.assert_close(mean, none.mean(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(total, none.sum(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", MASK_LOSSES)
def test_four_d_input_is_the_same_as_three_d(kit, name):
    logits, target, valid = kit.inputs(seed=1, soft=True, valid=True)
    loss = kit.create(kit.spec(name), reduction="none")
    four = loss(logits[:, None], target[:, None], valid[:, None])
    torch.testing.assert_close(four, loss(logits, target, valid))


@pytest.mark.parametrize("with_valid", [False, True], ids=["all", "valid"])
@pytest.mark.parametrize("name", MASK_LOSSES)
def test_gradcheck(kit, name, with_valid):
    logits, target, valid = kit.inputs(seed=21, n=2, h=3, w=4, soft=True, valid=with_valid, scale=1.5)
    loss = kit.create(kit.spec(name, 3), reduction="sum")
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: loss(z, target, valid), (logits,), eps=1e-6, atol=1e-7)


# --- edge cases ---------------------------------------------------------------------------------------


def _value_and_grad(loss, logits, target, valid=None):
    logits = logits.clone().requires_grad_(True)
    value = loss(logits, target, valid)
    value.backward()
    return value, logits.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", MASK_LOSSES)
def test_finite_at_logits_of_100(kit, name, dtype):
    _, target, valid = kit.inputs(seed=2, soft=False, valid=True, dtype=dtype)
    signs = torch.where(torch.rand_like(target) > 0.5, 1.0, -1.0).to(dtype)
    loss = kit.create(kit.spec(name), reduction="sum")
    for logits in (100 * signs, 100 * (2 * target - 1), -100 * (2 * target - 1)):  # random, right, wrong
        for mask in (None, valid):
            value, grad = _value_and_grad(loss, logits, target, mask)
            assert torch.isfinite(value), (name, value)
            assert torch.isfinite(grad).all(), name


@pytest.mark.parametrize("fill", [0.0, 1.0], ids=["empty", "full"])
@pytest.mark.parametrize("name", MASK_LOSSES)
def test_empty_and_full_targets(kit, name, fill):
    logits, _, valid = kit.inputs(seed=3, valid=True)
    target = torch.full_like(logits, fill)
    loss = kit.create(kit.spec(name), reduction="none")
    for mask in (None, valid):
        value, grad = _value_and_grad(lambda *a: loss(*a).sum(), logits, target, mask)
        assert torch.isfinite(value) and torch.isfinite(grad).all()
    if name not in MINIMUM_ELSEWHERE:
        perfect = torch.full_like(logits, 30.0 if fill else -30.0)
        assert (loss(perfect, target) <= 1e-6).all()


@pytest.mark.parametrize("name", MASK_LOSSES)
def test_single_pixel(kit, name):
    logits = torch.tensor([[[2.0]], [[-0.5]], [[0.3]]], dtype=torch.float64)
    target = torch.tensor([[[1.0]], [[1.0]], [[0.0]]], dtype=torch.float64)
    loss = kit.create(kit.spec(name, 1), reduction="none")
    per = loss(logits, target)
    assert per.shape == (3,) and torch.isfinite(per).all()
    _, grad = _value_and_grad(lambda *a: loss(*a).sum(), logits, target)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", MASK_LOSSES)
def test_empty_batch_is_a_zero_that_backpropagates(kit, name, reduction):
    logits = torch.zeros(0, 1, 6, 6, requires_grad=True)
    value = kit.create(kit.spec(name), reduction=reduction)(logits, torch.zeros(0, 1, 6, 6))
    assert value.shape == ((0,) if reduction == "none" else ())
    assert value.sum().item() == 0.0
    value.sum().backward()
    assert logits.grad is not None and logits.grad.shape == logits.shape


# --- bad input ------------------------------------------------------------------------------------------

Z = torch.zeros(2, 4, 4)
G = torch.zeros(2, 4, 4)
BAD = {
    "shape mismatch": ((Z, torch.zeros(2, 4, 5)), "same shape"),
    "target above 1": ((Z, torch.full_like(G, 1.5)), r"\[0, 1\]"),
    "target below 0": ((Z, torch.full_like(G, -0.1)), r"\[0, 1\]"),
    "NaN logits": ((torch.full_like(Z, float("nan")), G), "NaN"),
    "inf logits": ((torch.full_like(Z, float("inf")), G), "inf"),
    "NaN target": ((Z, torch.full_like(G, float("nan"))), "NaN"),
    "int logits": ((Z.long(), G), "float"),
    "int target": ((Z, G.long()), "float"),
    "valid shape": ((Z, G, torch.ones(2, 4, 3)), "valid"),
    "two channels": ((torch.zeros(2, 2, 4, 4), torch.zeros(2, 2, 4, 4)), r"\(N, 1, H, W\)"),
    "2-D input": ((torch.zeros(4, 4), torch.zeros(4, 4)), "expected"),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("name", MASK_LOSSES)
def test_bad_input_raises_a_helpful_value_error(kit, name, case):
    args, message = BAD[case]
    with pytest.raises(ValueError, match=message):
        kit.create(kit.spec(name, 4))(*args)


def test_bad_input_is_caught_by_a_hybrid_too(kit):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        kit.create("bce + dice")(Z, torch.full_like(G, 2.0))
