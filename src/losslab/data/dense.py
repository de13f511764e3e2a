"""``DenseDataset``: image, foreground mask and optional depth, for MaskNet / U-Net / depth models.

Reads the dense layout that ``losslab data synth --task dense`` writes (docs/architecture.md):
``ROOT/{split}/<stem>.png``, ``ROOT/{split}_masks/<stem>.png`` (0/255) and, when present,
``ROOT/{split}_depth/<stem>.png`` (16-bit, millimetres). Items are letterboxed like the
instance task; padding has mask 0 and depth 0 (0 means "no depth").
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from losslab.data.images import read_image
from losslab.data.noise import LabelNoise
from losslab.data.transforms import PhotometricDistort, letterbox_array, letterbox_image

__all__ = ["DenseDataset"]


class DenseDataset(Dataset):
    """Dense (per-pixel) dataset of a root folder and split.

    Args:
        root: dataset root.
        split: ``"train"`` or ``"val"`` (any folder name with a ``{split}_masks`` twin).
        size: square input size ``S`` (letterbox).
        train: random flip and photometric distortion.
        label_noise: corrupts each foreground mask (its 8-connected components are the instances)
            before augmentation (the training split only).

    Shape:
        item: ``(image (3, S, S), {"mask": (1, S, S) float 0/1, "depth": (1, S, S) float metres,
        "image_id": int})``; ``depth`` only when the split has depth maps.
    """

    def __init__(
        self, root: str | Path, split: str, size: int = 512, train: bool = False, label_noise: LabelNoise | None = None
    ):
        self.root, self.split, self.size, self.train = Path(root), split, size, train
        self.label_noise = label_noise
        self.mask_dir = self.root / f"{split}_masks"
        self.depth_dir = self.root / f"{split}_depth"
        if not self.mask_dir.is_dir():
            raise ValueError(
                f"no mask folder {self.mask_dir}; a dense dataset needs {split}/ and {split}_masks/ "
                "(generate one with `losslab data synth OUT --task dense`)"
            )
        self.stems = sorted(p.stem for p in self.mask_dir.glob("*.png"))
        if not self.stems:
            raise ValueError(f"mask folder {self.mask_dir} holds no .png files")
        self.has_depth = self.depth_dir.is_dir()
        self.ids = self._image_ids()
        self.photometric = PhotometricDistort()

    def _image_ids(self) -> list[int]:
        """Ids from the split's COCO json when there is one (so results line up), else 1..N."""
        ann = self.root / "annotations" / f"instances_{self.split}.json"
        by_name: dict[str, int] = {}
        if ann.is_file():
            try:
                by_name = {Path(im["file_name"]).stem: int(im["id"]) for im in json.loads(ann.read_text())["images"]}
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{ann}: cannot read image ids ({exc}); run `losslab data check` on it") from None
        return [by_name.get(stem, i + 1) for i, stem in enumerate(self.stems)]

    def __len__(self) -> int:
        return len(self.stems)

    def _read_gray(self, path: Path, flags: int) -> np.ndarray:
        arr = cv2.imread(str(path), flags)
        if arr is None:
            raise ValueError(f"{path} is missing or unreadable")
        return arr

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict]:
        stem = self.stems[i]
        image = read_image(self.root / self.split / f"{stem}.png", f"dense {self.split} item {stem}: ")
        mask = (self._read_gray(self.mask_dir / f"{stem}.png", cv2.IMREAD_GRAYSCALE) > 127).astype(np.float32)
        depth = None
        if self.has_depth:
            depth = self._read_gray(self.depth_dir / f"{stem}.png", cv2.IMREAD_UNCHANGED).astype(np.float32) / 1000.0
        if mask.shape != image.shape[:2] or (depth is not None and depth.shape != image.shape[:2]):
            raise ValueError(f"dense item {stem}: image, mask and depth sizes differ; regenerate the dataset")
        if self.label_noise is not None:
            mask = self.label_noise.corrupt_dense(mask, self.ids[i])
        if self.train:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
            image = self.photometric({"image": image}, rng)["image"]
            if rng.random() < 0.5:
                image, mask = image[:, ::-1], mask[:, ::-1]
                depth = depth[:, ::-1] if depth is not None else None
        pixels, _ = letterbox_image(image, self.size)
        mask, _ = letterbox_array(np.ascontiguousarray(mask), self.size, cv2.INTER_NEAREST, 0.0)
        target: dict = {"mask": torch.from_numpy(mask[None].copy()), "image_id": self.ids[i]}
        if depth is not None:
            depth, _ = letterbox_array(np.ascontiguousarray(depth), self.size, cv2.INTER_NEAREST, 0.0)
            target["depth"] = torch.from_numpy(depth[None].copy())
        return pixels, target
