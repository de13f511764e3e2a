"""DenseDataset, build_dataset, collate and DataLoader workers on a tiny generated dataset."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from losslab.data import DenseDataset, build_dataset, collate_instances
from losslab.data.collate import make_generator, worker_init_fn
from losslab.data.synth import SynthConfig, generate


@pytest.fixture(scope="module")
def dense_root(tmp_path_factory):
    cfg = SynthConfig(train=3, val=1, size=48, seed=2, task="dense", objects="1-2")
    return generate(tmp_path_factory.mktemp("dense") / "ds", cfg, workers=1, progress=False)


def test_dense_items(dense_root):
    ds = DenseDataset(dense_root, "train", size=64, train=False)
    assert len(ds) == 3
    image, t = ds[1]
    assert image.shape == (3, 64, 64)
    assert t["mask"].shape == (1, 64, 64) and set(t["mask"].unique().tolist()) <= {0.0, 1.0}
    assert t["depth"].shape == (1, 64, 64) and 0.0 < t["depth"].max() < 10.0  # metres
    assert t["image_id"] == 2  # from the COCO json of the split


def test_dense_train_flips_all_maps_together(dense_root):
    ds = DenseDataset(dense_root, "train", size=48, train=True)
    ref = DenseDataset(dense_root, "train", size=48, train=False)
    _, base = ref[0]
    seen_flip = False
    torch.manual_seed(0)
    for _ in range(8):
        _, t = ds[0]
        same = torch.equal(t["mask"], base["mask"]) and torch.equal(t["depth"], base["depth"])
        flipped = torch.equal(t["mask"], base["mask"].flip(-1)) and torch.equal(t["depth"], base["depth"].flip(-1))
        assert same or flipped
        seen_flip |= flipped and not same
    assert seen_flip


def test_build_dataset_and_errors(dense_root, tmp_path):
    assert isinstance(build_dataset(dense_root, "val", "dense", 32), DenseDataset)
    inst = build_dataset(dense_root, "train", "instance", 32, train=True)
    assert inst.num_classes == 1 and len(inst) == 3
    with pytest.raises(ValueError, match="task"):
        build_dataset(dense_root, "train", "depth", 32)
    with pytest.raises(ValueError, match=r"instances_test\.json"):
        build_dataset(dense_root, "test", "instance", 32)
    with pytest.raises(ValueError, match="--task dense"):
        DenseDataset(tmp_path, "train")


def test_collate_and_loader_with_workers(dense_root):
    ds = build_dataset(dense_root, "train", "instance", 32, train=True)
    loader = DataLoader(
        ds,
        batch_size=2,
        shuffle=True,
        num_workers=1,
        collate_fn=collate_instances,
        worker_init_fn=worker_init_fn,
        generator=make_generator(0),
    )
    batches = list(loader)
    images, targets = batches[0]
    assert images.shape == (2, 3, 32, 32) and len(targets) == 2
    assert all(t["masks"].shape[1:] == (32, 32) for t in targets)
    again = list(
        DataLoader(
            ds,
            batch_size=2,
            shuffle=True,
            num_workers=1,
            collate_fn=collate_instances,
            worker_init_fn=worker_init_fn,
            generator=make_generator(0),
        )
    )
    assert torch.equal(again[0][0], images)  # same generator seed -> same shuffling and augmentation


def test_collate_rejects_mixed_sizes_and_empty():
    with pytest.raises(ValueError, match="share one shape"):
        collate_instances([(torch.zeros(3, 4, 4), {}), (torch.zeros(3, 5, 5), {})])
    with pytest.raises(ValueError, match="empty batch"):
        collate_instances([])


def test_augment_names_choose_the_training_pipeline(dense_root):
    plain = build_dataset(dense_root, "train", "instance", 32, train=False)
    none = build_dataset(dense_root, "train", "instance", 32, train=True, augment="none")
    for i in range(len(plain)):
        (a, ta), (b, tb) = plain[i], none[i]
        assert torch.equal(a, b) and torch.equal(ta["masks"], tb["masks"])
    light = build_dataset(dense_root, "train", "instance", 32, train=True, augment="light")
    image, target = light[0]
    assert image.shape == (3, 32, 32) and target["masks"].shape[-2:] == (32, 32)
    with pytest.raises(ValueError, match="augment must be one of"):
        build_dataset(dense_root, "train", "instance", 32, train=True, augment="heavy")
