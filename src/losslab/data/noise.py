"""Label noise: corrupt instance masks as a sloppy annotator would, by a known amount.

``LabelNoise(spec, seed)`` (spec grammar in ``losslab.data.noise_spec``) corrupts the masks of one
image. Every random draw comes from its own generator seeded by ``(seed, image id, instance
index, corruption name, how many of that name came before it in the spec)``, so an image's
corrupted masks are the same in every epoch, every worker and any order of reading (an
annotator's error is fixed once made), and two losses trained with the same seed see the same
corrupted masks.

The levels of one corruption nest: with the same seed, ``dilate(px=4)`` grows each instance at
least as much as ``dilate(px=2)``, ``drop(p=0.2)`` drops every instance that ``drop(p=0.1)``
drops, and ``shift(px=4)`` moves each mask in the same direction as ``shift(px=2)``, further.
Combining does not change a corruption's draws: ``boundary(px=2) + drop(p=0.1)`` drops the
instances ``drop(p=0.1)`` drops and moves outlines as ``boundary(px=2)`` does.

The instance dataset applies it to the untransformed sample (before augmentation) of the training
split only; boxes are re-derived from the corrupted masks, and an instance whose mask became empty
is dropped (counted in ``LabelNoise.counts``, per process). Crowd regions are ignore areas, not
annotations: they are left as they are.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from losslab.data.noise_spec import NoiseOp, format_label_noise, parse_label_noise
from losslab.data.transforms import sync_boxes

__all__ = ["LabelNoise", "NoiseCounts", "corrupt_masks", "make_label_noise", "simplify_polygons"]


@dataclass
class NoiseCounts:
    """What the noise did so far (in this process).

    Attributes:
        instances: non-crowd instances seen.
        dropped: instances removed by ``drop``.
        emptied: instances whose corrupted mask covered no pixel (eroded away, shifted off the image).
    """

    instances: int = 0
    dropped: int = 0
    emptied: int = 0


@lru_cache(maxsize=64)
def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _morph(mask: np.ndarray, radius: int, grow: bool) -> np.ndarray:
    if radius == 0:
        return mask
    op = cv2.dilate if grow else cv2.erode
    # Erosion must treat outside the image as background, or a mask touching the edge keeps its edge.
    return op(mask, _disk(radius), borderType=cv2.BORDER_CONSTANT, borderValue=0)


def _shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    if dx == 0 and dy == 0:
        return mask
    h, w = mask.shape
    out = np.zeros_like(mask)
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    out[yd, xd] = mask[ys, xs]  # what leaves the image is lost
    return out


def _depth(parents: np.ndarray, k: int) -> int:
    d, p = 0, parents[k]
    while p >= 0:
        d, p = d + 1, parents[p]
    return d


def simplify_polygons(mask: np.ndarray, tol: float) -> list[tuple[np.ndarray, bool]]:
    """The outlines of a binary mask, holes included, as Douglas-Peucker polygons of tolerance ``tol``.

    Returns:
        ``(polygon, is_hole)`` pairs from the outside in: filling them in this order (holes with 0)
        draws the simplified mask, islands inside holes included.

    Shape:
        mask: ``(H, W)``; each polygon ``(K, 1, 2)`` int32 x, y.
    """
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return []
    parents = hierarchy[0][:, 3]
    depths = [_depth(parents, k) for k in range(len(contours))]
    order = sorted(range(len(contours)), key=depths.__getitem__)
    return [(cv2.approxPolyDP(contours[k], float(tol), True), depths[k] % 2 == 1) for k in order]


def _simplify(mask: np.ndarray, tol: float) -> np.ndarray:
    out = np.zeros_like(mask)
    for poly, hole in simplify_polygons(mask, tol):
        cv2.fillPoly(out, [poly], 0 if hole else 1)
        if hole:  # a hole's outline runs through the foreground pixels around it: keep them
            cv2.polylines(out, [poly], True, 1)
    return out


def _streams(ops: Sequence[NoiseOp]) -> list[int]:
    """A stream number per op: its name (a stable hash) and how many ops of that name came before."""
    seen: dict[str, int] = {}
    out = []
    for op in ops:
        out.append(zlib.crc32(op.name.encode()) * 64 + seen.get(op.name, 0))
        seen[op.name] = seen.get(op.name, 0) + 1
    return out


def _rng(seed: int, image_id: int, instance: int, stream: int) -> np.random.Generator:
    # SeedSequence takes non-negative integers only; the modulus keeps negative seeds distinct.
    return np.random.default_rng([int(v) % 2**64 for v in (seed, image_id, instance, stream)])


def _apply(op: NoiseOp, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """One corruption of one instance's mask; None when ``drop`` leaves it unannotated."""
    u, v = rng.random(2)  # the same two draws at every level of a corruption: levels nest
    if op.name in ("dilate", "erode", "boundary"):
        radius = min(int(u * (op.params["px"] + 1)), op.params["px"])  # uniform in 0..px
        grow = op.name == "dilate" or (op.name == "boundary" and v < 0.5)
        return _morph(mask, radius, grow)
    if op.name == "shift":
        r, angle = u * op.params["px"], 2 * np.pi * v
        return _shift(mask, round(r * np.cos(angle)), round(r * np.sin(angle)))
    if op.name == "simplify":
        return _simplify(mask, op.params["tol"])
    if op.name == "drop":
        return None if u < op.params["p"] else mask
    raise ValueError(f"label noise {op.name!r} has no implementation")  # a NOISES entry without one


class LabelNoise:
    """A parsed ``label_noise`` spec with its seed; call it on a sample to corrupt its masks.

    Args:
        spec: ``"none"``, ``"boundary(px=2) + drop(p=0.1)"``, ... (see ``losslab.data.noise_spec``),
            or its parsed ops.
        seed: the run's seed; draws depend on ``(seed, image id, instance index)`` only.

    Raises:
        ValueError: a bad spec, with the position and the closest names.
    """

    def __init__(self, spec: str | Sequence[NoiseOp] = "none", seed: int = 0):
        self.ops: tuple[NoiseOp, ...] = parse_label_noise(spec) if isinstance(spec, str) else tuple(spec)
        self.spec = format_label_noise(self.ops)
        self.seed = int(seed)
        self.counts = NoiseCounts()

    def corrupt(
        self, masks: np.ndarray, image_id: int, crowd: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Corrupt the instance masks of one image.

        Args:
            masks: the instances' binary masks, in annotation order (the index is part of the seed).
            image_id: the image's id.
            crowd: optional flags of crowd regions, which are returned unchanged and always kept.

        Returns:
            ``(masks, keep)``: the corrupted masks (a dropped or emptied instance is all zero) and
            which instances remain annotated.

        Shape:
            masks: ``(n, H, W)`` uint8 in and out; crowd, keep: ``(n,)`` bool.
        """
        out = np.array(masks, dtype=np.uint8, copy=True)
        keep = np.ones(len(out), bool)
        crowd = np.zeros(len(out), bool) if crowd is None else np.asarray(crowd, bool)
        streams = _streams(self.ops)
        for k in np.flatnonzero(~crowd):
            self.counts.instances += 1
            mask: np.ndarray | None = out[k]
            for op, stream in zip(self.ops, streams, strict=True):
                mask = _apply(op, mask, _rng(self.seed, image_id, int(k), stream))
                if mask is None:
                    break
            if mask is None:
                self.counts.dropped += 1
                out[k], keep[k] = 0, False
            else:
                out[k], keep[k] = mask, bool(mask.any())
                self.counts.emptied += int(not keep[k])
        return out, keep

    def __call__(self, sample: dict, image_id: int) -> dict:
        """A copy of an untransformed instance sample with corrupted ``masks``, dropped instances
        removed from every array and ``boxes`` re-derived from the masks (``sync_boxes``)."""
        masks, _ = self.corrupt(sample["masks"], image_id, sample.get("iscrowd"))
        return sync_boxes({**sample, "masks": masks})

    def corrupt_dense(self, mask: np.ndarray, image_id: int) -> np.ndarray:
        """Corrupt a dense foreground mask: each 8-connected component is one instance.

        Shape:
            mask: ``(H, W)``, non-zero is foreground; returns ``(H, W)`` float32 0/1.
        """
        n, labels = cv2.connectedComponents((np.asarray(mask) > 0).astype(np.uint8), connectivity=8)
        if n <= 1 or not self.ops:
            return (np.asarray(mask) > 0).astype(np.float32)
        parts = (labels[None] == np.arange(1, n)[:, None, None]).astype(np.uint8)
        corrupted, keep = self.corrupt(parts, image_id)
        return corrupted[keep].any(axis=0).astype(np.float32)

    def __repr__(self) -> str:
        return f"LabelNoise({self.spec!r}, seed={self.seed})"


def make_label_noise(spec: str | None, seed: int = 0) -> LabelNoise | None:
    """``LabelNoise(spec, seed)``, or None for ``"none"`` (datasets then skip the step entirely)."""
    noise = LabelNoise(spec or "none", seed)
    return noise if noise.ops else None


def corrupt_masks(
    masks: np.ndarray, spec: str | Sequence[NoiseOp], seed: int, image_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt the instance masks of one image (the functional form of ``LabelNoise.corrupt``).

    Args:
        masks: binary masks in annotation order.
        spec: a ``label_noise`` spec string or its parsed ops.
        seed: the run's seed.
        image_id: the image's id.

    Returns:
        ``(masks, keep)``: the corrupted masks (dropped or emptied ones all zero) and which remain.

    Shape:
        masks: ``(n, H, W)`` uint8 in and out; keep: ``(n,)`` bool.
    """
    return LabelNoise(spec, seed).corrupt(masks, image_id)
