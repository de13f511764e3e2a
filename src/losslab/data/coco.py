"""``CocoInstances``: an instance-segmentation dataset over a COCO json and an image folder.

Items follow docs/architecture.md: ``(image (3, S, S) normalised, target)`` with ``boxes`` xyxy
in input pixels, ``labels`` in 1..C (category ids remapped to contiguous labels; 0 is
background), ``masks`` uint8 ``(n, S, S)``, ``iscrowd`` bool (crowd regions are kept apart by
this flag: evaluation ignores them, training must not learn them as positives), ``image_id``,
``orig_size`` (h, w) and ``scale`` (input = original x scale, padding right and bottom).
Images without annotations are kept: they teach background. Images are read as they come
(``losslab.data.images``: any format, mode and bit depth, EXIF orientation) in the json's frame;
``gt`` is the json as it was read (integer ids, flat polygons wrapped), what evaluation uses.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from losslab.data.cocofile import CocoIndex, Note, Problem, decode_segmentation, load_coco, safe_image_path
from losslab.data.images import fit_to_annotation, load_image, read_image
from losslab.data.noise import LabelNoise
from losslab.data.transforms import Compose, ToTensor, sync_boxes

__all__ = ["COPIES_MAX_BYTES", "CocoInstances", "read_image"]  # read_image lives in losslab.data.images

log = logging.getLogger(__name__)


def _format_problems(problems: list[Problem], limit: int = 10) -> str:
    lines = [str(p) for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more")
    return "\n  ".join(lines)


#: How much of the augmented copies (``augment_variants``) a dataset keeps in memory: 0.5 GiB holds
#: about 2,000 copies of a 128 px image with its masks, about 140 of a 550 px one; copies beyond it
#: are made again when read.
COPIES_MAX_BYTES = 2**29


class CocoInstances(Dataset):
    """A COCO-format instance-segmentation dataset.

    Args:
        ann_file: COCO instances json.
        image_dir: folder that ``file_name`` is relative to (names escaping it are refused).
        transform: a callable ``(sample, rng) -> sample`` such as ``build_transforms(size, train)``;
            None gives the original size, normalised.
        skip_bad: leave bad entries out with a logged warning (counted in ``skipped``) instead of
            raising ``ValueError``.
        label_noise: corrupts each item's masks before ``transform`` (the training split only).
        augment_variants: 0 draws a fresh augmentation every time an image is read; K > 0 draws
            one of K fixed augmented copies of it (copy ``v`` of image ``id`` is a function of
            ``(id, v)`` only, the same in every run), so that the same pixels come again, and a
            frozen backbone's features can be looked up (``YolactConfig.cache_features``).

    Attributes:
        gt: the COCO dict of the valid entries as read (integer ids): the evaluation ground truth.
        notes: what the json said in a way it was read into (flat polygons, renumbered ids, ...);
            notes about single images are found by ``losslab data check``, not while training.

    Shape:
        item: ``image`` ``(3, S, S)`` float; ``target["masks"]`` ``(n, S, S)`` uint8,
        ``target["boxes"]`` ``(n, 4)`` float xyxy, ``target["labels"]`` / ``target["iscrowd"]`` ``(n,)``.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        transform: Compose | None = None,
        skip_bad: bool = False,
        label_noise: LabelNoise | None = None,
        augment_variants: int = 0,
    ):
        if augment_variants < 0:
            raise ValueError(f"augment_variants must be 0 (a fresh draw every time) or > 0, got {augment_variants}")
        self.augment_variants = augment_variants
        self._copies: dict[tuple[int, int], tuple[torch.Tensor, dict]] = {}
        self._copies_bytes = 0
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        self.transform = transform if transform is not None else Compose([ToTensor()])
        self.skip_bad = skip_bad
        self.label_noise = label_noise
        index: CocoIndex = load_coco(self.ann_file, self.image_dir)
        if index.problems and not skip_bad:
            raise ValueError(
                f"{len(index.problems)} problem(s) in {self.ann_file}:\n  {_format_problems(index.problems)}\n"
                "Fix the file, or leave these entries out with skip_bad (the trainer key: `losslab train "
                "skip_bad=true`, `skip_bad: true` in a study's config; `losslab eval --skip-bad`)."
            )
        for p in index.problems:
            log.warning("skipped: %s", p)
        self.skipped: list[Problem] = list(index.problems)
        self.notes: list[Note] = list(index.notes)
        self.gt = index.to_coco()
        self.images = index.images
        self.anns_by_image = index.anns_by_image
        self.categories = index.categories
        self.label_to_cat = {i + 1: c["id"] for i, c in enumerate(self.categories)}
        self.cat_to_label = {c: label for label, c in self.label_to_cat.items()}
        self.cat_names = [c["name"] for c in self.categories]
        self.num_classes = len(self.categories)
        self._warned: set = set()

    def __len__(self) -> int:
        return len(self.images)

    def load_sample(self, i: int) -> dict:
        """The untransformed sample of item ``i`` (numpy arrays at the original size)."""
        info = self.images[i]
        h, w = info["height"], info["width"]
        path = safe_image_path(self.image_dir, info["file_name"])
        try:
            pixels, _ = fit_to_annotation(load_image(path), h, w)
        except ValueError as exc:
            raise ValueError(f"{self.ann_file}: image id {info['id']}: {exc}") from None
        image = pixels.astype(np.float32)
        anns = self.anns_by_image.get(info["id"], [])
        masks = np.zeros((len(anns), h, w), np.uint8)
        for k, a in enumerate(anns):
            masks[k] = decode_segmentation(a["segmentation"], h, w)
        sample = {
            "image": image,
            "masks": masks,
            "labels": np.array([self.cat_to_label[a["category_id"]] for a in anns], np.int64),
            "iscrowd": np.array([bool(a.get("iscrowd", 0)) for a in anns], bool),
            "scale": 1.0,
        }
        empty = [a["id"] for a, m in zip(anns, masks, strict=True) if not m.any() and a["id"] not in self._warned]
        if empty:
            self._warned.update(empty)  # once per annotation, not once per epoch
            log.warning("%s: annotation id(s) %s cover no pixel; left out", self.ann_file, empty)
        return sync_boxes(sample)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict]:
        # Randomness comes from torch's generator, which DataLoader seeds per worker and
        # torch.manual_seed seeds in the main process: augmentation is reproducible and differs
        # across workers. With ``augment_variants`` it only picks which of the image's fixed
        # copies this read gets, and a copy once made is kept (up to ``COPIES_MAX_BYTES``).
        if not self.augment_variants:
            return self._read(i, np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item())))
        variant = int(torch.randint(0, self.augment_variants, (1,)).item())
        item = self._copies.get((i, variant))
        if item is None:
            item = self._read(i, variant)
            self._keep((i, variant), item)
        return item[0], dict(item[1])

    def _read(self, i: int, rng: np.random.Generator | int) -> tuple[torch.Tensor, dict]:
        """Item ``i`` augmented with ``rng``, or with copy number ``rng`` of its image."""
        for _ in range(len(self)):
            try:
                sample = self.load_sample(i)
                break
            except ValueError as exc:
                if not self.skip_bad:
                    raise
                # An unreadable file is only found when read: skip to the next image, counted.
                info = self.images[i]
                self.skipped.append(Problem(str(self.ann_file), f"image id {info['id']}", str(exc)))
                log.warning("skipped: %s", exc)
                i = (i + 1) % len(self)
        else:
            raise ValueError(f"{self.ann_file}: no readable image at all")
        info = self.images[i]
        if self.label_noise is not None:  # the annotator's error: before augmentation, fixed per image
            sample = self.label_noise(sample, int(info["id"]))
        if isinstance(rng, int):  # copy ``rng`` of this image: the same in every run
            rng = np.random.default_rng(np.random.SeedSequence(int(info["id"]), spawn_key=(rng,)))
        sample = self.transform(sample, rng)
        target = {
            "boxes": sample["boxes"],
            "labels": sample["labels"],
            "masks": sample["masks"],
            "iscrowd": sample["iscrowd"],
            "image_id": int(info["id"]),
            "orig_size": (int(info["height"]), int(info["width"])),
            "scale": float(sample["scale"]),
        }
        return sample["image"], target

    def _keep(self, key: tuple[int, int], item: tuple[torch.Tensor, dict]) -> None:
        size = item[0].numel() * item[0].element_size() + item[1]["masks"].numel()
        if self._copies_bytes + size <= COPIES_MAX_BYTES:
            self._copies[key] = item
            self._copies_bytes += size

    def __repr__(self) -> str:
        return (
            f"CocoInstances({self.ann_file}, images={len(self)}, classes={self.cat_names}, "
            f"skipped={len(self.skipped)}, transform={self.transform})"
        )
