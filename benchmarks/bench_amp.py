"""bf16 autocast against float32 training on this CPU, every variant measured in the same run.

For each model (default ``yolact_tiny`` and ``yolact_lite``), the ``Trainer``'s own step
(forward under autocast, loss in float32, backward, non-finite check, AdamW) on one batch of the
synthetic dataset, 128 px, batch 8, on ``--threads`` threads (2), in four precisions:

- ``fp32``, ``fp32+channels-last``;
- ``bf16``, ``bf16+channels-last`` (the latter is what ``amp=bf16`` runs, and ``amp=true`` on a
  CPU with native bf16).

Each model also gets its forward + backward alone (float32, no optimiser step). Rounds go over
all variants in turn, so a change of load on a shared machine hits every variant alike; each
number is the median over rounds, and the ratios compare variants of one model, or the models'
forward + backward against the first model's. Models take overrides: ``yolact_lite:freeze_at=0``.

    .venv/bin/python benchmarks/bench_amp.py [--models yolact_tiny yolact_lite] [--size 128]
        [--batch 8] [--threads 2] [--rounds 5] [--steps 3] [--variants fp32 bf16 ...] [--clock cpu]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from losslab.config import parse_kv
from losslab.data import collate_instances, ensure_synthetic
from losslab.engine.config import TrainConfig
from losslab.engine.datasets import build_split
from losslab.engine.train import Trainer
from losslab.models import create_model
from losslab.precision import Precision, cpu_has_native_bf16

VARIANTS = {
    "fp32": (None, False),
    "fp32+channels-last": (None, True),
    "bf16": (torch.bfloat16, False),
    "bf16+channels-last": (torch.bfloat16, True),
}


class FixedItems(Dataset):
    """Pre-made samples, so that a timed step holds no image decoding or augmentation."""

    def __init__(self, items: list):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def make_items(size: int, n: int) -> list:
    """``n`` letterboxed, normalised samples of the synthetic dataset at ``size`` px."""
    root = ensure_synthetic(train=n, val=1, size=size, seed=0, progress=False)
    dataset, _ = build_split(root, "train", "instance", size, train=False)
    return [dataset[i] for i in range(n)]


def make_trainer(spec: str, items: list, size: int, batch: int, dtype: torch.dtype | None, cl: bool) -> Trainer:
    """A ``Trainer`` of model ``spec`` (``name[:key=value,...]``) forced to one precision."""
    name, _, extra = spec.partition(":")
    overrides = parse_kv(extra.split(",")) if extra else {}
    torch.manual_seed(0)
    model = create_model(name, num_classes=1, input_size=size, **overrides)
    cfg = TrainConfig(
        model=name, batch_size=batch, max_iter=10**6, optimizer="adamw", lr=1e-4, amp=False,
        warmup_iters=0, log_every=10**6, device="cpu",
    )  # fmt: skip
    trainer = Trainer(model, FixedItems(items), cfg, collate_fn=collate_instances, device="cpu")
    trainer.precision = Precision("cpu", dtype, scaler=False, channels_last=cl)
    if cl:
        trainer.model.to(memory_format=torch.channels_last)
    return trainer


def fwd_bwd(spec: str, items: list, size: int, batch: int) -> Callable[[], None]:
    """One float32 forward + backward of model ``spec`` on a fixed batch, no optimiser step."""
    name, _, extra = spec.partition(":")
    overrides = parse_kv(extra.split(",")) if extra else {}
    torch.manual_seed(0)
    model = create_model(name, num_classes=1, input_size=size, **overrides).train()
    images, targets = collate_instances(items[:batch])

    def run() -> None:
        losses = model(images, targets)
        model.zero_grad(set_to_none=True)
        sum(v for k, v in losses.items() if k.startswith("loss_")).backward()

    return run


def measure(
    jobs: dict[tuple[str, str], Callable[[], None]], rounds: int, steps: int, clock: Callable[[], float]
) -> dict[tuple, float]:
    """Median over ``rounds`` of the mean milliseconds of ``steps`` calls, rounds interleaved."""
    for job in jobs.values():
        job()  # warm-up: allocator, oneDNN kernel selection
    times: dict[tuple, list[float]] = {key: [] for key in jobs}
    for _ in range(rounds):
        for key, job in jobs.items():
            start = clock()
            for _ in range(steps):
                job()
            times[key].append((clock() - start) / steps * 1000)
    return {key: statistics.median(v) for key, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["yolact_tiny", "yolact_lite"])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall time, or this process's CPU time (with --threads 1: robust to other processes' load)",
    )
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    items = make_items(args.size, 2 * args.batch)
    jobs: dict[tuple[str, str], Callable[[], None]] = {}
    for spec in args.models:
        for variant in ["fp32", *(v for v in args.variants if v != "fp32")]:  # fp32: the reference
            dtype, cl = VARIANTS[variant]
            jobs[spec, variant] = make_trainer(spec, items, args.size, args.batch, dtype, cl).run_step
        jobs[spec, "fwd+bwd fp32"] = fwd_bwd(spec, items, args.size, args.batch)
    ms = measure(jobs, args.rounds, args.steps, time.perf_counter if args.clock == "wall" else time.process_time)

    native = cpu_has_native_bf16()
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
        f"{torch.backends.cpu.get_cpu_capability()}; native bf16: {'yes' if native else 'no'} "
        f"(amp=true trains in {'bf16' if native else 'float32'} here)"
    )
    print(f"training step, {args.size} px, batch {args.batch}, AdamW, {args.clock} ms (median of {args.rounds} rounds)")
    print(f"{'model':<28} {'variant':<20} {'ms/step':>8} {'x fp32':>7}")
    for spec in args.models:
        for variant in [v for v in VARIANTS if (spec, v) in ms]:
            ratio = ms[spec, variant] / ms[spec, "fp32"]
            print(f"{spec:<28} {variant:<20} {ms[spec, variant]:8.1f} {ratio:7.2f}")
    first = args.models[0]
    print(f"forward + backward only, float32 (ratio to {first})")
    for spec in args.models:
        ratio = ms[spec, "fwd+bwd fp32"] / ms[first, "fwd+bwd fp32"]
        print(f"{spec:<28} {'fwd+bwd fp32':<20} {ms[spec, 'fwd+bwd fp32']:8.1f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
