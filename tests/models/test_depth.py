"""Depth + mask: per-head specs under their contracts, the seed's combinations, missing depth."""

from __future__ import annotations

import pytest
import torch

from losslab.losses import create_loss
from losslab.models import create_model, get_model_info
from losslab.models.depth import SEED_COMBINATIONS
from tests._fit import above, below, check, fall, precision
from tests.models._dense_cases import as_list, iou, n_params, overfit, two_images


@pytest.mark.parametrize(("name", "count"), [("depthmask_tiny", 168_506), ("depthmask", 2_705_394)])
def test_preset_parameter_counts_and_outputs(name, count):
    model = create_model(name).eval()
    assert n_params(model) == count and get_model_info(name).task == "dense"
    out = model(torch.randn(2, 3, 32, 32))
    assert set(out) == {"mask", "depth"}
    assert out["mask"].shape == out["depth"].shape == (2, 1, 32, 32)


def test_defaults_are_the_seeds_first_combination():
    cfg = create_model("depthmask_tiny").config
    assert (cfg.depth_loss, cfg.mask_loss) == SEED_COMBINATIONS[0] == ("2*rmse", "bce + 2*dice")


@pytest.mark.parametrize(("depth_loss", "mask_loss"), SEED_COMBINATIONS)
def test_each_seed_combination_trains(depth_loss, mask_loss):
    images, targets = two_images(32)
    model = create_model("depthmask_tiny", depth_loss=depth_loss, mask_loss=mask_loss).train()
    out = model(images, targets)
    assert {"loss_depth", "loss_mask"} <= set(out)
    total = out["loss_depth"] + out["loss_mask"]
    assert torch.isfinite(total)
    total.backward()
    for part in (model.encoder, model.depth_decoder, model.mask_decoder):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_head_losses_equal_the_catalogue_specs_times_weights():
    images, targets = two_images(32)
    model = create_model("depthmask_tiny", depth_weight=0.5, mask_weight=3.0).eval()
    out = model(images, targets)
    depth = create_loss("2*rmse", contract="regression")(out["depth"], targets["depth"])
    mask = create_loss("bce + 2*dice")(out["mask"], targets["mask"])
    assert out["loss_depth"].item() == pytest.approx(0.5 * depth.item(), rel=1e-5)
    assert out["loss_mask"].item() == pytest.approx(3.0 * mask.item(), rel=1e-5)


def test_depth_loss_is_on_values_not_logits():
    # Under the mask contract a target of metres would be rejected; the depth head must accept it.
    images, targets = two_images(32)
    targets["depth"] = targets["depth"] * 10.0
    out = create_model("depthmask_tiny", depth_loss="l1").eval()(images, targets)
    assert out["loss_depth"].item() > 1.0


def test_missing_depth_pixels_do_not_count():
    images, targets = two_images(32)
    model = create_model("depthmask_tiny", depth_loss="l1").eval()
    with torch.no_grad():
        pred = model(images)["depth"]
    targets["depth"][:, :, :8] = 0.0  # missing measurements
    expected = (pred - targets["depth"]).abs()[:, :, 8:].mean()
    got = model(images, targets)["loss_depth"]
    assert got.item() == pytest.approx(expected.item(), rel=1e-4)


def test_list_targets_and_missing_depth_key():
    images, targets = two_images(32)
    model = create_model("depthmask_tiny").eval()
    a, b = model(images, targets), model(images, as_list(targets))
    assert torch.allclose(a["loss_depth"], b["loss_depth"]) and torch.allclose(a["loss_mask"], b["loss_mask"])
    with pytest.raises(ValueError, match="no 'depth'"):
        model(images, {"mask": targets["mask"]})


def test_a_mask_only_loss_is_not_a_depth_loss():
    with pytest.raises(ValueError, match="regression"):
        create_model("depthmask_tiny", depth_loss="dice")


def test_unknown_override_key_is_rejected_with_a_suggestion():
    with pytest.raises(ValueError, match="Did you mean 'depth_loss'"):
        create_model("depthmask_tiny", depth_los="l1")


def fit(seed: int = 0, bf16: bool = False) -> dict[str, float]:
    """80 Adam steps of depthmask_tiny on two tiny images: ``fall`` (mean of the last 5 losses /
    mean of the first 5), mask ``iou`` and ``depth_rmse_over_std``. Depths are 1.5 to 3.1 m (std
    ~0.55 m): predicting their mean would give a ratio of 1."""
    images, targets = two_images(32)
    model, history = overfit(lambda: create_model("depthmask_tiny"), images, targets, 80, 0.02, seed, bf16)
    with torch.no_grad(), precision(bf16):  # train-mode BatchNorm: the fit itself
        out = {k: v.float() for k, v in model.predict(images).items()}
    rmse = (out["depth"] - targets["depth"]).pow(2).mean().sqrt()
    return {
        "fall": fall(history, 5),
        "iou": iou(out["mask"], targets["mask"]),
        "depth_rmse_over_std": float(rmse / targets["depth"].std()),
    }


BOUNDS = {"fall": below(0.25), "iou": above(0.5), "depth_rmse_over_std": below(0.3)}


@pytest.mark.slow
def test_overfits_two_tiny_images():
    check(fit(), BOUNDS)
