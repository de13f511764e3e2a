"""Loss catalogue speed: forward + backward of every mask and box loss against its reference.

For each loss, on 100 masks of 138 x 138 (YOLACT's prototype size), float32, CPU, with
``torch.set_num_threads`` at the machine's core count, the script times ``loss(logits, target)``
plus ``backward()`` for losslab's module and for the reference implementation of the same loss,
measured alternately in the same run, and prints the median ratio ours / reference (below 1 is
faster). References: torch ``F.*`` (bce, mse, l1, huber, smooth_l1), torchvision (focal, IoU box
losses), MONAI (dice, jaccard, tversky), pytorch-msssim (ssim), smp (lovasz_hinge); a loss without
a library reference is timed against a plain, straightforward torch implementation, labelled
``plain``. It also times the hybrid ``0.5*mse + bce`` against its two terms called one after
another, and the share of ``MaskLoss``'s input checks (``check_inputs``, one device sync).

    .venv/bin/python benchmarks/bench_losses.py [--repeats 9] [--only dice,ssim] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from losslab.losses import LossEquivalenceWarning, create_loss, list_losses
from losslab.losses._base import check_mask_inputs

Fn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def masks(n: int = 100, size: int = 138, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits that roughly predict random disks, and the disks (float 0/1), ``(n, size, size)``."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = torch.rand(n, 3, generator=gen)
    cy, cx = (0.2 + 0.6 * c[:, 0]) * size, (0.2 + 0.6 * c[:, 1]) * size
    r = (0.05 + 0.2 * c[:, 2]) * size
    target = (((yy - cy.view(-1, 1, 1)) ** 2 + (xx - cx.view(-1, 1, 1)) ** 2) <= r.view(-1, 1, 1) ** 2).float()
    logits = 2.0 * (2 * target - 1) + 2.0 * torch.randn(n, size, size, generator=gen)
    return logits, target


# ----------------------------------------------------------------------------- references


def _plain(fn: Fn) -> tuple[str, Fn]:
    return "plain", fn


def _sig(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x)


def _plain_tversky(x: torch.Tensor, g: torch.Tensor, a=0.5, b=0.5, s=1.0) -> torch.Tensor:
    p = _sig(x)
    tp = (p * g).sum((1, 2))
    fp = (p * (1 - g)).sum((1, 2))
    fn = ((1 - p) * g).sum((1, 2))
    return 1 - (tp + s) / (tp + a * fp + b * fn + s)


def _plain_dice(x: torch.Tensor, g: torch.Tensor, s=1.0) -> torch.Tensor:
    p = _sig(x)
    return 1 - (2 * (p * g).sum((1, 2)) + s) / (p.sum((1, 2)) + g.sum((1, 2)) + s)


def _kervadec(g: torch.Tensor) -> torch.Tensor:
    # The authors' one_hot2dist, one scipy EDT per image and side.
    from scipy.ndimage import distance_transform_edt

    out = []
    for m in g.numpy().astype(bool):
        if m.any() and not m.all():
            out.append(distance_transform_edt(~m) * ~m - (distance_transform_edt(m) - 1) * m)
        else:  # the authors give 0 here; losslab gives +1 / -1 (see signed_distance_map)
            out.append(np.full(m.shape, 1.0 if not m.any() else -1.0))
    return torch.from_numpy(np.stack(out)).float()


def _unet_weights(g: torch.Tensor, w0=10.0, sigma=5.0) -> torch.Tensor:
    from scipy.ndimage import distance_transform_edt

    out = []
    for m in g.numpy().astype(bool):
        if m.any() and not m.all():
            d = distance_transform_edt(~m)
            out.append(np.where(m, 1.0, 1.0 + w0 * np.exp(-((2 * d) ** 2) / (2 * sigma**2))))
        else:
            out.append(np.ones(m.shape))
    return torch.from_numpy(np.stack(out)).float()


# The raw Kervadec value, so that |diff| compares like with like (the shift is a constant).
SPECS = {"boundary": "boundary(shift=false)"}


def mask_references() -> dict[str, tuple[str, Fn]]:
    """Reference (label, fn) per catalogue mask loss, each returning the mean over instances."""
    from monai.losses import DiceLoss, TverskyLoss
    from pytorch_msssim import ssim
    from segmentation_models_pytorch.losses import LovaszLoss
    from torchvision.ops import sigmoid_focal_loss

    monai_dice = DiceLoss(sigmoid=True, smooth_nr=1.0, smooth_dr=1.0)
    monai_jaccard = DiceLoss(sigmoid=True, jaccard=True, smooth_nr=1.0, smooth_dr=1.0)
    monai_tversky = TverskyLoss(sigmoid=True, alpha=0.5, beta=0.5, smooth_nr=1.0, smooth_dr=1.0)
    lovasz = LovaszLoss("binary", per_image=True)
    return {
        "bce": ("torch F", lambda x, g: F.binary_cross_entropy_with_logits(x, g)),
        "mse": ("torch F", lambda x, g: F.mse_loss(_sig(x), g)),
        "l1": ("torch F", lambda x, g: F.l1_loss(_sig(x), g)),
        "huber": ("torch F", lambda x, g: F.huber_loss(_sig(x), g, delta=1.0)),
        "weighted_bce": (
            "torch F",
            lambda x, g: F.binary_cross_entropy_with_logits(x, g, pos_weight=torch.tensor(1.0)),
        ),
        "label_smoothing_bce": (
            "torch F",
            lambda x, g: F.binary_cross_entropy_with_logits(x, g * 0.95 + 0.025),
        ),
        "focal": ("torchvision", lambda x, g: sigmoid_focal_loss(x, g, reduction="mean")),
        "rmse": _plain(lambda x, g: ((_sig(x) - g) ** 2).mean((1, 2)).sqrt().mean()),
        "log_cosh_bce": _plain(
            lambda x, g: torch.log(torch.cosh(F.binary_cross_entropy_with_logits(x, g, reduction="none"))).mean()
        ),
        "border_bce": _plain(
            lambda x, g: (F.binary_cross_entropy_with_logits(x, g, reduction="none") * _unet_weights(g)).mean()
        ),
        "dice": ("MONAI", lambda x, g: monai_dice(x[:, None], g[:, None])),
        "jaccard": ("MONAI", lambda x, g: monai_jaccard(x[:, None], g[:, None])),
        "tversky": ("MONAI", lambda x, g: monai_tversky(x[:, None], g[:, None])),
        "focal_tversky": _plain(lambda x, g: (_plain_tversky(x, g) ** 0.75).mean()),
        "log_cosh_dice": _plain(lambda x, g: torch.log(torch.cosh(_plain_dice(x, g))).mean()),
        "pixel_dice": _plain(lambda x, g: (1 - (2 * _sig(x) * g + 0.1) / (_sig(x) + g + 0.1)).mean()),
        "ssim": (
            "pytorch-msssim",
            lambda x, g: 1 - ssim(_sig(x)[:, None], g[:, None], data_range=1.0, size_average=False).mean(),
        ),
        "lovasz_hinge": ("smp", lambda x, g: lovasz(x[:, None], g[:, None])),
        "boundary": _plain(lambda x, g: (_sig(x) * _kervadec(g)).mean()),
    }


def box_references() -> dict[str, tuple[str, Fn]]:
    from torchvision.ops import complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss

    return {
        "smooth_l1": ("torch F", lambda p, t: F.smooth_l1_loss(p, t, reduction="sum") / p.shape[0]),
        "giou": ("torchvision", lambda p, t: generalized_box_iou_loss(p, t, reduction="mean")),
        "diou": ("torchvision", lambda p, t: distance_box_iou_loss(p, t, reduction="mean")),
        "ciou": ("torchvision", lambda p, t: complete_box_iou_loss(p, t, reduction="mean")),
    }


# ----------------------------------------------------------------------------- timing


CLOCK = time.perf_counter


def time_once(fn: Fn, x: torch.Tensor, g: torch.Tensor) -> float:
    x = x.detach().clone().requires_grad_(True)
    t0 = CLOCK()
    fn(x, g).backward()
    return CLOCK() - t0


def compare(fns: list[Fn], x: torch.Tensor, g: torch.Tensor, repeats: int) -> list[float]:
    """Median seconds of each fn, measured round-robin so that drift hits all alike."""
    for fn in fns:
        for _ in range(2):
            time_once(fn, x, g)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            times[i].append(time_once(fn, x, g))
    return [statistics.median(t) for t in times]


def time_plain(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of a call without backward (the input checks)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = CLOCK()
        fn()
        times.append(CLOCK() - t0)
    return statistics.median(times)


def check_agreement(ours: Fn, ref: Fn, x: torch.Tensor, g: torch.Tensor) -> float:
    with torch.no_grad():
        return abs(float(ours(x, g)) - float(ref(x, g)))


def boxes(m: int = 2000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    xy = 100 * torch.rand(m, 2, generator=gen)
    wh = 5 + 50 * torch.rand(m, 2, generator=gen)
    target = torch.cat([xy, xy + wh], 1)
    pred = target + 4 * torch.randn(m, 4, generator=gen)
    pred = torch.cat([pred[:, :2], torch.maximum(pred[:, 2:], pred[:, :2] + 1)], 1)
    return pred, target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--only", default="", help="comma-separated loss names")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time, or this process's CPU time (steadier on a loaded machine; use with --threads 1)",
    )
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", LossEquivalenceWarning)  # tversky = dice(smooth=2) etc. is known
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    x, g = masks()
    print(
        f"100 masks 138x138 float32 CPU, {torch.get_num_threads()} threads, {args.clock} clock, "
        f"median of {args.repeats}\n"
    )
    header = f"{'loss':<22}{'reference':<16}{'ours ms':>9}{'ref ms':>9}{'ratio':>7}{'checks':>8}{'|diff|':>10}"
    print(header)
    print("-" * len(header))
    refs = mask_references()
    t_check = time_plain(lambda: check_mask_inputs(x, g, None), 3 * args.repeats)
    for name in list_losses(contract="mask"):
        if only and name not in only:
            continue
        if name not in refs:
            print(f"{name:<22}{'(no peer)':<16}")
            continue
        label, ref = refs[name]
        spec = SPECS.get(name, name)
        ours = create_loss(spec)
        t_ours, t_ref = compare([ours, ref], x, g, args.repeats)
        diff = check_agreement(ours, ref, x, g)
        share = min(t_check / t_ours, 1.0)
        print(
            f"{name:<22}{label:<16}{1e3 * t_ours:>9.2f}{1e3 * t_ref:>9.2f}{t_ours / t_ref:>7.2f}"
            f"{100 * share:>7.1f}%{diff:>10.1e}"
        )
    if not only or "hybrid" in only:
        hybrid = create_loss("0.5*mse + bce")
        mse, bce = create_loss("mse"), create_loss("bce")

        def two_terms(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return 0.5 * mse(a, b) + bce(a, b)

        def torch_terms(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return 0.5 * F.mse_loss(torch.sigmoid(a), b) + F.binary_cross_entropy_with_logits(a, b)

        t_h, t_two, t_torch = compare([hybrid, two_terms, torch_terms], x, g, args.repeats)
        print(f"{'0.5*mse + bce':<22}{'its 2 terms':<16}{1e3 * t_h:>9.2f}{1e3 * t_two:>9.2f}{t_h / t_two:>7.2f}")
        print(f"{'0.5*mse + bce':<22}{'torch F terms':<16}{1e3 * t_h:>9.2f}{1e3 * t_torch:>9.2f}{t_h / t_torch:>7.2f}")
    print(
        f"\ninput checks (MaskLoss.check_inputs: shapes, finite, target range; one sync): "
        f"{1e3 * t_check:.2f} ms per call on these 100 masks"
    )
    bp, bt = boxes()
    print(f"\nbox losses: {bp.shape[0]} boxes")
    for name, (label, ref) in box_references().items():
        if only and name not in only:
            continue
        ours = create_loss(name, contract="box")
        t_ours, t_ref = compare([ours, ref], bp, bt, args.repeats)
        diff = check_agreement(ours, ref, bp, bt)
        share = min(time_plain(lambda m=ours: m.check(bp, bt), 5 * args.repeats) / t_ours, 1.0)
        print(
            f"{name:<22}{label:<16}{1e3 * t_ours:>9.3f}{1e3 * t_ref:>9.3f}{t_ours / t_ref:>7.2f}"
            f"{100 * share:>7.1f}%{diff:>10.1e}"
        )
    print("\nratio = ours / reference (median); checks = time of the input checks / our time")


if __name__ == "__main__":
    main()
