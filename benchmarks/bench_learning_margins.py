"""The spread of what each learning test measures, next to the bound it asserts.

Every learning test in the suite is a ``fit(seed, bf16) -> {metric: value}`` plus ``BOUNDS``; this
script runs each ``fit`` with 1 and 2 threads, in fp32 and under bfloat16 autocast, over several
seeds (a stand-in for the numerics of other CPU kinds: training trajectories diverge as quickly
under a new seed as under another CPU's rounding), and prints the range of every metric with its
bound and the margin (how far the worst value is from the bound, as a factor).

    python benchmarks/bench_learning_margins.py --seeds 5
    python benchmarks/bench_learning_margins.py --tests yolact --precisions fp32 --threads 1
    python benchmarks/bench_learning_margins.py --tests amp real_photos --seeds 3

Tests that train through the Trainer (``amp``, ``real_photos``) take ``bf16`` as ``amp=bf16``
(bf16 autocast and channels-last); the others as bf16 autocast around their own steps.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._fit import Bound


def _dense_fit(seed: int, bf16: bool) -> dict[str, float]:
    from tests.engine.test_train import fit_dense

    if bf16:  # the fake dense model is a pure fp32 toy: its bf16 variant says nothing
        return {}
    with tempfile.TemporaryDirectory() as d:
        return fit_dense(Path(d), seed)


#: test_amp's fp32 results by (seed, threads), for the IoU gap of its bf16 runs.
_AMP_FP32: dict[tuple[int, int], dict[str, float]] = {}


def _amp_fit(seed: int, bf16: bool) -> dict[str, float]:
    """test_amp's fit, plus under bf16 its third bound: the IoU gap to the fp32 run of the same seed
    and thread count (that run kept from the fp32 pass, or trained here)."""
    from tests.engine.test_amp import fit, iou_gap

    got = fit(seed=seed, bf16=bf16)
    key = (seed, torch.get_num_threads())
    if not bf16:
        _AMP_FP32[key] = got
        return got
    if key not in _AMP_FP32:
        _AMP_FP32[key] = fit(seed=seed, bf16=False)
    return {**got, **iou_gap(_AMP_FP32[key], got)}


def _module_fit(module: str) -> tuple[Callable[[int, bool], dict[str, float]], dict[str, Bound]]:
    mod = importlib.import_module(module)
    return (lambda seed, bf16: mod.fit(seed=seed, bf16=bf16)), mod.BOUNDS


def _tests() -> dict[str, tuple[Callable[[int, bool], dict[str, float]], dict[str, Bound]]]:
    from tests.engine.test_amp import BOUNDS as AMP_BOUNDS
    from tests.engine.test_amp import GAP_BOUNDS
    from tests.engine.test_train import DENSE_BOUNDS

    return {
        "yolact": _module_fit("tests.models.test_yolact_overfit"),
        "maskrcnn": _module_fit("tests.models.test_maskrcnn"),
        "unet": _module_fit("tests.models.test_unet"),
        "masknet": _module_fit("tests.models.test_masknet"),
        "depth": _module_fit("tests.models.test_depth"),
        "trainer": (_dense_fit, DENSE_BOUNDS),
        "amp": (_amp_fit, {**AMP_BOUNDS, **GAP_BOUNDS}),
        "real_photos": _module_fit("tests.data.test_real_photos"),
    }


def _margin(bound: Bound, worst: float) -> str:
    if worst == 0 or bound.limit == 0:
        return "-"
    factor = bound.limit / worst if bound.upper else worst / bound.limit
    return f"{factor:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", nargs="*", default=None, help="which tests (default all)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--bf16-seeds",
        type=int,
        default=None,
        help="seeds under bf16 (default --seeds; bf16 is slow without AVX512-BF16)",
    )
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--precisions", nargs="*", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    args = parser.parse_args()
    tests = _tests()
    names = args.tests or list(tests)
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}", flush=True)
    for name in names:
        fit, bounds = tests[name]
        values: dict[str, list[float]] = {k: [] for k in bounds}
        started = time.perf_counter()
        for threads in args.threads:
            torch.set_num_threads(threads)
            for prec in args.precisions:
                n_seeds = args.seeds if prec == "fp32" or args.bf16_seeds is None else args.bf16_seeds
                for seed in range(n_seeds):
                    got = fit(seed, prec == "bf16")
                    for k, v in got.items():
                        values[k].append(v)
                    print(f"  {name} threads={threads} {prec} seed={seed}: {got}", flush=True)
        runs = max(len(v) for v in values.values())
        print(f"{name} ({runs} runs, {time.perf_counter() - started:.0f} s)")
        print(f"  {'metric':<22}{'bound':>10}{'min':>10}{'max':>10}{'margin':>9}")
        for k, b in bounds.items():
            vs = values[k]
            if not vs:  # measured under one precision only (amp's iou_gap: bf16), which this run left out
                print(f"  {k:<22}{b!s:>10}{'-':>10}{'-':>10}{'-':>9}", flush=True)
                continue
            worst = max(vs) if b.upper else min(vs)
            ok = "" if all(b.holds(v) for v in vs) else "  FAILS"
            print(f"  {k:<22}{b!s:>10}{min(vs):>10.4g}{max(vs):>10.4g}{_margin(b, worst):>9}{ok}", flush=True)


if __name__ == "__main__":
    main()
