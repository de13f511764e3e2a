"""Rendering of the synthetic objects: cigarette butts and distractors (pebbles, leaves, caps,
matchsticks, twigs, paper scraps).

A butt is a bent tube along a polyline centre line: a filter (cork, white, tan or brown) and a
stub of paper that ends in a burnt, ragged, ash-grey tip. For each pixel near it we compute the
arc length ``s`` along the centre line and the signed distance ``v`` across it; the outline,
the cylinder shading (Lambert + a highlight), the cork speckle, the band and the tip all follow
from ``(s, v)``. Every render returns a :class:`Sprite`: colour, coverage (alpha) and height
above the ground, on a window of the canvas.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["BUTT_STYLES", "DISTRACTORS", "Sprite", "render_butt", "render_distractor"]

# name -> (filter RGB, filter speckle strength, radius factor, paper RGB)
BUTT_STYLES: dict[str, tuple[tuple[float, float, float], float, float, tuple[float, float, float]]] = {
    "cig_butt": ((214, 150, 82), 0.22, 1.0, (238, 235, 228)),
    "white_butt": ((236, 233, 224), 0.06, 1.0, (242, 240, 234)),
    "slim_butt": ((226, 214, 190), 0.08, 0.7, (240, 238, 232)),
    "brown_butt": ((120, 78, 48), 0.15, 1.05, (150, 110, 75)),
    "crushed_butt": ((205, 160, 105), 0.18, 1.0, (228, 224, 214)),
    "menthol_butt": ((230, 236, 226), 0.05, 0.95, (236, 240, 236)),
}


@dataclass
class Sprite:
    """An object drawn on a window ``[y0:y1, x0:x1]`` of the canvas.

    Shape:
        ``rgb`` ``(h, w, 3)`` float32, ``alpha`` ``(h, w)`` in [0, 1], ``height`` ``(h, w)`` in mm.
    """

    y0: int
    x0: int
    rgb: np.ndarray
    alpha: np.ndarray
    height: np.ndarray
    full_area: float = 0.0  # pixels the object would cover on an unbounded canvas (border cuts)


def _centreline(rng: np.random.Generator, length: float, bend: float, n: int = 9) -> np.ndarray:
    """Points of a bent centre line of arc length ``length`` centred on the origin.

    The heading changes by a smooth arc (``bend`` radians in all) plus, sometimes, a kink where
    the butt was crushed.
    """
    turn = np.full(n - 1, bend * rng.uniform(-1, 1) / (n - 1))
    if rng.random() < 0.35:
        turn[rng.integers(2, n - 3)] += rng.uniform(-1, 1) * min(bend, 0.8)
    heading = np.concatenate([[0.0], np.cumsum(turn)])
    step = length / (n - 1)
    pts = np.zeros((n, 2))
    pts[1:, 0] = np.cumsum(np.cos(heading[:-1]) * step)
    pts[1:, 1] = np.cumsum(np.sin(heading[:-1]) * step)
    return pts - pts.mean(axis=0)


def _tube_coords(pts: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, ...]:
    """Arc length ``s``, signed distance ``v`` and the unit normal of the nearest segment per pixel.

    The first and last segments extend past their ends, so the tube ends are flat cuts.
    """
    a, b = pts[:-1], pts[1:]
    d = b - a
    seg_len = np.hypot(d[:, 0], d[:, 1])
    u = d / seg_len[:, None]
    start = np.concatenate([[0.0], np.cumsum(seg_len)[:-1]])
    px = xs[..., None] - a[:, 0]
    py = ys[..., None] - a[:, 1]
    t = px * u[:, 0] + py * u[:, 1]
    lo = np.zeros(len(a), np.float32)
    hi = seg_len.copy()
    lo[0], hi[-1] = -np.inf, np.inf
    tc = np.clip(t, lo, hi)
    cx = px - tc * u[:, 0]
    cy = py - tc * u[:, 1]
    dist = np.hypot(cx, cy)
    k = np.argmin(dist, axis=-1)[..., None]
    s = np.take_along_axis(tc + start, k, -1)[..., 0]
    v = np.take_along_axis(px * -u[:, 1] + py * u[:, 0], k, -1)[..., 0]
    normal = np.stack([-u[k[..., 0], 1], u[k[..., 0], 0]], axis=-1)
    return s, v, normal


def _noise_strip(rng: np.random.Generator, n: int) -> np.ndarray:
    """A 1-D smooth random profile in [-1, 1] of length ``n``."""
    base = rng.uniform(-1, 1, max(4, n // 6))
    return cv2.resize(base[None, :].astype(np.float32), (n, 1), interpolation=cv2.INTER_CUBIC)[0]


def _window(cx: float, cy: float, reach: float, canvas: int) -> tuple[int, int, int, int] | None:
    x0, y0 = max(0, int(cx - reach)), max(0, int(cy - reach))
    x1, y1 = min(canvas, int(cx + reach) + 2), min(canvas, int(cy + reach) + 2)
    return None if x1 <= x0 or y1 <= y0 else (x0, y0, x1, y1)


def render_butt(
    rng: np.random.Generator,
    canvas: int,
    centre: tuple[float, float],
    px_per_mm: float,
    style: str,
    light: np.ndarray,
) -> Sprite | None:
    """Draw one cigarette butt; None when it falls completely outside the canvas.

    Args:
        rng: the random source.
        canvas: side of the square image in pixels.
        centre: ``(x, y)`` of the butt's middle in pixels (may lie outside the image: border cuts).
        px_per_mm: image scale.
        style: one of ``BUTT_STYLES``.
        light: unit vector ``(lx, ly, lz)`` towards the light, image axes (x right, y down, z up).
    """
    filt_rgb, speckle, r_fac, paper_rgb = BUTT_STYLES[style]
    diameter = rng.uniform(7.0, 8.2) * r_fac
    filt_len = rng.uniform(14, 25)
    paper_len = rng.uniform(0, 18) if rng.random() < 0.85 else 0.0
    length = (filt_len + paper_len) * px_per_mm
    radius = diameter * px_per_mm / 2
    bend = rng.uniform(0, 0.7) if style != "crushed_butt" else rng.uniform(0.6, 1.2)
    pts = _centreline(rng, length, bend)
    theta = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    pts = pts @ rot.T + np.asarray(centre)
    win = _window(centre[0], centre[1], length / 2 + 3 * radius, canvas)
    if win is None:
        return None
    x0, y0, x1, y1 = win
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32) + 0.5, np.arange(y0, y1, dtype=np.float32) + 0.5)
    s, v, normal = _tube_coords(pts.astype(np.float32), xs, ys)

    # Radius along the tube: crushed paper gets wider and lumpy, the filter stays round.
    ns = max(8, int(length) + 1)
    lump = _noise_strip(rng, ns)
    si = np.clip(s, 0, length - 1).astype(int)
    flat = 0.25 if style == "crushed_butt" else 0.06
    paper_start = filt_len * px_per_mm
    in_paper = s > paper_start
    r = radius * (1 + np.where(in_paper, flat * np.abs(lump[si]), 0.015 * lump[si]))
    # Ragged burnt end: the tip's end moves along s with v.
    tip_noise = _noise_strip(rng, 64)
    vi = np.clip((v / (2 * radius) + 0.5) * 63, 0, 63).astype(int)
    ragged = (0.25 + 0.35 * np.abs(tip_noise[vi])) * radius if paper_len > 0 else 0.05 * radius
    end = length - ragged
    round_start = 0.15 * radius * (1 - np.sqrt(np.clip(1 - (v / radius) ** 2, 0, 1)))
    sd = np.minimum(np.minimum(r - np.abs(v), s - round_start), end - s)
    alpha = np.clip(sd + 0.5, 0.0, 1.0).astype(np.float32)
    if not alpha.any():
        return None

    # Colour by region: filter (speckled), optional band, paper (stained near the tip), ash.
    noise = rng.uniform(-1, 1, (64, 64)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (3, 3), 0.7)
    mu = (s / max(px_per_mm * 0.5, 1.0)).astype(np.float32) % 63
    mv = ((v + 2 * radius) / max(px_per_mm * 0.5, 1.0)).astype(np.float32) % 63
    grain = cv2.remap(noise, mu, mv, cv2.INTER_LINEAR)
    rgb = np.empty((*s.shape, 3), np.float32)
    filt = np.array(filt_rgb, np.float32) * rng.uniform(0.88, 1.08, 3)
    rgb[:] = filt * (1 + speckle * grain)[..., None]
    paper = np.array(paper_rgb, np.float32) * rng.uniform(0.9, 1.02)
    crease = _noise_strip(rng, ns)[si] * _noise_strip(rng, 64)[vi]
    wrinkle = 1 + 0.06 * grain + 0.08 * crease
    rgb[in_paper] = (paper * wrinkle[..., None])[in_paper]
    if paper_len > 0 and rng.random() < 0.55:
        band = np.abs(s - paper_start) < max(0.6, 0.5 * px_per_mm)
        rgb[band] = np.array([200, 168, 95], np.float32) * rng.uniform(0.8, 1.1)
    if paper_len > 0:
        # Brown scorch before the ash, and the ash itself at the very end.
        to_end = end - s
        scorch = np.clip(1 - to_end / (3.0 * px_per_mm), 0, 1)[..., None]
        rgb = rgb * (1 - 0.55 * scorch) + np.array([110, 85, 60], np.float32) * 0.55 * scorch
        ash = to_end < rng.uniform(0.8, 2.5) * px_per_mm
        rgb[ash] = (np.array([70, 68, 66], np.float32) * (1 + 0.5 * grain[..., None]))[ash]
    dirt = 1 - 0.18 * np.clip(_noise_strip(rng, ns)[si], 0, 1)
    rgb *= dirt[..., None]

    # Cylinder shading: the surface normal tilts across the tube by asin(v / r).
    nv = np.clip(v / np.maximum(r, 1e-3), -1, 1)
    nz = np.sqrt(1 - nv**2)
    lateral = normal[..., 0] * light[0] + normal[..., 1] * light[1]
    lambert = np.clip(nv * lateral + nz * light[2], 0, 1)
    spec = np.clip(nv * lateral + nz * light[2], 0, 1) ** 12
    rgb = rgb * (0.35 + 0.7 * lambert)[..., None] + 40 * spec[..., None]
    height = (r + np.sqrt(np.clip(r**2 - v**2, 0, None))) / px_per_mm
    full_area = (length - 0.4 * radius) * 2 * radius
    return Sprite(y0, x0, rgb.astype(np.float32), alpha, height.astype(np.float32), full_area)


_CAPS = ((190, 190, 195), (200, 170, 90), (165, 45, 40), (45, 70, 140), (220, 220, 214))


def _blob(rng: np.random.Generator, n: int, wobble: float) -> np.ndarray:
    """A random star-shaped outline on the unit circle."""
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = 1 + wobble * _noise_strip(rng, n)
    return np.stack([np.cos(ang) * rad, np.sin(ang) * rad], axis=1)


def render_distractor(
    rng: np.random.Generator, canvas: int, centre: tuple[float, float], px_per_mm: float, kind: str
) -> Sprite | None:
    """Draw one object that is not a butt (never annotated): a hard negative for the detector."""
    size_mm = {"pebble": (5, 25), "leaf": (20, 60), "cap": (25, 32), "match": (40, 50), "twig": (30, 90)}
    size_mm["paper"] = (15, 50)
    extent = rng.uniform(*size_mm[kind]) * px_per_mm
    win = _window(centre[0], centre[1], extent / 2 + 3, canvas)
    if win is None:
        return None
    x0, y0, x1, y1 = win
    h, w = y1 - y0, x1 - x0
    ss = 4  # supersample the drawing for smooth edges
    big_a = np.zeros((h * ss, w * ss), np.float32)
    big_c = np.zeros((h * ss, w * ss, 3), np.float32)
    c = np.array([centre[0] - x0, centre[1] - y0]) * ss
    theta = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    half = extent * ss / 2
    colours = {
        "pebble": np.array([rng.uniform(90, 200)] * 3) * rng.uniform(0.85, 1.1, 3),
        "leaf": np.array([rng.uniform(80, 140), rng.uniform(70, 120), rng.uniform(30, 60)]),
        "cap": np.array(_CAPS[rng.integers(len(_CAPS))], np.float64) * rng.uniform(0.8, 1.05),
        "match": np.array([205, 170, 120.0]),
        "twig": np.array([110, 80, 55.0]) * rng.uniform(0.7, 1.2),
        "paper": np.array([235, 232, 225.0]) * rng.uniform(0.85, 1.0),
    }
    col = colours[kind]
    if kind in ("match", "twig"):
        thick = (2.2 if kind == "match" else rng.uniform(2, 5)) * px_per_mm * ss
        p = (np.array([[-1, 0], [1, 0]]) * half) @ rot.T + c
        cv2.line(big_a, tuple(p[0].astype(int)), tuple(p[1].astype(int)), 1.0, max(1, int(thick)))
        big_c[:] = col
        if kind == "match" and rng.random() < 0.7:
            head = (0.8 if rng.random() < 0.5 else 0.1, 0.1, 0.08)
            cv2.circle(big_c, tuple(p[1].astype(int)), int(thick * 1.1), np.array(head) * 200, -1)
            cv2.circle(big_a, tuple(p[1].astype(int)), int(thick * 1.1), 1.0, -1)
    else:
        squash = {"leaf": 0.4, "cap": 1.0, "pebble": rng.uniform(0.5, 1), "paper": rng.uniform(0.3, 1)}[kind]
        wob = {"leaf": 0.05, "cap": 0.0, "pebble": 0.12, "paper": 0.25}[kind]
        outline = _blob(rng, 40, wob) * np.array([1.0, squash]) * half
        poly = (outline @ rot.T + c).astype(np.int32)
        cv2.fillPoly(big_a, [poly], 1.0)
        yy, xx = np.mgrid[0 : h * ss, 0 : w * ss].astype(np.float32)
        d = np.hypot(xx - c[0], yy - c[1]) / max(half, 1)
        shade = 1.15 - 0.35 * d if kind in ("pebble", "cap") else 1.0 + 0.05 * np.sin(xx * 0.3)
        big_c[:] = col
        big_c *= shade[..., None]
    alpha = cv2.resize(big_a, (w, h), interpolation=cv2.INTER_AREA)
    rgb = cv2.resize(big_c, (w, h), interpolation=cv2.INTER_AREA)
    if not (alpha > 0.5).any():
        return None
    heights = {"pebble": 0.5 * extent / px_per_mm, "cap": 6.0, "leaf": 1.0, "paper": 0.5}
    height = alpha * heights.get(kind, 2.5)
    return Sprite(y0, x0, rgb, alpha, height.astype(np.float32))


DISTRACTORS: tuple[str, ...] = ("pebble", "leaf", "cap", "match", "twig", "paper")
