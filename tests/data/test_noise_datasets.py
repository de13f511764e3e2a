"""Label noise inside the datasets and the run: training split only, before augmentation, the same
masks whatever the worker count or reading order; bad levels refused at config and study load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from losslab.config import apply_overrides
from losslab.data import CocoInstances, DenseDataset, build_transforms, collate_instances
from losslab.data.noise import LabelNoise
from losslab.data.synth import SynthConfig, generate
from losslab.data.transforms import masks_to_boxes
from losslab.engine.config import TrainConfig

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    """Instance json and dense masks of the same 6 + 3 images, 1-3 butts each."""
    cfg = SynthConfig(train=6, val=3, size=64, seed=5, task="dense", objects="1-3")
    return generate(tmp_path_factory.mktemp("noise") / "ds", cfg, workers=1, progress=False)


def _masks_by_image(dataset, order) -> dict[int, np.ndarray]:
    return {int(t["image_id"]): t["masks"].numpy() for t in (dataset[i][1] for i in order)}


def test_coco_items_get_corrupted_masks_and_tight_boxes(tiny_coco):
    ann, img_dir, _ = tiny_coco
    clean = CocoInstances(ann, img_dir)
    noisy = CocoInstances(ann, img_dir, label_noise=LabelNoise("dilate(px=3)", seed=0))
    grew = 0
    for i in range(len(clean)):
        _, c = clean[i]
        _, n = noisy[i]
        assert len(n["masks"]) == len(c["masks"])
        np.testing.assert_array_equal(n["boxes"].numpy(), masks_to_boxes(n["masks"].numpy()))
        ordinary = ~c["iscrowd"]
        assert torch.all(n["masks"] >= c["masks"])
        assert torch.equal(n["masks"][~ordinary], c["masks"][~ordinary])  # the crowd region stays
        grew += int((n["boxes"][ordinary] != c["boxes"][ordinary]).any())
    assert grew >= 1


def test_noise_is_applied_before_augmentation(tiny_coco):
    ann, img_dir, _ = tiny_coco
    seen = []

    class Spy(LabelNoise):
        def __call__(self, sample, image_id):
            seen.append(sample["masks"].shape[1:])
            return super().__call__(sample, image_id)

    ds = CocoInstances(ann, img_dir, transform=build_transforms(64, train=False), label_noise=Spy("erode(px=1)"))
    _, target = ds[0]
    assert seen == [(40, 60)] and target["masks"].shape[1:] == (64, 64)  # original size in, letterboxed out


def test_instances_that_vanish_are_dropped_and_counted(tiny_coco):
    ann, img_dir, _ = tiny_coco
    noise = LabelNoise("erode(px=40)")
    ds = CocoInstances(ann, img_dir, label_noise=noise)
    _, t = ds[1]  # two ordinary instances and a crowd region
    assert t["iscrowd"].tolist() == [True] and len(t["boxes"]) == 1
    assert noise.counts.emptied == 2 and noise.counts.instances == 2


def test_the_same_masks_for_any_worker_count_and_order(synth_root):
    def dataset():
        noise = LabelNoise("boundary(px=2) + shift(px=2) + drop(p=0.3)", seed=1)
        return CocoInstances(
            synth_root / "annotations" / "instances_train.json",
            synth_root / "train",
            transform=build_transforms(64, train=False),
            label_noise=noise,
        )

    ds = dataset()
    forward = _masks_by_image(ds, range(len(ds)))
    backward = _masks_by_image(dataset(), reversed(range(len(ds))))
    loader = DataLoader(dataset(), batch_size=2, num_workers=2, collate_fn=collate_instances, shuffle=False)
    workers = {int(t["image_id"]): t["masks"].numpy() for _, targets in loader for t in targets}
    assert forward.keys() == backward.keys() == workers.keys()
    for image_id, masks in forward.items():
        np.testing.assert_array_equal(masks, backward[image_id])
        np.testing.assert_array_equal(masks, workers[image_id])
    clean = CocoInstances(synth_root / "annotations" / "instances_train.json", synth_root / "train")
    assert sum(len(clean[i][1]["masks"]) for i in range(len(clean))) > sum(len(m) for m in forward.values())


def test_the_run_corrupts_the_training_split_only(synth_root):
    from losslab.engine.datasets import build_datasets

    cfg = TrainConfig(data=str(synth_root), label_noise="erode(px=2)", seed=3)
    train_set, val_set, _ = build_datasets(cfg, "instance", 64)
    assert repr(train_set.label_noise) == "LabelNoise('erode(px=2)', seed=3)" and val_set.label_noise is None
    val_clean = CocoInstances(val_set.ann_file, val_set.image_dir, transform=build_transforms(64, train=False))
    for i in range(len(val_set)):
        assert torch.equal(val_set[i][1]["masks"], val_clean[i][1]["masks"])
    plain, _, _ = build_datasets(TrainConfig(data=str(synth_root)), "instance", 64)
    assert plain.label_noise is None  # label_noise=none adds no step at all

    dense_train, dense_val, _ = build_datasets(cfg, "dense", 64)
    assert isinstance(dense_train, DenseDataset) and dense_val.label_noise is None
    clean = DenseDataset(synth_root, "train", size=64)
    noisy = DenseDataset(synth_root, "train", size=64, label_noise=dense_train.label_noise)  # without the flips
    assert all(torch.all(noisy[i][1]["mask"] <= clean[i][1]["mask"]) for i in range(len(clean)))
    assert sum(float(noisy[i][1]["mask"].sum()) for i in range(3)) < sum(
        float(clean[i][1]["mask"].sum()) for i in range(3)
    )


@pytest.mark.parametrize(("spec", "param"), [("dilate(px=oops)", "px"), ("drop(p=1.5)", "p"), ("erode(px=-2)", "px")])
def test_the_train_config_refuses_a_bad_level(spec, param):
    with pytest.raises(ValueError, match=f"train config: label_noise: .*: {param} must be") as info:
        apply_overrides(TrainConfig(), {"label_noise": spec}, where="train")
    assert "position 0 of the label_noise spec" in str(info.value)
    assert apply_overrides(TrainConfig(), {"label_noise": "boundary(px=2) + drop(p=0.1)"}).label_noise


def test_a_study_refuses_a_bad_level_when_loaded():
    from losslab.study.spec import parse_study

    grid = {"mask_loss": ["bce"], "label_noise": {"clean": "none", "sloppy": "boundary(px=2)"}}
    study = parse_study({"model": "yolact_tiny", "grid": grid})
    assert {r.config["label_noise"] for r in study.runs()} == {"none", "boundary(px=2)"}
    bad = {"mask_loss": ["bce"], "label_noise": ["none", "boundry(px=2)"]}
    with pytest.raises(ValueError, match=r"study: bad label_noise 'boundry.*Did you mean 'boundary'"):
        parse_study({"model": "yolact_tiny", "grid": bad})
    with pytest.raises(ValueError, match="px must be"):
        parse_study({"model": "yolact_tiny", "config": {"label_noise": "dilate(px=x)"}, "grid": {"mask_loss": ["bce"]}})
