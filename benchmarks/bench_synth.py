"""Synthetic dataset generation speed: images per second with 1 and N worker processes, and
the time extrapolated to the paper's 2,200 images of 512 px.

    .venv/bin/python benchmarks/bench_synth.py --images 220 --size 512 --workers 2
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from losslab.data.synth import SynthConfig, generate


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the pool workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run(images: int, size: int, workers: int, difficulty: str) -> tuple[float, float]:
    """Wall and CPU seconds to generate ``images`` images (90% train, 10% val) with ``workers``."""
    cfg = SynthConfig(train=images - images // 10, val=images // 10, size=size, seed=0, difficulty=difficulty)
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), _cpu()
        generate(Path(tmp) / "ds", cfg, workers=workers, progress=False)
        return time.perf_counter() - t0, _cpu() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=220)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--difficulty", default="normal")
    args = ap.parse_args()
    full = 2200 / args.images
    print(
        f"{args.images} images of {args.size} px, difficulty {args.difficulty}, load average {os.getloadavg()[0]:.1f}"
    )
    walls = {}
    for workers in (1, args.workers):
        wall, cpu = run(args.images, args.size, workers, args.difficulty)
        walls[workers] = wall
        print(
            f"  {workers} process(es): {wall:7.1f} s wall, {cpu / args.images:5.3f} CPU s/img, "
            f"{args.images / wall:6.2f} img/s -> 2200 images: {wall * full / 60:5.1f} min wall; "
            f"on {args.workers} idle cores: {cpu * full / args.workers / 60:5.1f} min"
        )
    print(f"  speed-up of {args.workers} workers vs 1 process: x{walls[1] / walls[args.workers]:.2f}")


if __name__ == "__main__":
    main()
