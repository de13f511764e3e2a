"""losslab's YOLACT loss against a transcription of dbolya/yolact's ``MultiBoxLoss.forward``.

The oracle below restates, in plain torch, what the original computes for ``yolact_base_config`` and
``yolact_plus_base_config`` (``layers/modules/multibox_loss.py`` and the parts of ``layers/box_utils.py``
it calls; values from ``data/config.py``): IoU matching at 0.5 / 0.4 with the greedy best-pair loop
and crowds at 0.7 (``use_change_matching`` and ``use_prediction_matching`` off); smooth L1 on SSD
offsets (variances 0.1, 0.2) x ``bbox_alpha`` 1.5; OHEM cross-entropy at 3:1 (``use_focal_loss``,
``ohem_use_most_confident``, ``use_class_balanced_conf`` off) x ``conf_alpha`` 1; the ``lincomb`` mask
loss with sigmoid masks, ``mask_proto_crop`` (padding 1), binarised downsampled targets,
``mask_proto_normalize_emulate_roi_pooling``, ``masks_to_train`` and its rescaling, x ``mask_alpha``
6.125; the semantic segmentation loss x 1; for YOLACT++ the mask-IoU loss x 25 with
``discard_mask_area`` 25. B, C, M and I are divided by the batch's positives, S by the batch size.
Only the branches those two configs take are transcribed.

Both run on the same float32 tensors; the inputs are built once per case, the crowds last as the
original's ``num_crowds`` expects. ``torch.randperm`` draws the mask subsample in both, so each call
starts from the same seed.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from losslab.models.yolact.anchors import level_scales, make_anchors
from losslab.models.yolact.config import YolactConfig
from losslab.models.yolact.multibox_loss import MultiBoxLoss, YolactOutputs
from losslab.models.yolact.presets import PRESETS
from losslab.models.yolact.rescoring import MaskIoUNet

S, K = 256, 32  # input side (prototypes S/4 = 64, enough for the mask-IoU net unpadded), prototypes
STRIDES = (8, 16, 32, 64, 128)  # P3..P7
# float32 sums of a few thousand terms in another order (and BCE-with-logits against log(sigmoid)):
# at most 1.3e-7 relative on one x86 CPU; 1e-5 leaves room for other CPUs and torch versions.
REL = 1e-5
#: What the loss reads from dbolya/yolact's data/config.py (the weights are written in the oracle).
DBOLYA = {
    "yolact_base": {"pos": 0.5, "neg": 0.4, "crowd": 0.7, "masks_to_train": 100, "use_maskiou": False},
    "yolact_plus_base": {"pos": 0.5, "neg": 0.4, "crowd": 0.7, "masks_to_train": 100, "use_maskiou": True},
}
DISCARD_MASK_AREA = 5 * 5  # yolact_plus_base_config


# ---------------------------------------------------------------- dbolya/yolact, transcribed
def _to_corners(b: Tensor) -> Tensor:  # point_form: (cx, cy, w, h) -> (x1, y1, x2, y2)
    return torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1)


def _to_centre(b: Tensor) -> Tensor:  # center_size: (x1, y1, x2, y2) -> (cx, cy, w, h)
    return torch.cat([(b[:, 2:] + b[:, :2]) / 2, b[:, 2:] - b[:, :2]], 1)


def _overlap(a: Tensor, b: Tensor, over_a: bool = False) -> Tensor:
    """jaccard (intersect / union), or intersect / area(a) for ``iscrowd``: ``(n, 4), (m, 4) -> (n, m)``."""
    wh = (torch.min(a[:, None, 2:], b[None, :, 2:]) - torch.max(a[:, None, :2], b[None, :, :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None]
    area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None, :]
    return inter / area_a if over_a else inter / (area_a + area_b - inter)


def _assign(truths: Tensor, label0: Tensor, priors: Tensor, crowds: Tensor | None, cfg: dict):
    """box_utils.match: each prior's best truth; each truth, best pair first, claims its best prior."""
    corners = _to_corners(priors)
    iou = _overlap(truths, corners)
    best, best_idx = iou.max(0)
    for _ in range(iou.size(0)):
        row_best, row_arg = iou.max(1)
        j = row_best.max(0)[1]
        i = row_arg[j]
        iou[:, i] = -1
        iou[j, :] = -1
        best[i] = 2
        best_idx[i] = j
    conf = label0[best_idx] + 1
    conf[best < cfg["pos"]] = -1
    conf[best < cfg["neg"]] = 0
    if crowds is not None:  # crowd_iou_threshold 0.7 < 1
        conf[(conf <= 0) & (_overlap(corners, crowds, over_a=True).max(1)[0] > cfg["crowd"])] = -1
    m = truths[best_idx]
    cxcy = ((m[:, :2] + m[:, 2:]) / 2 - priors[:, :2]) / (0.1 * priors[:, 2:])  # encode, variances 0.1 / 0.2
    wh = torch.log((m[:, 2:] - m[:, :2]) / priors[:, 2:]) / 0.2
    return torch.cat([cxcy, wh], 1), conf, best_idx


def _ohem(conf: Tensor, conf_t: Tensor, pos: Tensor) -> Tensor:
    """ohem_conf_loss: rank the negatives by log_sum_exp - x0 (one max over the batch), keep 3 per positive."""
    nb, na, nc = conf.shape
    with torch.no_grad():
        flat = conf.reshape(-1, nc)
        top = flat.max()
        score = (torch.log(torch.exp(flat - top).sum(1)) + top - flat[:, 0]).view(nb, na)
        score[pos | (conf_t < 0)] = 0
        rank = score.sort(1, descending=True)[1].sort(1)[1]
        neg = rank < (3 * pos.long().sum(1, keepdim=True)).clamp(max=na - 1)
        keep = pos | (neg & ~pos & (conf_t >= 0))
    return F.cross_entropy(conf[keep], conf_t[keep], reduction="sum")


def _crop(m: Tensor, boxes: Tensor) -> Tensor:
    """box_utils.crop (padding 1, no cast) of ``(h, w, n)`` masks to relative ``(n, 4)`` boxes."""
    h, w, _ = m.shape

    def span(a: Tensor, b: Tensor, size: int) -> tuple[Tensor, Tensor]:  # sanitize_coordinates
        a, b = a * size, b * size
        return (torch.min(a, b) - 1).clamp(min=0), (torch.max(a, b) + 1).clamp(max=size)

    x1, x2 = span(boxes[:, 0], boxes[:, 2], w)
    y1, y2 = span(boxes[:, 1], boxes[:, 3], h)
    cols = torch.arange(w, dtype=x1.dtype).view(1, -1, 1)
    rows = torch.arange(h, dtype=y1.dtype).view(-1, 1, 1)
    inside = (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)
    return m * inside.to(m.dtype)


def _lincomb_mask_loss(pos, idx_t, gt_box, coef, proto, gts, labels, cfg):
    """lincomb_mask_loss: the summed mask loss before ``mask_alpha / h / w``, and the mask-IoU net's
    inputs, targets and 0-based labels (YOLACT++)."""
    h, w = proto.shape[1:3]
    loss_m, iou_in, iou_t, iou_lab = 0, [], [], []
    for b in range(pos.size(0)):
        sel = pos[b]
        if not sel.any():
            continue
        with torch.no_grad():
            small = F.interpolate(gts[b][None], (h, w), mode="bilinear", align_corners=False)[0]
            small = small.permute(1, 2, 0).gt(0.5).to(proto.dtype)
        which, boxes, c = idx_t[b, sel], gt_box[b, sel], coef[b, sel]
        before = c.size(0)
        if before > cfg["masks_to_train"]:
            pick = torch.randperm(before)[: cfg["masks_to_train"]]
            c, which, boxes = c[pick], which[pick], boxes[pick]
        target, lab = small[:, :, which], labels[b][which]
        m = _crop(torch.sigmoid(proto[b] @ c.t()), boxes)
        bce = F.binary_cross_entropy(m.clamp(0, 1), target, reduction="none")
        size = _to_centre(boxes)
        per = bce.sum((0, 1)) / (size[:, 2] * w) / (size[:, 3] * h) * (h * w)
        if before > c.size(0):
            per = per * (before / c.size(0))
        loss_m = loss_m + per.sum()
        if cfg["use_maskiou"]:
            big = target.sum((0, 1)) > DISCARD_MASK_AREA
            if not big.any():
                continue
            m, target, lab = m[:, :, big], target[:, :, big], lab[big]
            iou_in.append(m.permute(2, 0, 1)[:, None])
            hard = m.gt(0.5).to(m.dtype)
            inter = (hard * target).sum((0, 1))
            iou_t.append(inter / (hard.sum((0, 1)) + target.sum((0, 1)) - inter))
            iou_lab.append(lab)
    return loss_m, iou_in, iou_t, iou_lab


def _semantic_loss(segm: Tensor, gts: list[Tensor], labels: list[Tensor]) -> Tensor:
    """semantic_segmentation_loss: BCE on the per-class union of the binarised downsampled masks, ÷ hs ÷ ws."""
    loss_s = 0
    for b in range(segm.size(0)):
        with torch.no_grad():
            small = F.interpolate(gts[b][None], segm.shape[-2:], mode="bilinear", align_corners=False)[0].gt(0.5)
            seg_t = torch.zeros_like(segm[b])
            for o in range(small.size(0)):
                seg_t[labels[b][o]] = torch.max(seg_t[labels[b][o]], small[o].to(seg_t.dtype))
        loss_s = loss_s + F.binary_cross_entropy_with_logits(segm[b], seg_t, reduction="sum")
    return loss_s / segm.size(2) / segm.size(3)


def dbolya_multibox_loss(pred: dict, targets: list[Tensor], masks: list[Tensor], num_crowds: list[int], cfg: dict):
    """``MultiBoxLoss.forward`` for yolact_base / yolact_plus_base: ``{"B", "C", "M", "S"[, "I"]}``.

    ``pred``: loc ``(B, A, 4)``, conf ``(B, A, C+1)``, mask ``(B, A, k)``, priors ``(A, 4)``, proto
    ``(B, h, w, k)``, segm ``(B, C, hs, ws)``; ``targets[b]``: ``(n, 5)`` relative x1 y1 x2 y2 and a
    0-based label, crowds last; ``masks[b]``: ``(n, H, W)``.
    """
    loc, proto = pred["loc"], pred["proto"]
    matched, labels, gts = [], [], []
    for b in range(loc.size(0)):
        n = targets[b].size(0) - num_crowds[b]
        truths, label0 = targets[b][:n, :4], targets[b][:n, 4].long()
        crowds = targets[b][n:, :4] if num_crowds[b] else None
        lt, ct, it = _assign(truths, label0, pred["priors"], crowds, cfg)
        matched.append((lt, ct, it, truths[it]))
        labels.append(label0)
        gts.append(masks[b][:n])
    loc_t, conf_t, idx_t, gt_box = (torch.stack(x) for x in zip(*matched, strict=True))
    pos = conf_t > 0

    out = {"B": F.smooth_l1_loss(loc[pos], loc_t[pos], reduction="sum") * 1.5}
    loss_m, iou_in, iou_t, iou_lab = _lincomb_mask_loss(pos, idx_t, gt_box, pred["mask"], proto, gts, labels, cfg)
    out["M"] = loss_m * 6.125 / proto.size(1) / proto.size(2)
    out["C"] = _ohem(pred["conf"], conf_t, pos)
    if cfg["use_maskiou"] and iou_t:  # maskious_to_train is -1: no subsample
        iou_p = cfg["maskiou_net"](torch.cat(iou_in)).gather(1, torch.cat(iou_lab)[:, None]).view(-1)
        out["I"] = F.smooth_l1_loss(iou_p, torch.cat(iou_t), reduction="sum") * 25
    out["S"] = _semantic_loss(pred["segm"], gts, labels)
    n_pos = pos.sum().float()
    return {k: v / (loc.size(0) if k == "S" else n_pos) for k, v in out.items()}


# ---------------------------------------------------------------- the cases
def _anchors(cfg: YolactConfig) -> Tensor:
    """The preset's anchors at S px: yolact_base 1 scale per level, square (v1's bug); yolact_plus_base
    3 scales, true aspect ratios."""
    scales = [level_scales(s, cfg.scales_per_level, S, cfg.anchor_reference_size) for s in cfg.anchor_scales]
    sizes = [(S // s, S // s) for s in STRIDES]
    return make_anchors(sizes, (S, S), scales, cfg.aspect_ratios, square=cfg.square_anchors)


def _scene(seed: int, cfg: YolactConfig, objects: tuple[int, ...], crowds: tuple[int, ...]):
    """Per image ``objects[b]`` elliptic masks inside their boxes (8..140 px, mostly small), then
    ``crowds[b]`` crowd regions; random outputs at YOLACT's activations (tanh coefficients, ReLU
    prototypes)."""
    g = torch.Generator().manual_seed(seed)
    anchors = _anchors(cfg)
    B, A, C = len(objects), anchors.shape[0], cfg.num_classes
    yy, xx = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
    targets = []
    for n, nc in zip(objects, crowds, strict=True):
        wh = 8 + torch.rand(n + nc, 2, generator=g) ** 2 * 132
        xy = torch.rand(n + nc, 2, generator=g) * (S - wh)
        boxes = torch.cat([xy, xy + wh], 1)
        c, r = ((boxes[:, :2] + boxes[:, 2:]) / 2)[:, :, None, None], (wh / 2)[:, :, None, None]
        inside = ((xx - c[:, 0]) / r[:, 0]) ** 2 + ((yy - c[:, 1]) / r[:, 1]) ** 2 <= 1
        targets.append(
            {
                "boxes": boxes,
                "labels": torch.randint(1, C + 1, (n + nc,), generator=g),
                "masks": inside.to(torch.uint8),
                "iscrowd": torch.arange(n + nc) >= n,
            }
        )
    conf = torch.randn(B, A, C + 1, generator=g)
    # Anchors that overlap an object or lie in a crowd look like one: a lower background logit makes
    # them the hardest negatives, so that OHEM meets the neutral and crowd-covered anchors.
    corners = _to_corners(anchors)
    for b, t in enumerate(targets):
        rel, crowd = t["boxes"] / S, t["iscrowd"]
        likeness = _overlap(corners, rel[~crowd]).amax(1)
        if crowd.any():
            likeness = torch.maximum(likeness, _overlap(corners, rel[crowd], over_a=True).amax(1))
        conf[b, :, 0] -= 10 * likeness
    out = YolactOutputs(
        loc=torch.randn(B, A, 4, generator=g) * 0.5,
        conf=conf,
        coef=torch.tanh(torch.randn(B, A, K, generator=g)),
        # Mask logits stay below 9 in size: past about 17 the original's float32 sigmoid is exactly 1 and its
        # BCE (log clamped at -100) overstates the loss, where losslab's BCE-with-logits does not.
        protos=torch.relu(torch.randn(B, K, S // 4, S // 4, generator=g)) * 0.5,
        anchors=anchors,
        segm=torch.randn(B, C, S // 8, S // 8, generator=g),
    )
    return out, targets


def _original_inputs(out: YolactOutputs, targets: list[dict]) -> tuple[dict, list, list, list]:
    """The same tensors in the original's layout: channels-last prototypes, ``[x1, y1, x2, y2, label - 1]``
    relative to the image, float masks, crowds last and counted."""
    pred = {"loc": out.loc, "conf": out.conf, "mask": out.coef, "priors": out.anchors, "segm": out.segm}
    pred["proto"] = out.protos.permute(0, 2, 3, 1).contiguous()
    scale = torch.tensor([S, S, S, S], dtype=torch.float32)
    rows = [torch.cat([t["boxes"] / scale, (t["labels"] - 1)[:, None].float()], 1) for t in targets]
    return pred, rows, [t["masks"].float() for t in targets], [int(t["iscrowd"].sum()) for t in targets]


CASES = {
    # name: (seed, preset, objects per image, crowds per image, classes, masks_to_train)
    "base-1img-1obj-1cls": (1, "yolact_base", (1,), (0,), 1, 100),
    "base-2img-3cls": (2, "yolact_base", (3, 5), (0, 0), 3, 100),
    "base-3img-crowd-80cls": (3, "yolact_base", (2, 4, 1), (0, 1, 0), 80, 100),
    "plus-1img-5obj-80cls": (4, "yolact_plus_base", (5,), (0,), 80, 100),
    "plus-2img-crowd-3cls": (5, "yolact_plus_base", (1, 3), (1, 0), 3, 100),
    "plus-3img-1cls": (6, "yolact_plus_base", (5, 2, 4), (0, 0, 0), 1, 100),
    # fewer masks to train than positives: the random subsample and its #pos / #drawn rescaling
    "plus-3img-masks_to_train4": (7, "yolact_plus_base", (4, 5, 3), (0, 0, 1), 80, 4),
}
TERMS = {"B": "loss_box", "C": "loss_class", "M": "loss_mask", "S": "loss_semantic", "I": "loss_maskiou"}


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_losslab_yolact_loss_equals_dbolya_multibox_loss(name):
    seed, preset, objects, crowds, num_classes, masks_to_train = CASES[name]
    cfg = YolactConfig(**{**PRESETS[preset][0], "num_classes": num_classes, "masks_to_train": masks_to_train})
    out, targets = _scene(seed, cfg, objects, crowds)
    torch.manual_seed(100 + seed)
    net = MaskIoUNet(num_classes) if cfg.use_maskiou else None  # one net, standing in for net.maskiou_net

    torch.manual_seed(seed)  # the same masks_to_train draw in both
    ours = MultiBoxLoss(cfg)(out, targets, maskiou_net=net)
    torch.manual_seed(seed)
    original = {**DBOLYA[preset], "masks_to_train": masks_to_train, "maskiou_net": net}
    theirs = dbolya_multibox_loss(*_original_inputs(out, targets), original)

    assert set(theirs) == ({"B", "C", "M", "S", "I"} if original["use_maskiou"] else {"B", "C", "M", "S"})
    errors = {k: _rel(ours[TERMS[k]].item(), v.item()) for k, v in theirs.items()}
    errors["total"] = _rel(sum(ours[TERMS[k]].item() for k in theirs), sum(v.item() for v in theirs.values()))
    print(name, "positives", int(ours["num_positives"]), {k: f"{e:.1e}" for k, e in errors.items()})
    assert all(math.isfinite(v.item()) and v.item() > 0 for v in theirs.values())
    assert max(errors.values()) < REL, errors
