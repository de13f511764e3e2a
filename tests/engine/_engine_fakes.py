"""Tiny fake models and datasets that follow the model and data contracts of docs/architecture.md.

The models have a few hundred parameters, dropout, and a 16-pixel input; the in-memory datasets
add a random flip so that the random states matter (the trainer's tests). For whole runs the
models are registered as presets through the public ``register_model`` (``fake_presets``) and
trained on tiny synthetic datasets written to a temporary folder (``write_datasets``), so a run
goes through the real config seam, data readers, evaluation, pictures and FPS measurement.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from losslab.data.synth import SynthConfig, generate
from losslab.models import register_model, unregister_model


@dataclass
class FakeConfig:
    mask_loss: str = "bce"
    input_size: int = 16
    num_classes: int = 2
    width: int = 4


class FakeInstanceModel(nn.Module):
    """Instance-task interface: losses in training, per-image detections in eval mode.

    ``nan_ids``: images whose presence in a batch makes the loss NaN (for the skip tests).
    """

    task = "instance"

    def __init__(self, config: FakeConfig | None = None, nan_ids: tuple[int, ...] = ()):
        super().__init__()
        self.config = config or FakeConfig()
        w = self.config.width
        self.conv = nn.Conv2d(3, w, 3, padding=1)
        self.drop = nn.Dropout(0.25)
        self.head = nn.Conv2d(w, 1, 1)
        self.box = nn.Linear(w, 4)
        self.nan_ids = set(nan_ids)

    def forward(self, images, targets=None):
        feat = F.relu(self.conv(images))
        logits = self.head(self.drop(feat))[:, 0]
        if self.training:
            union = torch.stack([t["masks"].bool().any(0).float() for t in targets])
            loss_mask = F.binary_cross_entropy_with_logits(logits, union)
            pooled = self.box(feat.mean(dim=(2, 3)))
            gt = torch.stack([_first_box(t["boxes"]) / self.config.input_size for t in targets])
            loss_box = F.smooth_l1_loss(pooled, gt)
            if any(int(t["image_id"]) in self.nan_ids for t in targets):
                loss_mask = loss_mask * float("nan")
            return {"loss_mask": loss_mask, "loss_box": loss_box, "num_pos": torch.tensor(float(len(targets)))}
        out = []
        size = self.config.input_size
        for prob in logits.sigmoid():
            out.append(
                {
                    "boxes": torch.tensor([[2.0, 2.0, size - 2.0, size - 2.0]]),
                    "scores": prob.max().reshape(1),
                    "labels": torch.ones(1, dtype=torch.int64),
                    "masks": prob[None],
                }
            )
        return out


def _first_box(boxes: torch.Tensor) -> torch.Tensor:
    """The first box of an image, zeros for an image without objects (augmentation can crop them all)."""
    return boxes[0] if len(boxes) else torch.zeros(4)


class FakeDenseModel(nn.Module):
    """Dense-task interface: ``{"loss_mask"}`` in training, ``{"mask": logits}`` in eval mode."""

    task = "dense"

    def __init__(self, config: FakeConfig | None = None):
        super().__init__()
        self.config = config or FakeConfig()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 1, 1)

    def forward(self, images, targets=None):
        logits = self.head(F.relu(self.conv(images)))
        if self.training:
            return {"loss_mask": F.binary_cross_entropy_with_logits(logits, targets["mask"])}
        return {"mask": logits}


def _square(idx: int, size: int) -> tuple[int, int, int]:
    g = torch.Generator().manual_seed(1000 + idx)
    s = int(torch.randint(4, size // 2, (1,), generator=g))
    x0, y0 = (int(v) for v in torch.randint(0, size - s, (2,), generator=g))
    return x0, y0, s


class FakeInstances(Dataset):
    """``n`` images of a bright square; a random horizontal flip draws from torch's global RNG."""

    num_classes = 2

    def __init__(self, n: int = 12, size: int = 16, flip: bool = True):
        self.n, self.size, self.flip = n, size, flip
        self.label_to_cat = {1: 1, 2: 2}
        self.cat_names = ["a", "b"]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, idx: int):
        x0, y0, s = _square(idx, self.size)
        mask = torch.zeros(self.size, self.size, dtype=torch.uint8)
        mask[y0 : y0 + s, x0 : x0 + s] = 1
        image = torch.randn(3, self.size, self.size, generator=torch.Generator().manual_seed(idx)) * 0.1
        image = image + mask.float()
        box = torch.tensor([[x0, y0, x0 + s, y0 + s]], dtype=torch.float32)
        if self.flip and torch.rand(1).item() < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
            box = torch.stack([self.size - box[:, 2], box[:, 1], self.size - box[:, 0], box[:, 3]], 1)
        target = {
            "boxes": box,
            "labels": torch.ones(1, dtype=torch.int64),
            "masks": mask[None],
            "iscrowd": torch.zeros(1, dtype=torch.bool),
            "image_id": idx + 1,
            "orig_size": (self.size, self.size),
            "scale": 1.0,
        }
        return image, target


class FakeDense(Dataset):
    """``n`` images with a binary mask, as ``DenseDataset`` gives them."""

    def __init__(self, n: int = 8, size: int = 16):
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, idx: int):
        x0, y0, s = _square(idx, self.size)
        mask = torch.zeros(1, self.size, self.size)
        mask[:, y0 : y0 + s, x0 : x0 + s] = 1
        image = mask.expand(3, -1, -1) + 0.1 * torch.randn(3, self.size, self.size)
        return image, {"mask": mask, "image_id": idx + 1}


def collate(batch):
    """``(images (B, 3, S, S), targets list[dict])`` like ``collate_instances``."""
    images, targets = zip(*batch, strict=True)
    return torch.stack(images), list(targets)


#: The fake presets: name -> (model class, task).
FAKE_PRESETS = {"fake_instance": (FakeInstanceModel, "instance"), "fake_dense": (FakeDenseModel, "dense")}


@contextmanager
def fake_presets() -> Iterator[None]:
    """``fake_instance`` and ``fake_dense`` registered as presets (``FakeConfig`` their config),
    removed again afterwards."""
    for name, (cls, task) in FAKE_PRESETS.items():
        register_model(name, FakeConfig(), cls, family="fake", task=task, description="test double")
    try:
        yield
    finally:
        for name in FAKE_PRESETS:
            unregister_model(name)


def write_datasets(root: Path, n_train: int = 12, n_val: int = 4) -> dict[str, str]:
    """Tiny synthetic datasets in ``root`` (two classes, 32 px) for each task: ``{task: folder}``."""
    out = {}
    for task in ("instance", "dense"):
        cfg = SynthConfig(train=n_train, val=n_val, size=32, seed=0, task=task, categories=2)
        out[task] = str(generate(root / task, cfg, workers=1, progress=False))
    return out
