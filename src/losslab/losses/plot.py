"""The picture that shows why a loss trains or stalls: per-pixel value and gradient against the
predicted probability, and the per-instance value as a predicted mask slides off its target.

Every curve is measured by calling the loss module itself (autograd for the gradient), so hybrids
and parameters show exactly what training sees. Region and structural losses are defined per
instance; on a single pixel they are evaluated on a ``(1, 1, 1)`` mask, which is their definition at
that size (Dice of one pixel, Lovász of one pixel). A loss that cannot take a single pixel (``ssim``
needs at least its window) shows no per-pixel curve and says so in the legend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from losslab.losses.factory import create_loss

__all__ = ["LossCurves", "loss_curves", "plot_losses"]


@dataclass
class LossCurves:
    """Measured curves of one spec (numpy arrays; ``None`` where the loss cannot be evaluated).

    Attributes:
        spec: the loss spec.
        prob: predicted probabilities where the per-pixel curves are measured.
        value_fg / value_bg: loss of one pixel whose target is 1 / 0.
        grad_fg / grad_bg: d loss / d logit of that pixel.
        shift: predicted-disk shift in target radii; ``iou`` the binary IoU at each shift.
        overlap_value: per-instance value at each shift.
        note: why a curve is missing, if one is.
    """

    spec: str
    prob: np.ndarray
    value_fg: np.ndarray | None = None
    value_bg: np.ndarray | None = None
    grad_fg: np.ndarray | None = None
    grad_bg: np.ndarray | None = None
    shift: np.ndarray = field(default_factory=lambda: np.zeros(0))
    iou: np.ndarray = field(default_factory=lambda: np.zeros(0))
    overlap_value: np.ndarray | None = None
    note: str = ""


def _pixel_curve(loss: torch.nn.Module, prob: torch.Tensor, target: float) -> tuple[np.ndarray, np.ndarray]:
    logits = torch.logit(prob).view(-1, 1, 1).requires_grad_(True)
    values = loss(logits, torch.full_like(logits, target))  # (K,): K one-pixel instances
    (grad,) = torch.autograd.grad(values.sum(), logits)
    return values.detach().numpy(), grad.view(-1).numpy()


def _disks(radius: float, shifts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # A strip wide enough that the shifted disk never leaves it: the loss sees the same predicted
    # area at every shift.
    r = int(np.ceil(radius))
    h, w = 2 * r + 8, int(np.ceil((float(shifts.max()) + 2) * radius)) + 2 * r + 8
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    cy, cx = (h - 1) / 2, r + 4.0
    target = ((yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2).to(torch.float64)
    dx = shifts.view(-1, 1, 1) * radius
    pred = ((yy - cy) ** 2 + (xx - cx - dx) ** 2 <= radius**2).to(torch.float64)
    return pred, target.expand_as(pred).contiguous()


def loss_curves(
    spec: str,
    points: int = 199,
    radius: float = 12.0,
    confidence: float = 0.95,
    contract: str = "mask",
) -> LossCurves:
    """Measure the curves ``plot_losses`` draws for one mask-contract spec.

    Args:
        spec: a loss spec (``"0.5*mse + bce"``).
        points: number of probabilities in (0, 1) for the per-pixel curves.
        radius: radius of the target and predicted disks, in pixels.
        confidence: the predicted disk has probability ``confidence`` inside, ``1 − confidence``
            outside.
        contract: the loss contract; only ``"mask"`` is drawn.

    Raises:
        ValueError: a spec that does not take the mask contract.
    """
    if contract != "mask":
        raise ValueError(f"losses plot draws mask-contract losses only, got contract {contract!r}")
    loss = create_loss(spec, reduction="none")
    prob = torch.linspace(0.005, 0.995, points, dtype=torch.float64)
    out = LossCurves(spec=getattr(loss, "spec", spec), prob=prob.numpy())
    try:
        out.value_fg, out.grad_fg = _pixel_curve(loss, prob, 1.0)
        out.value_bg, out.grad_bg = _pixel_curve(loss, prob, 0.0)
    except ValueError as exc:
        out.note = "no one-pixel curve: " + str(exc).split(";")[0].split(":")[0]
    shifts = torch.linspace(0.0, 3.0, 61, dtype=torch.float64)
    pred, target = _disks(radius, shifts)
    margin = float(np.log(confidence / (1 - confidence)))
    with torch.no_grad():
        out.overlap_value = loss((2 * pred - 1) * margin, target).numpy()
    inter = (pred * target).sum(dim=(1, 2))
    out.iou = (inter / (pred.sum(dim=(1, 2)) + target.sum(dim=(1, 2)) - inter)).numpy()
    out.shift = shifts.numpy()
    return out


def plot_losses(specs: list[str], out: str | Path, title: str | None = None) -> Path:
    """Draw the three panels for each spec into one PNG and return its path.

    Panels: (1) the loss of one pixel against the predicted probability, target 1 (solid) and 0
    (dashed); (2) its gradient with respect to the logit (what the network receives); (3) the
    per-instance value, divided by its largest value, as a predicted disk slides off a target disk
    (shift in radii; the overlap ends at 2).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    if not specs:
        raise ValueError("plot_losses needs at least one loss spec, e.g. ['bce', 'dice']")
    curves = [loss_curves(s) for s in specs]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.6 + 0.3 * ((len(specs) + 2) // 3)), constrained_layout=True)
    colors = plt.get_cmap("tab10").colors
    handles, labels = [], []
    for i, c in enumerate(curves):
        color = colors[i % len(colors)]
        if c.value_fg is not None:
            axes[0].plot(c.prob, c.value_fg, color=color, lw=2)
            axes[0].plot(c.prob, c.value_bg, color=color, lw=2, ls="--")
            axes[1].plot(c.prob, c.grad_fg, color=color, lw=2)
            axes[1].plot(c.prob, c.grad_bg, color=color, lw=2, ls="--")
        peak = float(np.max(np.abs(c.overlap_value))) or 1.0
        (line,) = axes[2].plot(c.shift, c.overlap_value / peak, color=color, lw=2)
        handles.append(line)
        labels.append(f"{c.spec}   [panel 3 max {peak:.3g}]" + (f"   ({c.note})" if c.note else ""))
    axes[0].set(title="loss of one pixel", xlabel="predicted probability p", ylabel="loss")
    axes[1].set(title="gradient w.r.t. the logit", xlabel="predicted probability p", ylabel="d loss / d logit")
    axes[1].axhline(0.0, color="0.6", lw=0.8)
    axes[2].set(
        title="one instance: predicted disk sliding off the target",
        xlabel="shift of the predicted disk (target radii)",
        ylabel="loss / its maximum",
    )
    axes[2].axvline(2.0, color="0.6", lw=0.8, ls=":")
    axes[2].text(2.03, 0.04, "no overlap from here", color="0.4", fontsize=9, transform=axes[2].get_xaxis_transform())
    top = axes[2].secondary_xaxis("top", functions=(lambda s: s, lambda s: s))
    ticks = [0.0, 0.5, 1.0, 1.5, 2.0]
    top.set_xticks(ticks, labels=[f"{_disk_iou(s):.2f}" for s in ticks])
    top.set_xlabel("IoU")
    from matplotlib.lines import Line2D

    style = [Line2D([], [], color="k", lw=2), Line2D([], [], color="k", lw=2, ls="--")]
    axes[0].legend(style, ["target 1", "target 0"], fontsize=9, loc="upper center")
    axes[1].legend(style, ["target 1", "target 0"], fontsize=9, loc="upper left")
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 3), fontsize=10, frameon=False)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title or "losslab: " + ",  ".join(c.spec for c in curves), fontsize=13)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _disk_iou(shift: float) -> float:
    # IoU of two unit disks whose centres are `shift` apart (the continuous version of panel 3).
    d = min(max(shift, 0.0), 2.0)
    lens = 2 * np.arccos(d / 2) - (d / 2) * np.sqrt(4 - d * d)
    return float(lens / (2 * np.pi - lens))
