"""YOLACT presets end to end: head shapes, the training/eval contract, overrides, parameters."""

from __future__ import annotations

import pytest
import torch

from losslab.config import config_to_dict
from losslab.models import create_model, get_model_info, list_models, model_config
from losslab.models.yolact import Yolact, YolactConfig, count_parameters

PRESETS = ["yolact_tiny", "yolact_lite", "yolact_resnet50", "yolact_base", "yolact_plus_resnet50", "yolact_plus_base"]

#: Parameters at the default num_classes=80 (semantic head and, for ++, the re-scoring net
#: included). YOLACT's released yolact_base is about 50 M parameters.
PARAMS = {
    "yolact_tiny": 12_778_767,
    "yolact_lite": 4_505_615,
    "yolact_resnet50": 31_164_943,
    "yolact_base": 50_157_071,
    "yolact_plus_resnet50": 33_202_788,
    "yolact_plus_base": 52_568_326,
}


def _batch(size: int, n_images: int = 1) -> tuple[torch.Tensor, list[dict]]:
    images = torch.randn(n_images, 3, size, size)
    targets = []
    for i in range(n_images):
        m = torch.zeros(2, size, size, dtype=torch.uint8)
        q = size // 4
        m[0, q : 2 * q, q : 3 * q] = 1
        m[1, 2 * q : 4 * q - 2, 0 : 2 * q] = 1
        targets.append(
            {
                "boxes": torch.tensor([[q, q, 3 * q, 2 * q], [0, 2 * q, 2 * q, 4 * q - 2]], dtype=torch.float32),
                "labels": torch.tensor([1, 1 + i % 2]),
                "masks": m,
                "iscrowd": torch.tensor([False, False]),
            }
        )
    return images, targets


def test_presets_are_registered():
    assert list_models(family="yolact") == sorted(PRESETS)
    for name in PRESETS:
        info = get_model_info(name)
        assert info.task == "instance" and info.family == "yolact"


@pytest.mark.parametrize(
    "name",
    [
        "yolact_tiny",
        pytest.param("yolact_resnet50", marks=pytest.mark.slow),
        pytest.param("yolact_base", marks=pytest.mark.slow),
        pytest.param("yolact_plus_resnet50", marks=pytest.mark.slow),
        pytest.param("yolact_plus_base", marks=pytest.mark.slow),
    ],
)
def test_head_shapes_train_and_eval(name):
    size = 96
    torch.manual_seed(0)
    model = create_model(name, input_size=size, num_classes=3)
    c = model.config
    assert model.task == "instance" and isinstance(model, Yolact)
    images, targets = _batch(size)
    model.eval()
    out = model.raw_outputs(images)
    levels = [(12, 12), (6, 6), (3, 3), (2, 2), (1, 1)]  # strides 8..128 with ceil
    A = sum(h * w for h, w in levels) * c.anchors_per_location
    assert c.anchors_per_location == (9 if "plus" in name else 3)
    assert out.loc.shape == (1, A, 4)
    assert out.conf.shape == (1, A, 4)
    assert out.coef.shape == (1, A, 32) and out.coef.abs().max() <= 1
    assert out.protos.shape == (1, 32, 24, 24) and out.protos.min() >= 0
    assert out.anchors.shape == (A, 4)
    assert out.segm is None  # the semantic head runs in training only
    model.train()
    losses = model(images, targets)
    expected = {"loss_class", "loss_box", "loss_mask", "loss_semantic"} | (
        {"loss_maskiou"} if "plus" in name else set()
    )
    assert expected <= set(losses)
    total = sum(v for k, v in losses.items() if k.startswith("loss_"))
    assert torch.isfinite(total)
    total.backward()
    assert model.head.pred.weight.grad is not None and model.protonet.tail[-2].weight.grad is not None
    model.eval()
    with torch.no_grad():
        (det,) = model(images)
    m = det["boxes"].shape[0]
    assert det["masks"].shape == (m, size, size) and det["scores"].shape == (m,) and det["labels"].shape == (m,)
    if "plus" in name and m:
        # Re-scoring multiplies the class score by the predicted mask IoU.
        assert "box_scores" in det and not torch.equal(det["scores"], det["box_scores"])


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESETS)
def test_parameter_counts_are_recorded(name):
    assert count_parameters(create_model(name)) == PARAMS[name]


def test_overrides_apply_and_unknown_keys_are_rejected():
    model = create_model("yolact_tiny", mask_loss="0.5*mse + bce", num_classes="2", fast_nms="false")
    assert model.config.mask_loss == "0.5*mse + bce" and model.config.num_classes == 2
    assert model.config.fast_nms is False
    with pytest.raises(ValueError, match="Did you mean 'mask_loss'"):
        create_model("yolact_tiny", mask_los="dice")
    with pytest.raises(ValueError, match="backbone"):
        model_config("yolact_tiny", backbone="resnet15")
    with pytest.raises(ValueError, match="unknown loss"):
        create_model("yolact_tiny", mask_loss="dicee")
    with pytest.raises(ValueError, match="neg_iou"):
        YolactConfig(neg_iou=0.6, pos_iou=0.5)


def test_resolved_config_round_trips_through_a_dict():
    cfg = model_config("yolact_plus_base", input_size="320")
    data = config_to_dict(cfg)
    assert data["dcn_stages"] == [2, 3, 4] and data["scales_per_level"] == 3 and data["input_size"] == 320
    assert model_config("yolact_plus_base", **data) == cfg


def test_training_needs_targets_and_checks_them():
    model = create_model("yolact_tiny", input_size=64, num_classes=2).train()
    images, targets = _batch(64)
    with pytest.raises(ValueError, match="needs targets"):
        model(images)
    bad = [{**targets[0], "labels": torch.tensor([1])}]
    with pytest.raises(ValueError, match="same number of instances"):
        model(images, bad)


def test_images_without_objects_train():
    torch.manual_seed(0)
    model = create_model("yolact_tiny", input_size=64, num_classes=2).train()
    images, targets = _batch(64, n_images=2)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "masks": torch.zeros(0, 64, 64)}
    for batch in ([targets[0], empty], [empty, empty]):
        losses = model(images, batch)
        total = sum(v for k, v in losses.items() if k.startswith("loss_"))
        assert torch.isfinite(total)
        model.zero_grad()
        total.backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(
    "overrides", [{"channels_last": True}, {"channels_last": True, "amp": "bf16"}, {"fast_nms": False}]
)
def test_inference_options_keep_the_contract(overrides):
    torch.manual_seed(0)
    model = create_model("yolact_tiny", input_size=64, num_classes=2, **overrides).eval()
    images, _ = _batch(64)
    with torch.no_grad():
        (det,) = model(images)
    assert det["masks"].dtype == torch.float32 and det["masks"].shape[1:] == (64, 64)
    assert det["boxes"].dtype == torch.float32


def test_amp_outputs_stay_close_to_fp32():
    torch.manual_seed(0)
    model = create_model("yolact_tiny", input_size=64, num_classes=2).eval()
    images, _ = _batch(64)
    ref = model.raw_outputs(images)
    amp = Yolact(model_config("yolact_tiny", input_size=64, num_classes=2, amp="bf16")).eval()
    amp.load_state_dict(model.state_dict())
    out = amp.raw_outputs(images)
    assert torch.allclose(out.coef, ref.coef, atol=0.1)
    assert out.protos.dtype == torch.float32


def test_fuse_for_inference_keeps_the_outputs():
    torch.manual_seed(0)
    model = create_model("yolact_tiny", input_size=64, num_classes=2, dcn_stages=(4,))
    images, targets = _batch(64, n_images=2)
    model.train()
    model(images, targets)  # move the BN running statistics away from their initial values
    model.eval()
    model_state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        ref = model.raw_outputs(images)
        fused = model.fuse_for_inference().raw_outputs(images)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.modules())
    assert torch.allclose(fused.coef, ref.coef, atol=1e-4) and torch.allclose(fused.loc, ref.loc, atol=1e-4)
    with pytest.raises(ValueError, match="fused"):
        model.train()
    # With amp the weights are stored in bfloat16; outputs stay float32 and close.
    amp = Yolact(model_config("yolact_tiny", input_size=64, num_classes=2, dcn_stages=(4,), amp="bf16"))
    amp.load_state_dict(model_state)
    with torch.no_grad():
        out = amp.fuse_for_inference().raw_outputs(images)
        (det,) = amp(images[:1])
    assert amp.backbone.layer1[0].conv1.weight.dtype == torch.bfloat16
    assert out.coef.dtype == torch.float32 and torch.allclose(out.coef, ref.coef, atol=0.1)
    assert det["masks"].dtype == torch.float32


@pytest.mark.parametrize(
    "losses",
    [
        {"class_loss": "softmax_focal", "box_loss": "ciou", "mask_loss": "dice + bce"},
        {"class_loss": "ohem_ce(neg_pos_ratio=5)", "box_loss": "giou", "mask_loss": "0.5*mse + bce"},
    ],
)
def test_catalogue_losses_plug_into_the_model(losses):
    torch.manual_seed(0)
    model = create_model("yolact_tiny", input_size=64, num_classes=2, **losses).train()
    images, targets = _batch(64)
    out = model(images, targets)
    total = sum(v for k, v in out.items() if k.startswith("loss_"))
    assert torch.isfinite(total) and out["loss_mask"] > 0
    total.backward()
    assert torch.isfinite(model.head.pred.weight.grad).all()
