"""Procedural ground textures for the synthetic dataset: asphalt, soil, grass, gravel, tiles.

Every texture is a float32 RGB image in [0, 255] of shape ``(S, S, 3)`` drawn from a
``numpy.random.Generator`` only, so the same generator state gives the same pixels. Sizes of
grains, stones and tiles are given in pixels per millimetre (``px_per_mm``), so the ground and the
cigarette butts on it share one physical scale.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["GROUNDS", "fractal_noise", "ground_texture"]


def fractal_noise(rng: np.random.Generator, size: int, cell: float, octaves: int = 4) -> np.ndarray:
    """Smooth value noise in about [-1, 1]: random grids upsampled with cubic interpolation.

    Args:
        rng: the random source.
        size: side of the square output in pixels.
        cell: size in pixels of the coarsest noise cell.
        octaves: number of layers, each twice as fine and half as strong as the previous.

    Shape:
        returns ``(size, size)`` float32.
    """
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        n = max(2, int(np.ceil(size / max(cell, 1.0))) + 2)
        grid = rng.standard_normal((n, n)).astype(np.float32)
        big = cv2.resize(grid, (n * int(np.ceil(size / (n - 2))),) * 2, interpolation=cv2.INTER_CUBIC)
        out += amp * big[:size, :size]
        total += amp
        amp *= 0.5
        cell /= 2.0
        if cell < 1.0:
            break
    return out / (total * 1.2)


def _tint(gray: np.ndarray, color: np.ndarray) -> np.ndarray:
    """Multiply a gray intensity map (about 1.0 on average) by an RGB colour."""
    return gray[..., None] * color[None, None, :].astype(np.float32)


def _speckles(rng: np.random.Generator, img: np.ndarray, density: float, radius: float, spread: float) -> None:
    """Small light and dark dots (aggregate, sand grains), added in place.

    Sparse random impulses blurred to the grain radius; the blur's peak loss is compensated so a
    dot keeps about ``spread`` of contrast.
    """
    size = img.shape[0]
    dots = np.where(rng.random((size, size), np.float32) < density, rng.standard_normal((size, size), np.float32), 0)
    sigma = max(0.5, radius * 0.7)
    dots = cv2.GaussianBlur(dots.astype(np.float32), (0, 0), sigma) * (2 * np.pi * sigma**2) * spread
    img += np.clip(dots, -3 * spread, 3 * spread)[..., None]


def _asphalt(rng: np.random.Generator, size: int, px_per_mm: float) -> np.ndarray:
    base = rng.uniform(55, 115)
    grain = fractal_noise(rng, size, cell=max(2.0, 1.5 * px_per_mm), octaves=2)
    stain = fractal_noise(rng, size, cell=size / 2, octaves=3)
    gray = 1.0 + 0.18 * grain + 0.12 * stain
    img = _tint(gray, np.array([base, base * 0.99, base * 0.97]) * rng.uniform(0.95, 1.05, 3))
    _speckles(rng, img, 0.02, radius=0.3 * px_per_mm, spread=22)
    return img


def _soil(rng: np.random.Generator, size: int, px_per_mm: float) -> np.ndarray:
    color = np.array([rng.uniform(95, 150), rng.uniform(70, 105), rng.uniform(45, 70)])
    low = fractal_noise(rng, size, cell=size / 3, octaves=4)
    grain = fractal_noise(rng, size, cell=max(2.0, px_per_mm), octaves=2)
    img = _tint(1.0 + 0.25 * low + 0.12 * grain, color)
    _speckles(rng, img, 0.003, radius=0.8 * px_per_mm, spread=30)
    _stones(rng, img, count=int(rng.integers(0, 25)), size_mm=(1.5, 5), px_per_mm=px_per_mm)
    return img


def _grass(rng: np.random.Generator, size: int, px_per_mm: float) -> np.ndarray:
    img = _soil(rng, size, px_per_mm) * 0.7
    density = rng.uniform(0.5, 1.0)
    count = int(density * size * size / max(4.0, 2.5 * px_per_mm))
    hue = np.array([rng.uniform(50, 90), rng.uniform(95, 150), rng.uniform(25, 55)])
    xs = rng.uniform(0, size, count)
    ys = rng.uniform(0, size, count)
    lengths = rng.uniform(4, 15, count) * px_per_mm
    angles = rng.normal(rng.uniform(0, np.pi), 0.6, count)
    shades = rng.uniform(0.55, 1.35, count)
    widths = np.maximum(1, (rng.uniform(0.6, 1.6, count) * px_per_mm).astype(int))
    dry = rng.random(count) < rng.uniform(0.0, 0.2)
    ends = np.stack([xs, ys, xs + lengths * np.cos(angles), ys + lengths * np.sin(angles)], 1)
    colours = np.where(dry[:, None], np.array([170.0, 150.0, 95.0]), hue) * shades[:, None]
    # One polylines call per (colour bin, width): far faster than a call per blade.
    tone = np.clip(((shades - 0.55) / 0.8 * 8).astype(int), 0, 7) + 8 * dry
    order = rng.permutation(count)  # draw in random order so no bin always lies on top
    for group in np.array_split(order, 6):
        for key in rng.permutation(np.unique(tone[group] * 100 + widths[group])):
            sel = group[tone[group] * 100 + widths[group] == key]
            lines = list(ends[sel].reshape(-1, 2, 2).astype(np.int32))
            colour = np.clip(colours[sel].mean(0), 0, 255).tolist()
            cv2.polylines(img, lines, False, colour, int(widths[sel[0]]), cv2.LINE_AA)
    return img


def _stones(
    rng: np.random.Generator,
    img: np.ndarray,
    count: int,
    size_mm: tuple[float, float],
    px_per_mm: float,
    palette: np.ndarray | None = None,
) -> None:
    """Shaded pebbles (dark rim, body, highlight), drawn in place."""
    size = img.shape[0]
    centres = rng.uniform(0, size, (count, 2))
    a = rng.uniform(*size_mm, count) * px_per_mm / 2
    b = a * rng.uniform(0.55, 1.0, count)
    angles = rng.uniform(0, 180, count)
    if palette is None:
        cols = rng.uniform(100, 190, (count, 1)) * np.array([1.0, 0.95, 0.85]) * rng.uniform(0.95, 1.05, (count, 3))
    else:
        cols = palette[rng.integers(len(palette), size=count)] * rng.uniform(0.8, 1.15, (count, 1))
    body = np.clip(cols, 0, 255).tolist()
    light = np.clip(cols * 1.18, 0, 255).tolist()
    for k in range(count):
        cx, cy = centres[k]
        centre = (int(cx), int(cy))
        axes = (max(1, int(a[k])), max(1, int(b[k])))
        cv2.ellipse(img, (centre[0] + 1, centre[1] + 1), axes, angles[k], 0, 360, (25, 25, 25), -1, cv2.LINE_AA)
        cv2.ellipse(img, centre, axes, angles[k], 0, 360, body[k], -1)
        hi = (max(1, int(a[k] * 0.45)), max(1, int(b[k] * 0.4)))
        hc = (int(cx - a[k] * 0.2), int(cy - b[k] * 0.25))
        cv2.ellipse(img, hc, hi, angles[k], 0, 360, light[k], -1, cv2.LINE_AA)


def _gravel(rng: np.random.Generator, size: int, px_per_mm: float) -> np.ndarray:
    img = _asphalt(rng, size, px_per_mm) * 0.6
    palette = rng.uniform(90, 200, (5, 1)) * (np.array([1.0, 0.96, 0.9]) * rng.uniform(0.95, 1.05, (5, 3)))
    stone_mm = rng.uniform(4, 12)
    area_px = (stone_mm * px_per_mm) ** 2 * 0.6
    count = int(min(6000, 1.3 * size * size / max(area_px, 4.0)))
    _stones(rng, img, count, (stone_mm * 0.5, stone_mm * 1.5), px_per_mm, palette)
    img *= (1.0 + 0.1 * fractal_noise(rng, size, cell=max(2.0, 0.7 * px_per_mm), octaves=2))[..., None]
    return img


def _tiles(rng: np.random.Generator, size: int, px_per_mm: float) -> np.ndarray:
    big = int(size * 1.5)
    tile = rng.uniform(60, 200) * px_per_mm
    tile_h = tile * rng.choice([1.0, 0.5])
    grout = max(1, int(rng.uniform(1.5, 6) * px_per_mm))
    base = np.array([rng.uniform(120, 210)] * 3) * rng.uniform(0.85, 1.08, 3)
    img = np.empty((big, big, 3), np.float32)
    img[:] = base * 0.55
    rows = int(np.ceil(big / tile_h)) + 1
    cols = int(np.ceil(big / tile)) + 1
    brick = tile_h < tile
    for r in range(rows):
        offset = (tile / 2) if (brick and r % 2) else 0.0
        for c in range(-1, cols):
            x0, y0 = c * tile + offset, r * tile_h
            col = base * rng.uniform(0.88, 1.1)
            cv2.rectangle(
                img,
                (int(x0 + grout / 2), int(y0 + grout / 2)),
                (int(x0 + tile - grout / 2), int(y0 + tile_h - grout / 2)),
                tuple(float(v) for v in col),
                -1,
            )
    rot = cv2.getRotationMatrix2D((big / 2, big / 2), rng.uniform(-45, 45), 1.0)
    img = cv2.warpAffine(img, rot, (big, big), flags=cv2.INTER_LINEAR)
    off = (big - size) // 2
    img = np.ascontiguousarray(img[off : off + size, off : off + size])
    grain = fractal_noise(rng, size, cell=max(2.0, px_per_mm), octaves=2)
    dirt = fractal_noise(rng, size, cell=size / 3, octaves=3)
    img *= (1.0 + 0.07 * grain + 0.15 * dirt)[..., None]
    return img


GROUNDS: dict[str, Callable[[np.random.Generator, int, float], np.ndarray]] = {
    "asphalt": _asphalt,
    "soil": _soil,
    "grass": _grass,
    "gravel": _gravel,
    "tiles": _tiles,
}


def ground_texture(rng: np.random.Generator, size: int, px_per_mm: float, kind: str | None = None) -> np.ndarray:
    """A ground texture of one of the kinds in ``GROUNDS`` (a random one when ``kind`` is None).

    Shape:
        returns ``(size, size, 3)`` float32 RGB in [0, 255].
    """
    if kind is None:
        kind = str(rng.choice(sorted(GROUNDS)))
    if kind not in GROUNDS:
        raise ValueError(f"unknown ground texture {kind!r}; choose one of {sorted(GROUNDS)}")
    return np.clip(GROUNDS[kind](rng, size, px_per_mm), 0, 255).astype(np.float32)
