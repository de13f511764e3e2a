"""One synthetic scene: cigarette butts (and distractors) on a procedural ground, lit and noisy.

``render_scene`` is a pure function of a random generator and a :class:`SceneOptions`; it returns
the RGB image, the *visible* mask of each butt (occluded parts removed, almost hidden butts
dropped), the category of each, and for the dense task the foreground mask and the depth in mm
of a tilted ground plane with the objects raised above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from losslab.data.objects import BUTT_STYLES, DISTRACTORS, Sprite, render_butt, render_distractor
from losslab.data.textures import fractal_noise, ground_texture

__all__ = ["DIFFICULTIES", "Scene", "SceneOptions", "category_names", "parse_objects", "render_scene"]

# difficulty -> (distractors per image (mean), size factor range, light contrast, noise sigma)
DIFFICULTIES: dict[str, tuple[float, tuple[float, float], float, float]] = {
    "easy": (0.0, (0.8, 1.2), 0.15, 1.5),
    "normal": (0.6, (0.55, 1.15), 0.3, 3.0),
    "hard": (3.0, (0.35, 1.0), 0.45, 5.0),
}
# "mostly one butt", like the real Cigarette Butts dataset.
AUTO_COUNTS = (np.array([0, 1, 2, 3, 4]), np.array([0.02, 0.80, 0.12, 0.04, 0.02]))
# Visible share below which an occluded or border-cut butt is dropped from the annotations.
MIN_VISIBLE = 0.2


def category_names(num: int) -> list[str]:
    """The first ``num`` butt styles; with one category every style is a ``cig_butt``."""
    if not 1 <= num <= len(BUTT_STYLES):
        raise ValueError(f"categories must be between 1 and {len(BUTT_STYLES)}, got {num}")
    return list(BUTT_STYLES)[:num]


def parse_objects(spec: str) -> tuple[int, int] | None:
    """``"auto"`` -> None (mostly one), ``"3"`` -> (3, 3), ``"0-4"`` -> (0, 4)."""
    spec = str(spec).strip().lower()
    if spec == "auto":
        return None
    try:
        lo, _, hi = spec.partition("-")
        rng = (int(lo), int(hi or lo))
    except ValueError:
        raise ValueError(f"objects must be 'auto', 'N' or 'MIN-MAX', got {spec!r}") from None
    if rng[0] < 0 or rng[1] < rng[0] or rng[1] > 50:
        raise ValueError(f"objects range {spec!r} must satisfy 0 <= MIN <= MAX <= 50")
    return rng


@dataclass(frozen=True)
class SceneOptions:
    """What a scene may contain."""

    size: int = 512
    objects: str = "auto"
    categories: int = 1
    difficulty: str = "normal"
    dense: bool = False


@dataclass
class Scene:
    """A rendered image with its annotations.

    Shape:
        ``image`` ``(S, S, 3)`` uint8 RGB; ``masks`` ``(n, S, S)`` bool (visible parts);
        ``labels`` ``(n,)`` in 1..C; ``foreground`` ``(S, S)`` bool and ``depth_mm`` ``(S, S)``
        uint16, only for the dense task.
    """

    image: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    foreground: np.ndarray | None = None
    depth_mm: np.ndarray | None = None
    meta: dict = field(default_factory=dict)


def _composite(canvas: np.ndarray, height: np.ndarray, sprite: Sprite, light: np.ndarray, soft: float) -> None:
    """Cast the sprite's soft shadow, then paint it over ``canvas`` and raise ``height``."""
    h, w = sprite.alpha.shape
    ys, xs = slice(sprite.y0, sprite.y0 + h), slice(sprite.x0, sprite.x0 + w)
    # Shadow: the coverage shifted away from the light by the object's height, blurred.
    lift = float(sprite.height.max()) if sprite.height.size else 1.0
    scale = lift * max(0.2, 1 - light[2]) * 1.5
    pad = int(abs(scale) + 3 * soft) + 2
    size = canvas.shape[0]
    a = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
    a[pad : pad + h, pad : pad + w] = sprite.alpha
    m = np.float32([[1, 0, -light[0] * scale], [0, 1, -light[1] * scale]])
    a = cv2.warpAffine(a, m, a.shape[::-1], flags=cv2.INTER_LINEAR)
    a = cv2.GaussianBlur(a, (0, 0), soft)
    gy0, gx0 = sprite.y0 - pad, sprite.x0 - pad
    cy0, cx0 = max(0, gy0), max(0, gx0)
    cy1, cx1 = min(size, gy0 + a.shape[0]), min(size, gx0 + a.shape[1])
    shade = a[cy0 - gy0 : cy1 - gy0, cx0 - gx0 : cx1 - gx0]
    canvas[cy0:cy1, cx0:cx1] *= (1 - 0.55 * (1 - light[2] * 0.5) * shade)[..., None]
    al = sprite.alpha[..., None]
    canvas[ys, xs] = canvas[ys, xs] * (1 - al) + sprite.rgb * al
    under = height[ys, xs]
    cover = sprite.alpha > 0.5
    base = float(under[cover].max()) * 0.8 if cover.any() else 0.0
    under[cover] = base + sprite.height[cover]


def _light(rng: np.random.Generator) -> np.ndarray:
    elevation = rng.uniform(0.35, 1.3)
    azimuth = rng.uniform(0, 2 * np.pi)
    return np.array([np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation), np.sin(elevation)])


def _finish(rng: np.random.Generator, img: np.ndarray, contrast: float, noise: float) -> np.ndarray:
    """Uneven lighting, white balance, a little defocus and sensor noise."""
    size = img.shape[0]
    yy, xx = np.ogrid[0:size, 0:size]
    yy, xx = yy.astype(np.float32) / size - 0.5, xx.astype(np.float32) / size - 0.5
    g = rng.normal(0, 1, 2)
    ramp = 1 + contrast * 0.6 * (g[0] * xx + g[1] * yy)
    blotch = 1 + contrast * 0.5 * fractal_noise(rng, size, size / 1.5, octaves=2)
    vignette = 1 - rng.uniform(0, 0.35) * (xx**2 + yy**2) * 2
    gain = rng.uniform(0.8, 1.15) * np.array([rng.uniform(0.92, 1.08), 1.0, rng.uniform(0.88, 1.1)])
    img = img * (ramp * blotch * vignette)[..., None] * gain.astype(np.float32)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.0))
    img = img + rng.standard_normal(img.shape, np.float32) * np.float32(noise * rng.uniform(0.5, 1.0))
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _count(rng: np.random.Generator, objects: str) -> int:
    span = parse_objects(objects)
    if span is None:
        return int(rng.choice(AUTO_COUNTS[0], p=AUTO_COUNTS[1]))
    return int(rng.integers(span[0], span[1] + 1))


def render_scene(rng: np.random.Generator, opts: SceneOptions) -> Scene:
    """Render one image and its annotations (see the module docstring)."""
    if opts.difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {sorted(DIFFICULTIES)}, got {opts.difficulty!r}")
    n_distract, size_rng, contrast, noise = DIFFICULTIES[opts.difficulty]
    S = opts.size
    names = category_names(opts.categories)
    n = _count(rng, opts.objects)
    # Scale: a typical 27 mm butt spans a share of the image that shrinks as the count grows.
    share = rng.uniform(*size_rng) * 0.38 / np.sqrt(max(n, 1))
    px_per_mm = share * S / 27.0
    light = _light(rng)
    soft = max(0.6, (1.3 - light[2]) * 2.5 * px_per_mm)
    canvas = ground_texture(rng, S, px_per_mm)
    height = np.zeros((S, S), np.float32)
    owner = np.full((S, S), -1, np.int32)
    n_d = int(rng.poisson(n_distract))
    order = rng.permutation(n + n_d)  # butts and distractors interleave, so either may occlude
    labels, full_area = [], []
    for slot in order:
        # Mostly well inside the frame, like the real photos; about one in seven cut by the border.
        inner = rng.random() < 0.85
        centre = tuple(rng.uniform(0.12 * S, 0.88 * S, 2) if inner else rng.uniform(-0.05 * S, 1.05 * S, 2))
        if slot < n:
            label = int(rng.integers(1, len(names) + 1))
            style = (
                names[label - 1] if len(names) > 1 else str(rng.choice(list(BUTT_STYLES)[:4], p=[0.5, 0.3, 0.1, 0.1]))
            )
            sprite = render_butt(rng, S, centre, px_per_mm, style, light)
        else:
            kind = str(rng.choice(DISTRACTORS))
            sprite = render_distractor(rng, S, centre, px_per_mm, kind)
            label = 0
        if sprite is None:
            continue
        _composite(canvas, height, sprite, light, soft)
        h, w = sprite.alpha.shape
        cover = sprite.alpha > 0.5
        win = owner[sprite.y0 : sprite.y0 + h, sprite.x0 : sprite.x0 + w]
        if label:
            labels.append(label)
            full_area.append(max(sprite.full_area, float(cover.sum())))
            win[cover] = len(labels) - 1
        else:
            win[cover] = -2
    masks, kept = [], []
    for i, label in enumerate(labels):
        m = owner == i
        if m.sum() >= max(4, MIN_VISIBLE * full_area[i]):
            masks.append(m)
            kept.append(label)
    image = _finish(rng, canvas, contrast, noise)
    scene = Scene(
        image=image,
        masks=np.array(masks, bool).reshape(-1, S, S),
        labels=np.array(kept, np.int64),
        meta={"px_per_mm": px_per_mm, "butts_drawn": len(labels)},
    )
    if opts.dense:
        # The annotated butts' visible pixels, so the dense and instance targets agree.
        scene.foreground = scene.masks.any(axis=0)
        scene.depth_mm = _depth(rng, S, px_per_mm, height)
    return scene


def _depth(rng: np.random.Generator, size: int, px_per_mm: float, height: np.ndarray) -> np.ndarray:
    """Depth in mm from a camera above a tilted, slightly bumpy ground plane."""
    focal = 1.2 * size
    d0 = focal / px_per_mm  # distance at which one mm spans px_per_mm pixels
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    tilt = rng.uniform(-0.25, 0.25, 2)
    ground = d0 * (1 + tilt[0] * xx + tilt[1] * yy) + 1.5 * fractal_noise(rng, size, size / 4, octaves=3)
    depth = ground - height
    return np.clip(np.round(depth), 1, 65535).astype(np.uint16)
