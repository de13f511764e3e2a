"""Mask R-CNN with a catalogue mask loss: the RoI mask loss on hand-made tensors, torchvision
parity, the model interface, crowd handling, presets and overfitting two tiny images."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torchvision.models.detection.roi_heads import RoIHeads, maskrcnn_loss

from losslab.losses import create_loss
from losslab.models import create_model, get_model_info, model_config
from losslab.models.maskrcnn import BACKBONES, PassThroughTransform, roi_mask_loss, roi_mask_targets
from tests._fit import below, check, fall, precision

SIZE = 64


def _roi_case(seed: int = 0):
    """Two images (3 classes): random masks, proposals, matches, logits ``(5, 4, 28, 28)``."""
    g = torch.Generator().manual_seed(seed)
    gt_masks = [(torch.rand(2, 32, 32, generator=g) > 0.5).to(torch.uint8), torch.zeros(1, 32, 32, dtype=torch.uint8)]
    gt_masks[1][0, 4:20, 6:24] = 1
    gt_labels = [torch.tensor([1, 3]), torch.tensor([2])]
    proposals = [torch.tensor([[0.0, 0, 16, 16], [8, 4, 30, 28], [2, 2, 31, 31]]), torch.tensor([[4.0, 2, 26, 22]] * 2)]
    matched = [torch.tensor([0, 1, 1]), torch.tensor([0, 0])]
    logits = torch.randn(5, 4, 28, 28, generator=g)
    return logits, proposals, gt_masks, gt_labels, matched


def test_bce_equals_torchvisions_maskrcnn_loss():
    logits, proposals, masks, labels, matched = _roi_case()
    ours = roi_mask_loss(create_loss("bce"), logits, proposals, masks, labels, matched)
    theirs = maskrcnn_loss(logits, proposals, masks, labels, matched)
    assert torch.allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("spec", ["dice", "bce + 2*dice", "label_smoothing_bce", "0.5*mse + lovasz_hinge"])
def test_any_spec_is_the_catalogue_loss_on_the_gt_class_logits(spec):
    logits, proposals, masks, labels, matched = _roi_case()
    loss = create_loss(spec)
    targets, roi_labels = roi_mask_targets(proposals, masks, labels, matched, 28)
    assert roi_labels.tolist() == [1, 3, 3, 2, 2]
    expected = loss(logits[torch.arange(5), roi_labels], targets)
    assert torch.allclose(roi_mask_loss(loss, logits, proposals, masks, labels, matched), expected)


def test_hand_made_targets_and_class_selection():
    # A full mask seen through a box inside it gives an all-ones target, an empty mask all zeros;
    # only the ground-truth class's logits may matter.
    masks = [torch.ones(1, 16, 16, dtype=torch.uint8), torch.zeros(1, 16, 16, dtype=torch.uint8)]
    labels = [torch.tensor([2]), torch.tensor([1])]
    proposals = [torch.tensor([[4.0, 4, 12, 12]]), torch.tensor([[4.0, 4, 12, 12]])]
    matched = [torch.tensor([0]), torch.tensor([0])]
    targets, _ = roi_mask_targets(proposals, masks, labels, matched, 8)
    assert torch.equal(targets, torch.stack([torch.ones(8, 8), torch.zeros(8, 8)]))
    logits = torch.full((2, 3, 8, 8), -50.0)
    logits[0, 2] = 50.0  # image 1, ground-truth class 2: confidently right
    logits[1, 2] = 50.0  # image 2, class 2 is not its class (1): ignored
    loss = create_loss("bce + dice")
    assert roi_mask_loss(loss, logits, proposals, masks, labels, matched).item() < 1e-4
    swapped = logits[:, [0, 2, 1]]  # now each image's ground-truth channel is confidently wrong
    assert roi_mask_loss(loss, swapped, proposals, masks, labels, matched).item() > 20.0


def test_no_positive_roi_gives_a_zero_that_keeps_the_graph():
    logits = torch.randn(0, 2, 28, 28, requires_grad=True)
    empty = [torch.zeros(0, 4)]
    value = roi_mask_loss(
        create_loss("dice"),
        logits,
        empty,
        [torch.zeros(0, 8, 8)],
        [torch.zeros(0, dtype=torch.long)],
        [torch.zeros(0, dtype=torch.long)],
    )
    assert value.item() == 0.0 and value.requires_grad


def test_pass_through_transform_keeps_images_and_targets():
    t = PassThroughTransform(SIZE)
    images = [torch.randn(3, SIZE, SIZE), torch.randn(3, SIZE, SIZE)]
    targets = [{"boxes": torch.tensor([[1.0, 2, 30, 40]]), "masks": torch.ones(1, SIZE, SIZE, dtype=torch.uint8)}] * 2
    for mode in (True, False):
        t.train(mode)
        batch, out = t(images, targets)
        assert torch.equal(batch.tensors, torch.stack(images)) and batch.image_sizes == [(SIZE, SIZE)] * 2
        assert torch.equal(out[0]["boxes"], targets[0]["boxes"]) and out[0]["masks"].shape == (1, SIZE, SIZE)


def test_pass_through_transform_pads_to_the_stride_and_keeps_the_true_size():
    t = PassThroughTransform(40).eval()
    image = torch.randn(3, 40, 40)
    batch, _ = t([image])
    assert batch.tensors.shape == (1, 3, 64, 64) and batch.image_sizes == [(40, 40)]
    assert torch.equal(batch.tensors[0, :, :40, :40], image) and batch.tensors[0, :, 40:].abs().sum() == 0


def test_backbone_stages_freeze_as_configured():
    model = _tiny(trainable_layers=2)
    frozen = {n.split(".")[0] for n, p in model.backbone.body.named_parameters() if not p.requires_grad}
    assert frozen == {"conv1", "bn1", "layer1", "layer2"}
    assert all(p.requires_grad for p in model.roi_heads.parameters())
    assert all(isinstance(getattr(torchvision.models, w), type) for _, w in BACKBONES.values())


def _two_images():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, SIZE, SIZE, generator=g) * 0.2
    masks = torch.zeros(2, 1, SIZE, SIZE, dtype=torch.uint8)
    masks[0, 0, 10:34, 8:44] = 1
    masks[1, 0, 24:60, 20:50] = 1
    images += 1.5 * masks.float()
    targets = [
        {
            "boxes": torch.tensor([[8.0, 10, 44, 34]]),
            "labels": torch.tensor([1]),
            "masks": masks[0],
            "iscrowd": torch.tensor([False]),
        },
        {
            "boxes": torch.tensor([[20.0, 24, 50, 60]]),
            "labels": torch.tensor([1]),
            "masks": masks[1],
            "iscrowd": torch.tensor([False]),
        },
    ]
    return images, targets


def _tiny(**kw):
    return create_model("maskrcnn_tiny", input_size=SIZE, **kw)


def test_training_output_is_five_weighted_terms():
    images, targets = _two_images()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        base = _tiny().train()
        state = base.state_dict()
        torch.manual_seed(1)
        plain = base(images, targets)
        weighted = _tiny(mask_weight=2.0, cls_weight=0.0, box_weight=0.5, rpn_weight=3.0).train()
        weighted.load_state_dict(state)
        torch.manual_seed(1)
        scaled = weighted(images, targets)
    keys = {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    assert set(plain) == keys and all(torch.isfinite(v) for v in plain.values())
    factor = {
        "loss_classifier": 0.0,
        "loss_box_reg": 0.5,
        "loss_mask": 2.0,
        "loss_objectness": 3.0,
        "loss_rpn_box_reg": 3.0,
    }
    for k in keys:
        assert scaled[k].item() == pytest.approx(factor[k] * plain[k].item(), rel=1e-4, abs=1e-7)


def test_hybrid_mask_loss_terms_are_logged_as_weighted_in_loss_mask():
    images, targets = _two_images()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        out = _tiny(mask_loss="bce + 0.5*dice", mask_weight=2.0).train()(images, targets)
    terms = {k: v for k, v in out.items() if k.startswith("mask/")}
    assert set(terms) == {"mask/bce", "mask/0.5*dice"} and not any(v.requires_grad for v in terms.values())
    assert sum(v.item() for v in terms.values()) == pytest.approx(out["loss_mask"].item(), rel=1e-5)


def test_with_bce_the_model_is_torchvisions_mask_rcnn():
    # The same weights with torchvision's own RoIHeads (its maskrcnn_loss) give the same five terms.
    images, targets = _two_images()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        ours = _tiny(mask_loss="bce").train()
        stock = _tiny().train()
        stock.load_state_dict(ours.state_dict())
        rh = stock.roi_heads
        stock.roi_heads = RoIHeads(
            rh.box_roi_pool, rh.box_head, rh.box_predictor, 0.5, 0.5, 128, 0.25, None, 0.05, 0.5, 50,
            mask_roi_pool=rh.mask_roi_pool, mask_head=rh.mask_head, mask_predictor=rh.mask_predictor,
        )  # fmt: skip
        torch.manual_seed(1)
        a = ours(images, targets)
        torch.manual_seed(1)
        b = stock(images, targets)
    assert set(a) == set(b)
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7), k


def test_eval_output_follows_the_instance_interface():
    images, _ = _two_images()
    model = _tiny(box_score_thresh=0.0).eval()
    out = model(images)
    assert len(out) == 2
    for det in out:
        k = det["boxes"].shape[0]
        assert k > 0 and det["boxes"].shape == (k, 4) and det["scores"].shape == (k,)
        assert det["masks"].shape == (k, SIZE, SIZE) and det["masks"].min() >= 0 and det["masks"].max() <= 1
        assert set(det["labels"].tolist()) <= {1}


def test_crowd_and_empty_boxes_are_dropped():
    images, targets = _two_images()
    for t in targets:
        t["iscrowd"] = torch.tensor([True])
    targets[0] = {
        **targets[0],
        "boxes": torch.cat([targets[0]["boxes"], torch.tensor([[5.0, 5, 5, 9]])]),
        "labels": torch.tensor([1, 1]),
        "masks": targets[0]["masks"].repeat(2, 1, 1),
        "iscrowd": torch.tensor([True, False]),
    }
    out = _tiny().train()(images, targets)
    # Nothing is left to learn masks from: every instance is crowd or has no area.
    assert out["loss_mask"].item() == 0.0 and out["loss_box_reg"].item() == 0.0


def test_labels_beyond_num_classes_are_an_error():
    images, targets = _two_images()
    targets[1]["labels"] = torch.tensor([3])
    with pytest.raises(ValueError, match="num_classes=1"):
        _tiny().train()(images, targets)


def test_presets_and_config():
    for name in ("maskrcnn_tiny", "maskrcnn_r50"):
        info = get_model_info(name)
        assert (info.family, info.task) == ("maskrcnn", "instance")
    model = _tiny(mask_loss="dice")
    assert model.task == "instance" and model.config.mask_loss == "dice" and model.config.num_classes == 1
    assert not model.config.pretrained_backbone
    assert sum(p.numel() for p in model.parameters()) == 12_385_691
    assert model_config("maskrcnn_tiny", input_size=SIZE, mask_loss="dice") == model.config


@pytest.mark.slow
def test_r50_is_torchvisions_model_parameter_for_parameter():
    ours = create_model("maskrcnn_r50", num_classes=3)
    ref = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=4)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters()) == 43_986_279
    # Same state-dict keys and shapes: torchvision's COCO checkpoints load as they are.
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    out = ours.eval()(torch.randn(1, 3, SIZE, SIZE))
    assert set(out[0]) == {"boxes", "scores", "labels", "masks"} and out[0]["masks"].shape[1:] == (SIZE, SIZE)


def test_unknown_override_key_and_bad_spec_are_rejected():
    with pytest.raises(ValueError, match="Did you mean 'mask_loss'"):
        create_model("maskrcnn_tiny", mask_los="dice")
    with pytest.raises(ValueError, match="unknown loss"):
        create_model("maskrcnn_tiny", mask_loss="dcie")
    with pytest.raises(ValueError, match="backbone"):
        create_model("maskrcnn_tiny", backbone="vgg16")


def fit(seed: int = 0, bf16: bool = False, steps: int = 24) -> dict[str, float]:
    """Adam on two tiny images: the fall of the total loss and of the mask term, each the mean of
    the last 4 steps over the mean of the first 4 (RoI sampling makes single steps noisy)."""
    images, targets = _two_images()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = _tiny(mask_loss="bce + dice").train()
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        history = []
        for _ in range(steps):
            with precision(bf16):
                losses = {k: v.float() for k, v in model(images, targets).items()}
            total = sum(v for k, v in losses.items() if k.startswith("loss_"))
            opt.zero_grad()
            total.backward()
            opt.step()
            history.append({k: v.item() for k, v in losses.items()})
    return {
        "fall": fall([sum(h.values()) for h in history], 4),
        "fall_mask": fall([h["loss_mask"] for h in history], 4),
    }


BOUNDS = {"fall": below(0.3), "fall_mask": below(0.3)}


@pytest.mark.slow
def test_overfits_two_tiny_images():
    check(fit(), BOUNDS)
