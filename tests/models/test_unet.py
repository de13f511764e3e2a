"""The small U-Net: configurable width and depth, any input size, the dense interface, overfitting."""

from __future__ import annotations

import pytest
import torch

from losslab.models import create_model, get_model_info, list_models, model_config
from losslab.models.unet import UNetEncoder
from tests._fit import above, below, check, fall, precision
from tests.models._dense_cases import as_list, iou, n_params, overfit, two_images


@pytest.mark.parametrize(("name", "count"), [("unet_tiny", 121_177), ("unet", 7_763_041)])
def test_preset_parameter_counts(name, count):
    model = create_model(name)
    assert n_params(model) == count
    assert get_model_info(name).task == "dense" and model.task == "dense"


def test_presets_are_listed_in_the_dense_family():
    assert {"unet", "unet_tiny", "masknet", "depthmask"} <= set(list_models(family="dense"))


def test_width_is_configurable():
    # Every convolution's weight scales with width², so doubling base_channels ~quadruples the count.
    small = n_params(create_model("unet_tiny", base_channels=8))
    wide = n_params(create_model("unet_tiny", base_channels=16))
    assert 3.8 < wide / small < 4.1


def test_encoder_levels_halve_the_size_and_double_the_width():
    feats = UNetEncoder(3, base_channels=4, depth=3)(torch.randn(1, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in feats] == [(4, 32, 32), (8, 16, 16), (16, 8, 8), (32, 4, 4)]


@pytest.mark.parametrize("size", [64, 60, 37])
def test_eval_output_has_the_input_size(size):
    model = create_model("unet_tiny").eval()
    out = model(torch.randn(2, 3, size, size))
    assert set(out) == {"mask"} and out["mask"].shape == (2, 1, size, size)


def test_eval_with_targets_gives_predictions_and_the_validation_loss():
    images, targets = two_images(32)
    model = create_model("unet_tiny", mask_loss="dice").eval()
    out = model(images, targets)
    assert out["mask"].shape == (2, 1, 32, 32) and out["loss_mask"].dim() == 0


def test_batched_and_list_targets_give_the_same_loss():
    images, targets = two_images(32)
    model = create_model("unet_tiny", mask_loss="bce + ssim").eval()
    assert torch.allclose(model(images, targets)["loss_mask"], model(images, as_list(targets))["loss_mask"])


def test_missing_or_misshapen_mask_is_an_error():
    images, targets = two_images(32)
    model = create_model("unet_tiny").train()
    with pytest.raises(ValueError, match="no 'mask'"):
        model(images, {"depth": targets["depth"]})
    with pytest.raises(ValueError, match=r"shape \(2, 1, 16, 16\)"):
        model(images, {"mask": targets["mask"][..., :16, :16]})


def test_bad_config_values_are_rejected():
    with pytest.raises(ValueError, match="num_classes must be 1"):
        create_model("unet_tiny", num_classes=3)
    with pytest.raises(ValueError, match="Did you mean 'base_channels'"):
        create_model("unet_tiny", base_channel=4)


def fit(seed: int = 0, bf16: bool = False) -> dict[str, float]:
    """40 Adam steps on two tiny images: ``fall`` (mean of the last 5 losses / mean of the first 5)
    and ``iou`` of the fitted masks (train-mode BatchNorm: the fit itself, not 40 steps of running
    statistics)."""
    images, targets = two_images(32)
    model, history = overfit(
        lambda: create_model("unet_tiny", mask_loss="bce + dice"),
        images,
        targets,
        steps=40,
        lr=0.02,
        seed=seed,
        bf16=bf16,
    )
    with torch.no_grad(), precision(bf16):
        logits = model.predict(images)["mask"].float()
    return {"fall": fall(history, 5), "iou": iou(logits, targets["mask"])}


BOUNDS = {"fall": below(0.25), "iou": above(0.5)}


def test_overfits_two_tiny_images():
    check(fit(), BOUNDS)


@pytest.mark.parametrize("name", ["masknet", "unet_tiny", "unet", "depthmask_tiny", "depthmask"])
def test_preset_config_is_available_without_building_weights(name):
    config = model_config(name, mask_loss="dice", input_size=96)
    assert (config.mask_loss, config.input_size) == ("dice", 96)
    assert create_model(name, mask_loss="dice", input_size=96).config == config
