"""Tiny fake models and datasets that follow the model and data contracts of docs/architecture.md.

They let the engine's tests run without the real YOLACT and data packages: a few hundred
parameters, 16-pixel images, dropout and a random flip so that the random states matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset


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
            union = torch.stack([t["masks"].amax(0).float() for t in targets])
            loss_mask = F.binary_cross_entropy_with_logits(logits, union)
            pooled = self.box(feat.mean(dim=(2, 3)))
            gt = torch.stack([t["boxes"][0] / self.config.input_size for t in targets])
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


def _builder(cls, name):
    from losslab.config import apply_overrides

    def build(**overrides):
        return cls(apply_overrides(FakeConfig(), overrides, where=name))

    return build


FPS_STUB = {"fps": 123.0, "ms_median": 8.13, "size": 16, "device": "cpu", "threads": 1}


def install_fakes(monkeypatch, root, n_train: int = 12, n_val: int = 4, stub_eval: bool = True) -> None:
    """Register the presets ``fake_instance`` and ``fake_dense`` (undone after the test) and route
    the run's data to the fake datasets and its FPS measurement to a stub.

    ``stub_eval``: replace the instance evaluation (COCO AP needs a json of the fake data) by a
    fixed-shape result; the dense evaluation stays the real ``DenseEvaluator``.
    """
    from losslab.engine import run
    from losslab.models import registry

    try:
        registry._ensure_loaded()
    except Exception:  # another family is broken mid-work: the fakes do not need it
        import sys
        import types

        monkeypatch.setitem(sys.modules, "losslab.models._presets", types.ModuleType("losslab.models._presets"))
    for name, cls, task in (("fake_instance", FakeInstanceModel, "instance"), ("fake_dense", FakeDenseModel, "dense")):
        info = registry.ModelInfo(name, "fake", task, "test double", _builder(cls, name))
        monkeypatch.setitem(registry._MODELS, name, info)

    def build_split(root_, split, task, size, train, augment="ssd", label_noise=None):
        n = n_train if split == "train" else n_val
        if task == "instance":
            return FakeInstances(n, size, flip=train), collate
        return FakeDense(n, size), None

    monkeypatch.setattr(run, "dataset_root", lambda cfg, task, progress=False: root)
    monkeypatch.setattr(run, "build_split", build_split)
    monkeypatch.setattr(run, "measure_model_fps", lambda model, size, device, n, images=None: dict(FPS_STUB, size=size))
    if stub_eval:
        real = run.evaluate_model

        def evaluate_model(model, dataset, task, *args, **kwargs):
            if task != "instance":
                return real(model, dataset, task, *args, **kwargs)
            metrics = {k: 50.0 for k in ("AP", *(f"AP{t}" for t in range(50, 100, 5)))}
            return {"segm": dict(metrics), "bbox": dict(metrics), "boundary": dict(metrics)}

        monkeypatch.setattr(run, "evaluate_model", evaluate_model)
