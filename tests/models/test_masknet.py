"""MaskNet (the mask + depth notes): the exact layer sizes, the dense interface, and overfitting two images."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from losslab.models import create_model, get_model_info
from tests._fit import above, below, check, fall, precision
from tests.models._dense_cases import as_list, iou, n_params, overfit, two_images


def test_parameter_count_is_the_seeds_59745():
    assert n_params(create_model("masknet")) == 59_745


def test_layer_parameters_match_the_seed_summary():
    model = create_model("masknet")
    # The seed's torchsummary rows with parameters, in forward order (Conv2d-1 ... Conv2d-18).
    seed_rows = [896, 64, 896, 64, 2080, 18496, 128, 36928, 128, 65]
    ours = [
        sum(p.numel() for p in m.parameters(recurse=False))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))
    ]
    assert ours == seed_rows


def test_registered_as_a_dense_preset():
    info = get_model_info("masknet")
    assert (info.family, info.task) == ("dense", "dense")
    model = create_model("masknet")
    assert model.task == "dense" and model.config.mask_loss == "bce" and model.config.num_classes == 1


def test_eval_output_is_full_resolution_logits():
    model = create_model("masknet").eval()
    out = model(torch.randn(2, 3, 48, 40))
    assert set(out) == {"mask"} and out["mask"].shape == (2, 1, 48, 40)


def test_two_image_input_is_split_between_the_stems():
    model = create_model("masknet").eval()
    x = torch.randn(1, 3, 16, 16)
    same = model(torch.cat([x, x], dim=1))["mask"]
    assert torch.allclose(same, model(x)["mask"], atol=1e-6)
    with pytest.raises(ValueError, match=r"expects images \(B, 3, S, S\)"):
        model(torch.randn(1, 4, 16, 16))


def test_training_output_is_the_weighted_mask_loss():
    images, targets = two_images(32)
    model = create_model("masknet", mask_loss="bce + 2*dice", mask_weight=0.5).train()
    torch.manual_seed(0)
    out = model(images, targets)
    assert set(out) == {"loss_mask", "mask/bce", "mask/2*dice"}
    assert out["loss_mask"].requires_grad and not out["mask/bce"].requires_grad
    assert out["loss_mask"].item() == pytest.approx((out["mask/bce"] + out["mask/2*dice"]).item(), rel=1e-5)


def test_batched_and_list_targets_give_the_same_loss():
    images, targets = two_images(32)
    model = create_model("masknet", mask_loss="dice").eval()
    a = model(images, targets)["loss_mask"]
    b = model(images, as_list(targets))["loss_mask"]
    assert torch.allclose(a, b)


def test_training_without_targets_is_an_error():
    model = create_model("masknet").train()
    with pytest.raises(ValueError, match="needs targets"):
        model(torch.randn(1, 3, 16, 16))


def test_unknown_override_key_is_rejected_with_a_suggestion():
    with pytest.raises(ValueError, match="Did you mean 'mask_loss'"):
        create_model("masknet", mask_los="dice")


def test_bad_loss_spec_is_rejected_at_build_time():
    with pytest.raises(ValueError, match="unknown loss"):
        create_model("masknet", mask_loss="dcie")


def fit(seed: int = 0, bf16: bool = False) -> dict[str, float]:
    """40 Adam steps on two tiny images: ``fall`` (mean of the last 5 losses / mean of the first 5)
    and ``iou`` of the fitted masks (train-mode BatchNorm: the fit itself, not 40 steps of running
    statistics)."""
    images, targets = two_images(32)
    model, history = overfit(
        lambda: create_model("masknet", mask_loss="bce + dice"),
        images,
        targets,
        steps=40,
        lr=0.01,
        seed=seed,
        bf16=bf16,
    )
    with torch.no_grad(), precision(bf16):
        logits = model.predict(images)["mask"].float()
    return {"fall": fall(history, 5), "iou": iou(logits, targets["mask"])}


BOUNDS = {"fall": below(0.25), "iou": above(0.5)}


def test_overfits_two_tiny_images():
    check(fit(), BOUNDS)
