"""YOLACT building blocks on hand-made cases: anchors, box coding, matching, crops, NMS, mask upsampling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import nms

from losslab.models.yolact.anchors import level_scales, make_anchors
from losslab.models.yolact.backbone import ResNetBackbone, dcn_block_indices
from losslab.models.yolact.box_utils import box_mask, center_size, decode, encode, match, point_form
from losslab.models.yolact.detect import detect, fast_nms, standard_nms, upsample
from losslab.models.yolact.rescoring import MaskIoUNet


def test_anchors_order_centres_and_sizes():
    anchors = make_anchors([(2, 2)], (100, 100), [[10.0]], (1.0, 0.5, 2.0))
    assert anchors.shape == (2 * 2 * 3, 4)
    # Anchors vary fastest, then columns, then rows.
    assert torch.allclose(anchors[0, :2], torch.tensor([0.25, 0.25]))
    assert torch.allclose(anchors[3, :2], torch.tensor([0.75, 0.25]))
    assert torch.allclose(anchors[6, :2], torch.tensor([0.25, 0.75]))
    w, h = anchors[1, 2].item(), anchors[1, 3].item()  # aspect ratio 1/2: w = s*sqrt(.5), h = s/sqrt(.5)
    assert w == pytest.approx(0.1 * math.sqrt(0.5)) and h == pytest.approx(0.1 / math.sqrt(0.5))
    square = make_anchors([(1, 1)], (100, 100), [[10.0]], (1.0, 0.5, 2.0), square=True)
    assert torch.equal(square[:, 2], square[:, 3])


def test_yolact_plus_scales_per_level():
    assert level_scales(24, 1, 550) == [24.0]
    assert level_scales(24, 3, 550) == pytest.approx([24, 24 * 2 ** (1 / 3), 24 * 2 ** (2 / 3)])
    assert level_scales(24, 1, 275) == [12.0]
    assert level_scales(24, 1, 512, reference=256) == [48.0]


def test_encode_decode_round_trip():
    anchors = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.6, 0.1, 0.3]])
    boxes = torch.tensor([[0.35, 0.42, 0.61, 0.7], [0.2, 0.4, 0.33, 0.9]])
    offsets = encode(boxes, anchors)
    assert torch.allclose(decode(offsets, anchors), boxes, atol=1e-6)
    # A box equal to its anchor encodes to zero.
    assert torch.allclose(encode(point_form(anchors), anchors), torch.zeros(2, 4), atol=1e-5)
    # Hand value: centre shifted by 0.02 with anchor width 0.2 and variance 0.1 -> 1.0.
    shifted = point_form(torch.tensor([[0.52, 0.5, 0.2, 0.2]]))
    assert encode(shifted, anchors[:1])[0, 0].item() == pytest.approx(1.0, rel=1e-5)
    assert torch.allclose(center_size(point_form(anchors)), anchors)


def test_match_thresholds_forced_match_and_crowd():
    gt = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    anchors_xyxy = torch.tensor(
        [
            [0.0, 0.0, 0.5, 0.5],  # IoU 1 -> positive
            [0.0, 0.0, 0.5, 0.6],  # IoU 0.833 -> positive
            [0.0, 0.0, 0.5, 1.1],  # IoU 0.4545 -> neutral
            [0.6, 0.6, 1.0, 1.0],  # IoU 0 -> background
        ]
    )
    conf, idx, loc = match(gt, torch.tensor([3]), center_size(anchors_xyxy))
    assert conf.tolist() == [3, 3, -1, 0]
    assert idx[:2].tolist() == [0, 0]
    assert torch.allclose(loc[0], torch.zeros(4), atol=1e-6)
    # A ground truth whose best IoU is low still claims its best anchor.
    far = torch.tensor([[0.0, 0.0, 0.5, 2.5]])  # best IoU 0.44 (anchor 2), others < 0.4
    conf, _, _ = match(far, torch.tensor([1]), center_size(anchors_xyxy))
    assert conf.tolist() == [0, 0, 1, 0]
    # A background anchor inside a crowd region becomes neutral (intersection / anchor area).
    crowd = torch.tensor([[0.55, 0.55, 1.0, 1.0]])
    conf, _, _ = match(gt, torch.tensor([3]), center_size(anchors_xyxy), crowd_boxes=crowd)
    assert conf.tolist() == [3, 3, -1, -1]
    # No ground truth: all background.
    conf, _, _ = match(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), center_size(anchors_xyxy))
    assert conf.tolist() == [0, 0, 0, 0]


def test_box_mask_matches_a_loop():
    boxes = torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.7, 0.0, 1.0, 0.3]])
    m = box_mask(boxes, 10, 10, padding=1)
    ref = torch.zeros(2, 10, 10)
    for i, (x1, y1, x2, y2) in enumerate((boxes * 10).tolist()):
        for r in range(10):
            for c in range(10):
                ref[i, r, c] = float(x1 - 1 <= c < x2 + 1 and y1 - 1 <= r < y2 + 1)
    assert torch.equal(m, ref)


def _random_boxes(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 0.8
    wh = torch.rand(n, 2, generator=g) * 0.3 + 0.05
    return torch.cat([xy, xy + wh], dim=1)


def test_fast_nms_equals_torchvision_nms_without_chains():
    """One class, clusters of boxes around well separated centres: inside a cluster every box
    overlaps the best one above the threshold, and boxes of different clusters do not overlap,
    so no suppressed box would suppress another one. Fast NMS and greedy NMS must then agree."""
    g = torch.Generator().manual_seed(0)
    boxes = []
    for cx in (0.15, 0.5, 0.85):
        for cy in (0.15, 0.5, 0.85):
            base = torch.tensor([cx - 0.1, cy - 0.1, cx + 0.1, cy + 0.1])
            for _ in range(4):
                boxes.append(base + (torch.rand(4, generator=g) - 0.5) * 0.02)
    boxes = torch.stack(boxes)
    scores = torch.rand(len(boxes), generator=g)
    keep_fast, classes, kept_scores = fast_nms(boxes, scores[None], iou_thresh=0.5, top_k=200)
    keep_tv = nms(boxes, scores, 0.5)
    assert keep_fast.tolist() == keep_tv.tolist()
    assert len(keep_fast) == 9 and classes.eq(0).all()
    assert torch.equal(kept_scores, scores[keep_tv])
    # Standard NMS through batched_nms gives the same here too.
    keep_std, _, _ = standard_nms(boxes, scores[None], 0.5, 200, conf_thresh=0.0)
    assert keep_std.tolist() == keep_tv.tolist()


def test_fast_nms_suppresses_more_than_greedy_on_a_chain():
    """A chain a > b > c where a suppresses b and b (itself suppressed) overlaps c: greedy NMS
    keeps c, Fast NMS drops it (YOLACT accepts this for speed)."""
    boxes = torch.tensor([[0.0, 0.0, 0.4, 0.4], [0.1, 0.0, 0.5, 0.4], [0.2, 0.0, 0.6, 0.4]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]
    assert fast_nms(boxes, scores[None], 0.5)[0].tolist() == [0]


def test_fast_nms_is_per_class_and_top_k():
    boxes = torch.tensor([[0.0, 0.0, 0.4, 0.4], [0.0, 0.0, 0.4, 0.41]])
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8]])  # class 0 prefers box 0, class 1 box 1
    keep, classes, s = fast_nms(boxes, scores, 0.5)
    assert sorted(zip(keep.tolist(), classes.tolist(), strict=True)) == [(0, 0), (1, 1)]
    assert s.tolist() == pytest.approx([0.9, 0.8])
    keep, _, _ = fast_nms(_random_boxes(50, 1), torch.rand(1, 50), 1.0, top_k=7)
    assert len(keep) == 7


def test_detect_output_contract():
    torch.manual_seed(0)
    A, C, k = 30, 3, 4
    anchors = center_size(_random_boxes(A, 2))
    loc = torch.randn(1, A, 4) * 0.1
    conf = torch.randn(1, A, C + 1)
    conf[0, :5, 2] = 8.0  # five confident class-2 anchors
    coef = torch.randn(1, A, k)
    protos = torch.rand(1, k, 16, 16)
    for fast in (True, False):
        (det,) = detect(
            loc, conf, coef, protos, anchors, (64, 64), conf_thresh=0.5, max_detections=4, use_fast_nms=fast
        )
        m = det["boxes"].shape[0]
        assert 1 <= m <= 4
        assert det["masks"].shape == (m, 64, 64) and det["masks"].dtype == torch.float32
        assert det["labels"].min() >= 1 and det["labels"].max() <= C
        assert (det["masks"] >= 0).all() and (det["masks"] <= 1).all()
        assert (det["boxes"] >= 0).all() and (det["boxes"] <= 64).all()
        assert det["scores"].min() > 0.5


def test_dcn_interval_and_backbone_outputs():
    assert dcn_block_indices(4, 3) == [0, 3]
    assert dcn_block_indices(23, 3) == [0, 3, 6, 9, 12, 15, 18, 21]
    assert dcn_block_indices(3, 3) == [0]
    bb = ResNetBackbone("resnet18", dcn_stages=(3, 4), dcn_interval=1)
    names = [n for n, m in bb.named_modules() if type(m).__name__ == "DeformConv3x3"]
    assert names == ["layer3.0.conv2", "layer3.1.conv2", "layer4.0.conv2", "layer4.1.conv2"]
    outs = bb(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
    outs[-1].mean().backward()
    assert bb.layer4[0].conv2.offset.weight.grad is not None


def test_maskiou_net_shapes_and_small_inputs():
    net = MaskIoUNet(num_classes=5)
    assert net(torch.rand(3, 1, 138, 138)).shape == (3, 5)
    out = net(torch.rand(2, 1, 32, 32))  # padded up to the smallest side the convs accept
    assert out.shape == (2, 5) and (out >= 0).all()


@pytest.mark.parametrize(
    ("small", "out"),
    [((64, 64), (256, 256)), ((32, 32), (128, 128)), ((64, 48), (256, 96)), ((5, 7), (15, 21)), ((9, 9), (9, 27))],
)
def test_whole_factor_upsample_equals_interpolate(small, out):
    """The lerp path for whole factors (prototypes at a quarter of the input) gives F.interpolate's
    bilinear (align_corners=False) numbers, borders included."""
    torch.manual_seed(0)
    masks = torch.rand(6, *small)
    want = F.interpolate(masks[None], out, mode="bilinear", align_corners=False)[0]
    got = upsample(masks, out)
    assert got.shape == (6, *out) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_upsample_stays_in_the_unit_interval_and_keeps_other_sizes():
    # sigmoid outputs of exactly 0 and 1 and values an ulp below 1: no lerp steps past the ends
    torch.manual_seed(0)
    below_one = torch.nextafter(torch.ones(()), torch.zeros(()))
    masks = torch.stack([torch.ones(16, 16), below_one.expand(16, 16), torch.rand(16, 16).round()])
    masks[0, :, :5] = 0.0
    up = upsample(masks, (64, 64))
    assert up.min() >= 0 and up.max() <= 1
    assert torch.equal(up[0][:, 24:], torch.ones(64, 40)) and torch.equal(up[0][:, :18], torch.zeros(64, 18))
    assert torch.equal(up[1], below_one.expand(64, 64))
    # a size that is no whole multiple (550 px from 138-px prototypes) goes through interpolate
    odd = torch.rand(2, 138, 138)
    want = F.interpolate(odd[None], (550, 550), mode="bilinear", align_corners=False)[0].clamp(0, 1)
    torch.testing.assert_close(upsample(odd, (550, 550)), want, rtol=0, atol=0)
    assert upsample(torch.rand(0, 16, 16), (64, 64)).shape == (0, 64, 64)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_fpn_one_pixel_downsample_trains_under_cpu_bf16_with_finite_gradients(memory_format):
    """At 64 px P6 is 1x1: torch's bf16 weight gradient of the stride-2 conv making P7 from it picked
    up NaN in padding-only taps from recycled memory (19 of these 20 steps, contiguous format, when
    the conv ran in bf16); the FPN runs that conv in float32."""
    from losslab.models.yolact.fpn import FPN

    torch.set_num_threads(2)  # the fixture restores one thread
    torch.manual_seed(0)
    fpn = FPN([40, 112, 320], 128).to(memory_format=memory_format)
    feats = [torch.randn(2, c, s, s).contiguous(memory_format=memory_format) for c, s in ((40, 8), (112, 4), (320, 2))]
    for _ in range(20):
        fpn.zero_grad()
        garbage = [torch.full((n,), float("nan")) for n in (128 * 128 * 9, 2 * 128 * 128 * 9, 4096, 65536)]
        del garbage  # freed memory full of NaN, as a training step leaves it for the next
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outs = fpn(feats)
        assert [tuple(o.shape[-2:]) for o in outs] == [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
        sum(o.float().sum() for o in outs).backward()
        bad = [n for n, p in fpn.named_parameters() if not torch.isfinite(p.grad).all()]
        assert not bad, bad
    assert outs[-1].dtype == torch.float32 and outs[-2].dtype == torch.bfloat16  # only the 1x1 input's conv
