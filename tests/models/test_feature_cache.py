"""The frozen backbone's feature cache: exact hits, misses on any change of image or context, a
bounded size, and a YOLACT that trains to the same losses with it as without it."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from losslab.models import create_model
from losslab.models.feature_cache import FeatureCache, compute_context, module_fingerprint
from losslab.models.yolact.config import YolactConfig


class TwoLevels(nn.Module):
    """A stand-in backbone: two feature maps per image, and a count of the images it saw."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.seen = 0

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.seen += x.shape[0]
        a = self.conv(x)
        return [a, a[:, :2, ::2, ::2] * 2]


def test_hits_give_the_modules_own_output_and_skip_it():
    torch.manual_seed(0)
    net, cache = TwoLevels(), FeatureCache()
    images = torch.randn(3, 3, 16, 16)
    first = cache(net, images)
    assert [tuple(f.shape) for f in first] == [(3, 4, 8, 8), (3, 2, 4, 4)]
    direct = net(images)
    for got, want in zip(first, direct, strict=True):
        torch.testing.assert_close(got, want)
    seen = net.seen
    again = cache(net, images[[2, 0]])  # a new batch of known images: nothing computed
    assert net.seen == seen and (cache.hits, cache.misses) == (2, 3)
    assert torch.equal(again[0][0], first[0][2]) and torch.equal(again[1][1], first[1][0])


def test_any_change_of_pixels_or_context_misses():
    net, cache = TwoLevels(), FeatureCache()
    image = torch.randn(1, 3, 16, 16)
    cache(net, image, b"bf16")
    nudged = image.clone()
    nudged[0, 0, 0, 0] += 1e-6
    cache(net, nudged, b"bf16")
    cache(net, image, b"fp32")
    assert (cache.hits, cache.misses, len(cache)) == (0, 3, 3)


def test_channels_last_maps_stay_channels_last():
    net, cache = TwoLevels().to(memory_format=torch.channels_last), FeatureCache()
    images = torch.randn(2, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    for _ in range(2):  # a miss and a hit
        out = cache(net, images)
        assert out[0].is_contiguous(memory_format=torch.channels_last)


def test_a_full_cache_stops_growing_and_says_so_once(caplog):
    net = TwoLevels()
    one_image = 4 * 8 * 8 * 4 + 2 * 4 * 4 * 4  # bytes of one image's two float32 maps
    cache = FeatureCache(max_bytes=2 * one_image)
    with caplog.at_level(logging.WARNING, logger="losslab.models"):
        out = cache(net, torch.randn(5, 3, 16, 16))
    assert len(cache) == 2 and cache.bytes == 2 * one_image and out[0].shape[0] == 5
    assert sum("feature cache full" in r.message for r in caplog.records) == 1


def test_fingerprint_and_context_see_weights_dtype_and_threads():
    a, b = TwoLevels(), TwoLevels()
    assert module_fingerprint(a) == module_fingerprint(a) != module_fingerprint(b)
    x = torch.randn(1, 3, 8, 8)
    plain = compute_context(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert compute_context(x) != plain
    torch.set_num_threads(2)
    assert compute_context(x) != plain


def _yolact(cache: bool) -> nn.Module:
    torch.manual_seed(0)
    return create_model("yolact_tiny", num_classes=1, input_size=64, freeze_at=5, cache_features=cache)


def _batch() -> tuple[torch.Tensor, list[dict]]:
    g = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, 64, 64, generator=g)
    masks = torch.zeros(2, 1, 64, 64, dtype=torch.uint8)
    masks[0, 0, 8:40, 10:30] = 1
    masks[1, 0, 20:60, 5:50] = 1
    boxes = [torch.tensor([[10.0, 8, 30, 40]]), torch.tensor([[5.0, 20, 50, 60]])]
    targets = [{"boxes": boxes[i], "labels": torch.tensor([1]), "masks": masks[i]} for i in range(2)]
    return images, targets


def test_yolact_trains_to_the_same_losses_with_the_cache():
    plain, cached = _yolact(False), _yolact(True)
    cached.load_state_dict(plain.state_dict())
    cached.feature_cache = FeatureCache()  # a private cache, not the process-wide one
    images, targets = _batch()
    for step in range(2):  # misses, then hits
        losses = []
        for model in (plain, cached):
            model.train()
            torch.manual_seed(step)
            losses.append(model(images, targets))
        for key in ("loss_class", "loss_box", "loss_mask"):
            # equal on the CPUs tried; the margin allows a CPU whose convolutions round a batch of one
            # differently from a batch of two
            torch.testing.assert_close(losses[1][key], losses[0][key], rtol=1e-4, atol=1e-5)
    assert (cached.feature_cache.hits, cached.feature_cache.misses) == (2, 2)


def test_new_backbone_weights_are_not_served_old_features():
    model = _yolact(True)
    model.feature_cache = FeatureCache()
    images, targets = _batch()
    model.train()
    model(images, targets)
    state = model.state_dict()
    state = {k: v + 0.5 if k.startswith("backbone.") and v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state)
    model(images, targets)
    assert model.feature_cache.misses == 4 and model.feature_cache.hits == 0


def test_the_cache_needs_a_frozen_backbone_and_leaves_fused_models():
    with pytest.raises(ValueError, match="freeze_at=5"):
        YolactConfig(cache_features=True, freeze_at=2)
    model = _yolact(True)
    assert model.fuse_for_inference().feature_cache is None
