"""``augment_variants``: K fixed augmented copies per training image, the same in every run, so
that a frozen backbone's features can be looked up; 0 keeps a fresh draw per read."""

from __future__ import annotations

import pytest
import torch

from losslab.data import CocoInstances, build_dataset, build_transforms
from losslab.engine.config import TrainConfig


def _copies(ds: CocoInstances, index: int, reads: int, seed: int) -> set[bytes]:
    """The distinct images that ``reads`` reads of one item gave, under torch seed ``seed``."""
    torch.manual_seed(seed)
    return {ds[index][0].numpy().tobytes() for _ in range(reads)}


def _dataset(tiny_coco, variants: int) -> CocoInstances:
    ann, img_dir, _ = tiny_coco
    return CocoInstances(ann, img_dir, transform=build_transforms(48, train=True), augment_variants=variants)


def test_each_image_has_k_copies_and_every_run_the_same_ones(tiny_coco):
    ds = _dataset(tiny_coco, 3)
    run_a, run_b = _copies(ds, 0, 40, seed=0), _copies(ds, 0, 40, seed=1)
    assert len(run_a) == 3 and run_a == run_b  # 40 reads find all 3 copies (all but surely)
    other_image = _copies(ds, 1, 40, seed=0)
    assert len(other_image) == 3 and not other_image & run_a


def test_targets_follow_the_copy(tiny_coco):
    ds = _dataset(tiny_coco, 2)
    torch.manual_seed(0)
    by_image: dict[bytes, bytes] = {}
    for _ in range(20):
        image, target = ds[0]
        masks = target["masks"].numpy().tobytes()
        assert by_image.setdefault(image.numpy().tobytes(), masks) == masks  # a copy is image + masks


def test_zero_draws_afresh(tiny_coco):
    assert len(_copies(_dataset(tiny_coco, 0), 0, 12, seed=0)) > 6


def test_bad_values_are_refused(tiny_coco, tmp_path):
    with pytest.raises(ValueError, match="augment_variants"):
        _dataset(tiny_coco, -1)
    with pytest.raises(ValueError, match="augment_variants"):
        TrainConfig(augment_variants=-2)
    with pytest.raises(ValueError, match="augment_variants=4 is for instance datasets"):
        build_dataset(tmp_path, "train", task="dense", train=True, augment_variants=4)


def test_validation_splits_ignore_it(tiny_coco):
    ann, img_dir, _ = tiny_coco
    from losslab.data.layout import DatasetSplits, SplitFiles

    splits = DatasetSplits(root=None, layout="explicit", splits={"val": SplitFiles(ann, img_dir)})
    ds = build_dataset(splits, "val", size=48, train=False, augment_variants=4)
    assert ds.augment_variants == 0


@pytest.mark.parametrize("budget", [2**29, 0])
def test_kept_copies_equal_fresh_reads(tiny_coco, monkeypatch, budget):
    from losslab.data import coco

    monkeypatch.setattr(coco, "COPIES_MAX_BYTES", budget)
    kept, fresh = _dataset(tiny_coco, 2), _dataset(tiny_coco, 2)
    torch.manual_seed(0)
    reads = [kept[i % 2] for i in range(12)]
    reads[0][1]["scribbled"] = True  # a caller's change to a target does not reach the next read
    assert len(kept._copies) == (4 if budget else 0)
    for i, (image, target) in enumerate(reads):
        monkeypatch.setattr(coco, "COPIES_MAX_BYTES", 0)
        torch.manual_seed(0)
        for _ in range(i):
            fresh[0]  # the same torch draws as before read i
        want_image, want_target = fresh[i % 2]
        assert torch.equal(image, want_image) and torch.equal(target["masks"], want_target["masks"])
    assert "scribbled" not in kept[0][1]
