"""The synthetic Cigarette-Butts-like dataset: writing it to disk in COCO format, in parallel.

Layout (docs/architecture.md): ``ROOT/{train,val}/<id>.png``,
``ROOT/annotations/instances_{split}.json`` and, for ``task="dense"``, ``ROOT/{split}_masks/``
(0/255) and ``ROOT/{split}_depth/`` (16-bit, mm). ``ROOT/synth.json`` records the arguments and
is written last, so a folder that has it is complete. ``layout="cig_butts"`` or ``"roboflow"``
writes the same scenes as JPEG in that dataset layout (``losslab.data.layout``), so that tests
read what a real download looks like.

Every image draws from its own generator seeded by ``(seed, split, index)``, so the bytes do
not depend on the number of worker processes, and the same arguments give the same files.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from losslab.data.cocofile import decode_rle
from losslab.data.layout import LAYOUTS
from losslab.data.scene import DIFFICULTIES, SceneOptions, category_names, parse_objects, render_scene

__all__ = ["GENERATOR_VERSION", "SynthConfig", "default_cache_dir", "encode_mask", "ensure_synthetic", "generate"]

# Bump when a change to the renderer changes the pixels: cached datasets are keyed by it.
GENERATOR_VERSION = 1
SPLITS = {"train": 0, "val": 1}
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # noisy photos barely compress; favour speed
_JPEG = [cv2.IMWRITE_JPEG_QUALITY, 95]  # the other layouts are real downloads' JPEGs
DEFAULT_LAYOUT = "losslab"


@dataclass(frozen=True)
class SynthConfig:
    """Arguments of a synthetic dataset; the same config always gives the same files."""

    train: int = 2000
    val: int = 200
    size: int = 512
    seed: int = 0
    task: str = "instance"
    objects: str = "auto"
    categories: int = 1
    difficulty: str = "normal"
    segmentation: str = "polygon"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if self.train < 0 or self.val < 0:
            raise ValueError(f"train and val must be >= 0, got train={self.train} val={self.val}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not 32 <= self.size <= 4096:
            raise ValueError(f"size must be between 32 and 4096 pixels, got {self.size}")
        if self.task not in ("instance", "dense"):
            raise ValueError(f"task must be 'instance' or 'dense', got {self.task!r}")
        if self.difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {sorted(DIFFICULTIES)}, got {self.difficulty!r}")
        if self.segmentation not in ("polygon", "rle"):
            raise ValueError(f"segmentation must be 'polygon' or 'rle', got {self.segmentation!r}")
        parse_objects(self.objects)
        category_names(self.categories)

    def key(self) -> str:
        """A short hash of the config and the generator version (names cache folders)."""
        blob = json.dumps({**asdict(self), "version": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


def encode_mask(mask: np.ndarray, fmt: str = "polygon") -> dict | list:
    """COCO ``segmentation`` of a binary mask: polygons traced on the pixel outline, or RLE.

    Polygons follow the outer edge of the pixels (traced on a 2x upsampled mask), so
    pycocotools rasterises them back to almost the same pixels; holes are not representable
    as polygons, so a mask whose polygons' IoU with it is below 0.98 falls back to RLE.

    Shape:
        ``mask`` ``(H, W)`` bool or 0/1.
    """
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    h, w = m.shape
    if fmt == "polygon":
        big = cv2.resize(m, (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        polys = [((c.reshape(-1, 2) + 0.5) / 2).round(2).ravel().tolist() for c in contours if len(c) >= 3]
        if polys:
            back = decode_rle(mask_utils.merge(mask_utils.frPyObjects(polys, h, w)))
            if (back & m).sum() >= 0.98 * max(int((back | m).sum()), 1):  # IoU: holes fill in
                return polys
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


def _annotation(segm: dict | list, h: int, w: int) -> tuple[list[float], int]:
    """``bbox`` (xywh) and ``area`` of what the segmentation decodes to, so they agree exactly."""
    rle = mask_utils.merge(mask_utils.frPyObjects(segm, h, w)) if isinstance(segm, list) else segm
    if isinstance(rle["counts"], str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    return bbox, int(mask_utils.area(rle))


def _stem(index: int) -> str:
    return f"{index:06d}"


def _render_one(job: tuple[SynthConfig, str, int, str, str]) -> tuple[dict, list[dict]]:
    """Render, write and annotate image ``index`` of ``split`` (runs in a worker process)."""
    cfg, split, index, root, layout = job
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(SPLITS[split], index)))
    opts = SceneOptions(cfg.size, cfg.objects, cfg.categories, cfg.difficulty, dense=cfg.task == "dense")
    scene = render_scene(rng, opts)
    stem, S = _stem(index), cfg.size
    out = Path(root)
    name = f"{stem}.png" if layout == DEFAULT_LAYOUT else f"{stem}.jpg"
    image_dir = LAYOUTS[layout].write_paths(out, split)[1]
    cv2.imwrite(
        str(image_dir / name), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR), _PNG if name[-3:] == "png" else _JPEG
    )
    if scene.foreground is not None and scene.depth_mm is not None:
        fg = scene.foreground.astype(np.uint8) * 255
        cv2.imwrite(str(out / f"{split}_masks" / f"{stem}.png"), fg, _PNG)
        cv2.imwrite(str(out / f"{split}_depth" / f"{stem}.png"), scene.depth_mm, _PNG)
    image = {"id": index + 1, "file_name": name, "height": S, "width": S}
    anns = []
    for mask, label in zip(scene.masks, scene.labels, strict=True):
        segm = encode_mask(mask, cfg.segmentation)
        bbox, area = _annotation(segm, S, S)
        if area == 0:
            continue
        anns.append(
            {"image_id": index + 1, "category_id": int(label), "segmentation": segm, "area": area}
            | {"bbox": bbox, "iscrowd": 0}
        )
    return image, anns


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already; nested threads only contend


def _jobs(cfg: SynthConfig, root: Path, layout: str) -> Iterator[tuple[SynthConfig, str, int, str, str]]:
    for split in SPLITS:
        for index in range(getattr(cfg, split)):
            yield cfg, split, index, str(root), layout


def _run(cfg: SynthConfig, root: Path, workers: int, progress: bool, layout: str) -> Iterator[tuple[dict, list[dict]]]:
    """Results in job order, from a pool of ``workers`` processes (or this one)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    total = cfg.train + cfg.val
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn())
    bar = Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), disable=not progress, transient=False)
    with bar:
        task = bar.add_task(f"synth {cfg.size}px", total=total)
        if workers <= 1:
            for job in _jobs(cfg, root, layout):
                yield _render_one(job)
                bar.advance(task)
            return
        # spawn: a clean interpreter per worker (fork after OpenCV/torch threads can deadlock).
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_worker) as pool:
            for result in pool.imap(_render_one, _jobs(cfg, root, layout), chunksize=4):
                yield result
                bar.advance(task)


def _make_dirs(root: Path, cfg: SynthConfig, layout: str) -> dict[str, Path]:
    """Create the folders of ``layout``; returns each split's json path."""
    if layout not in LAYOUTS or layout == "coco2017":
        raise ValueError(f"layout must be 'losslab', 'cig_butts' or 'roboflow', got {layout!r}")
    if cfg.task == "dense" and layout != DEFAULT_LAYOUT:
        raise ValueError(f"task 'dense' writes losslab's own layout only (its masks and depth folders), not {layout!r}")
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"output folder {root} is not empty; choose a new folder or delete it first")
    paths = {s: LAYOUTS[layout].write_paths(root, s) for s in SPLITS}
    dirs = [p for pair in paths.values() for p in (pair[0].parent, pair[1])]
    if cfg.task == "dense":
        dirs += [root / f"{s}_{kind}" for s in SPLITS for kind in ("masks", "depth")]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return {s: pair[0] for s, pair in paths.items()}


def generate(
    out: str | Path, cfg: SynthConfig, workers: int | None = None, progress: bool = True, layout: str = DEFAULT_LAYOUT
) -> Path:
    """Write the dataset described by ``cfg`` into ``out`` (created; must be empty or absent).

    Args:
        out: dataset root.
        cfg: what to generate.
        workers: worker processes (default: one per CPU core, or this process alone for small
            datasets where starting workers costs more than it saves); 1 renders in this process.
        progress: show a rich progress bar with ETA.
        layout: ``"losslab"`` (PNG, ``annotations/instances_{split}.json``), ``"cig_butts"`` or
            ``"roboflow"`` (JPEG, as those downloads are laid out; instance task only).

    Returns:
        ``out`` as a ``Path``.
    """
    cfg.validate()
    root = Path(out)
    json_paths = _make_dirs(root, cfg, layout)
    if workers is None:
        # Starting a process costs about a second; only worth it when rendering takes longer.
        serial_s = (cfg.train + cfg.val) * (cfg.size / 512) ** 2 * 0.1
        workers = (os.cpu_count() or 1) if serial_s > 3.0 else 1
    workers = max(1, workers)
    categories = [
        {"id": i + 1, "name": n, "supercategory": "cig_butt"} for i, n in enumerate(category_names(cfg.categories))
    ]
    coco: dict[str, dict] = {s: {"images": [], "annotations": [], "categories": categories} for s in SPLITS}
    order = [s for s in SPLITS for _ in range(getattr(cfg, s))]
    for split, (image, anns) in zip(order, _run(cfg, root, workers, progress, layout), strict=True):
        coco[split]["images"].append(image)
        for ann in anns:
            ann["id"] = len(coco[split]["annotations"]) + 1
            coco[split]["annotations"].append(ann)
    info = {"description": "losslab synthetic cigarette butts", "generator_version": GENERATOR_VERSION}
    extra = {} if layout == DEFAULT_LAYOUT else {"layout": layout}  # the default's bytes stay as they were
    for split, data in coco.items():
        data = {"info": info | {"split": split, **asdict(cfg)} | extra, **data}
        json_paths[split].write_text(json.dumps(data, separators=(",", ":")))
    record = {**asdict(cfg), "generator_version": GENERATOR_VERSION} | extra
    (root / "synth.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    return root


def default_cache_dir() -> Path:
    """``$LOSSLAB_CACHE/datasets`` or ``~/.cache/losslab/datasets``."""
    base = os.environ.get("LOSSLAB_CACHE") or Path.home() / ".cache" / "losslab"
    return Path(base) / "datasets"


def ensure_synthetic(
    cache_dir: str | Path | None = None,
    train: int = 2000,
    val: int = 200,
    size: int = 512,
    seed: int = 0,
    task: str = "instance",
    workers: int | None = None,
    progress: bool = True,
    **options: object,
) -> Path:
    """The root of a synthetic dataset with these arguments, generated on first use.

    The folder name holds the arguments and a hash of them (and of ``GENERATOR_VERSION``). The
    dataset is written into a temporary folder next to it and renamed into place when complete,
    so a crash or a concurrent caller never sees half a dataset. The temporary folders that a
    killed generator left (``.tmp-synth-*``) are removed by the next generation that finds no other
    one running (``_generating``).

    Args:
        cache_dir: where datasets live (default ``default_cache_dir()``).
        train, val, size, seed, task: as ``SynthConfig``.
        workers, progress: as ``generate``.
        **options: other ``SynthConfig`` fields (``objects``, ``categories``, ``difficulty``,
            ``segmentation``).
    """
    unknown = set(options) - set(SynthConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(
            f"unknown synthetic dataset options {sorted(unknown)}; valid: {sorted(SynthConfig.__dataclass_fields__)}"
        )
    cfg = SynthConfig(train=train, val=val, size=size, seed=seed, task=task, **options)  # type: ignore[arg-type]
    cfg.validate()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = cache / f"synth-{task}-{size}px-{train}+{val}-seed{seed}-{cfg.key()}"
    if (final / "synth.json").exists():
        return final
    cache.mkdir(parents=True, exist_ok=True)
    with _generating(cache):
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final.name}-", dir=cache))
        try:
            generate(tmp, cfg, workers=workers, progress=progress)
            try:
                os.rename(tmp, final)
            except OSError:
                if not (final / "synth.json").exists():  # not a finished twin from a concurrent caller
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


#: How the temporary folders of ``ensure_synthetic`` begin (``.tmp-synth-...``).
TMP_PREFIX = ".tmp-"


@contextmanager
def _generating(cache: Path) -> Iterator[None]:
    """Hold ``cache/.generating.lock`` shared while generating into ``cache``.

    Whoever can take the lock exclusively knows that no generator is running, so every temporary
    folder in the cache was left by a killed one: it removes them first. The lock goes with the
    process that holds it, however it dies.
    """
    fd = os.open(cache / ".generating.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another generator is running: its folder is not stale
        else:
            for stale in cache.glob(f"{TMP_PREFIX}synth-*"):
                shutil.rmtree(stale, ignore_errors=True)
        fcntl.flock(fd, fcntl.LOCK_SH)  # taken before this generator's folder exists
        yield
    finally:
        os.close(fd)
