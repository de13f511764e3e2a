"""YOLACT speed on this CPU: training step vs the bare backbone, and end-to-end inference FPS.

Prints, for ``yolact_tiny`` (or ``--preset``):

- the training step (forward + backward + SGD step, batch 8 at the preset's size) against the
  floor, the bare backbone's forward + backward at the same batch and size (goal <= 1.5x), and
  training images/s;
- the `quick` study's step (yolact_lite, frozen backbone) with the backbone computed against looked
  up in the feature cache (``cache_features``);
- inference FPS at batch 1, end to end (network + decode + Fast NMS + mask assembly), in float32,
  channels-last, channels-last with bfloat16 autocast, and with the backbone's batch norms folded
  into its convs (``fuse_for_inference``), on ``--threads`` threads (2);
- the mask upsampling of detection (100 prototype-size masks to the input size): ``detect``'s
  ``upsample`` (a ``torch.lerp`` per phase and axis for whole factors) against ``F.interpolate``
  + clamp, alone and end to end in the ``--fast`` model, the two alternating round by round.

    .venv/bin/python benchmarks/bench_yolact.py [--preset yolact_tiny] [--threads 2] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from losslab.models import create_model


def synthetic_batch(batch: int, size: int, num_classes: int, seed: int = 0) -> tuple[torch.Tensor, list[dict]]:
    """Images with 3 random rectangles each, and their targets."""
    rng = np.random.default_rng(seed)
    images = torch.randn(batch, 3, size, size)
    targets = []
    for _ in range(batch):
        boxes, masks = [], []
        for _ in range(3):
            w, h = rng.integers(size // 8, size // 2, 2)
            x, y = rng.integers(0, size - w), rng.integers(0, size - h)
            m = torch.zeros(size, size, dtype=torch.uint8)
            m[y : y + h, x : x + w] = 1
            boxes.append([x, y, x + w, y + h])
            masks.append(m)
        targets.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "labels": torch.from_numpy(rng.integers(1, num_classes + 1, 3)).long(),
                "masks": torch.stack(masks),
                "iscrowd": torch.zeros(3, dtype=torch.bool),
            }
        )
    return images, targets


def time_it(fn, warmup: int, iters: int) -> float:
    """Median seconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_train(preset: str, batch: int, iters: int) -> None:
    model = create_model(preset, num_classes=1)
    size = model.config.input_size
    images, targets = synthetic_batch(batch, size, 1)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)

    def step() -> None:
        losses = model(images, targets)
        loss = sum(v for k, v in losses.items() if k.startswith("loss_"))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    backbone = create_model(preset, num_classes=1).backbone.train()
    bopt = torch.optim.SGD(backbone.parameters(), lr=1e-4, momentum=0.9)

    def floor() -> None:
        out = backbone(images)
        bopt.zero_grad(set_to_none=True)
        sum(o.float().mean() for o in out).backward()
        bopt.step()

    t_floor = time_it(floor, 2, iters)
    t_step = time_it(step, 2, iters)
    print(f"train  {preset} batch {batch} @ {size}px, {torch.get_num_threads()} threads")
    print(f"  bare backbone fwd+bwd+step : {t_floor * 1000:8.1f} ms")
    print(f"  yolact step (fwd+bwd+SGD)  : {t_step * 1000:8.1f} ms   ratio {t_step / t_floor:.2f}x (goal <= 1.5x)")
    print(f"  training throughput        : {batch / t_step:8.1f} images/s")


def bench_cached(iters: int, rounds: int = 3) -> None:
    """The `quick` recipe's step (yolact_lite, frozen backbone, 128 px, batch 8, AdamW, autocast as
    ``amp=true`` gives here) with the backbone computed against looked up in the feature cache
    (every image a hit), the two alternating round by round."""
    from losslab.models.feature_cache import FeatureCache
    from losslab.precision import resolve_precision

    precision = resolve_precision(True, torch.device("cpu"))
    keys = {"scales_per_level": 3, "pos_iou": 0.4, "neg_iou": 0.3, "freeze_at": 5, "input_size": 128, "amp": True}
    images, targets = synthetic_batch(8, 128, 1)
    steps = {}
    for cache in (False, True):
        model = create_model("yolact_lite", num_classes=1, cache_features=cache, **keys).train()
        if cache:
            model.feature_cache = FeatureCache()
        if precision.channels_last:
            model.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

        def step(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt) -> None:
            losses = model(images, targets)
            opt.zero_grad(set_to_none=True)
            sum(v for k, v in losses.items() if k.startswith("loss_")).backward()
            opt.step()

        steps["cached" if cache else "computed"] = step
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for k, fn in steps.items():
            times[k].append(time_it(fn, 2, iters))
    base = statistics.median(times["computed"])
    print(f"quick step  yolact_lite batch 8 @ 128px, {precision.name}, {torch.get_num_threads()} threads")
    for k, ts in times.items():
        print(f"  backbone {k:9s}: {statistics.median(ts) * 1000:7.1f} ms   ratio {statistics.median(ts) / base:.2f}x")


def bench_infer(preset: str, iters: int, profile: bool) -> None:
    size = create_model(preset, num_classes=1).config.input_size
    image = torch.randn(1, 3, size, size)
    print(f"infer  {preset} batch 1 @ {size}px, {torch.get_num_threads()} threads (end to end)")
    base = None
    for label, overrides, fuse in (
        ("fp32", {}, False),
        ("channels_last", {"channels_last": True}, False),
        ("channels_last + bf16", {"channels_last": True, "amp": "bf16"}, False),
        ("fp32 + folded BN", {}, True),
        ("channels_last + folded BN", {"channels_last": True}, True),
        ("channels_last + bf16 + folded", {"channels_last": True, "amp": "bf16"}, True),
    ):
        torch.manual_seed(0)
        model = create_model(preset, num_classes=1, **overrides).eval()
        if fuse:
            model.fuse_for_inference()
        with torch.inference_mode():
            t = time_it(lambda m=model: m(image), 3, iters)
        base = base or t
        print(f"  {label:30s}: {t * 1000:7.1f} ms  {1 / t:6.1f} FPS  ({base / t:.2f}x vs fp32)")
        if profile and label == "fp32":
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as prof

            with torch.inference_mode(), prof(activities=[ProfilerActivity.CPU]) as p:
                for _ in range(5):
                    model(image)
            print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def interpolate_upsample(masks: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """The peer: ``F.interpolate`` (bilinear, align_corners=False) clamped to [0, 1]."""
    return F.interpolate(masks.unsqueeze(0), out_size, mode="bilinear", align_corners=False)[0].clamp_(0, 1)


def bench_masks(preset: str, iters: int, rounds: int = 3) -> None:
    import importlib

    from losslab.engine.fps import measure_fps

    detect_module = importlib.import_module("losslab.models.yolact.detect")
    ours = detect_module.upsample
    model = create_model(preset, num_classes=1, channels_last=True, amp=True).eval().fuse_for_inference()
    size = model.config.input_size
    small = torch.rand(100, size // 4, size // 4)
    peers = {"F.interpolate + clamp": interpolate_upsample, "losslab upsample": ours}
    alone = {k: time_it(lambda f=f: f(small, (size, size)), 3, iters) for k, f in peers.items()}
    fps: dict[str, list[float]] = {k: [] for k in peers}
    try:
        for _ in range(rounds):
            for k, f in peers.items():
                detect_module.upsample = f
                fps[k].append(float(measure_fps(model, size, n=iters)["fps"]))
    finally:
        detect_module.upsample = ours
    print(f"masks  100 x {size // 4}px -> {size}px, then {preset} --fast end to end (median of {rounds} rounds)")
    ref = "F.interpolate + clamp"
    for k in peers:
        ratio, gain = alone[ref] / alone[k], statistics.median(fps[k]) / statistics.median(fps[ref])
        print(
            f"  {k:22s}: {alone[k] * 1000:6.2f} ms ({ratio:.2f}x)   {statistics.median(fps[k]):6.1f} FPS ({gain:.2f}x)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="yolact_tiny")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--infer-iters", type=int, default=50)
    ap.add_argument("--profile", action="store_true", help="print a torch.profiler table of inference")
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if not args.skip_train:
        bench_train(args.preset, args.batch, args.iters)
        bench_cached(args.iters)
    bench_infer(args.preset, args.infer_iters, args.profile)
    bench_masks(args.preset, args.infer_iters)


if __name__ == "__main__":
    main()
