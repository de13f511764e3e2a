"""Inference speed as YOLACT reports it: frames per second at batch size 1.

What is timed is one call of the model in eval mode: for an instance model that is the
backbone, the heads, NMS and mask assembly (its eval forward returns the final detections); for
a dense model the forward pass. Data loading and the host-to-device copy are excluded (inputs
are placed on the device beforehand), the first ``warmup`` calls are excluded (allocator, cuDNN
autotuning, lazy init), and the median over ``n`` timed calls resists the odd slow call.
On CUDA each call is bracketed by ``torch.cuda.synchronize()`` so the time is the GPU's.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["measure_fps"]


def _input_images(
    images: Tensor | Sequence[Tensor] | None, size: tuple[int, int], device: torch.device, count: int = 8
) -> list[Tensor]:
    """Batches of one ``(1, 3, H, W)`` on ``device``: the given images, or seeded random ones."""
    if isinstance(images, int):
        raise ValueError(f"images={images} is a count: pass the number of timed calls as n= and tensors as images=")
    if images is None:
        gen = torch.Generator().manual_seed(0)
        # Normalised-image statistics (zero mean, unit variance), like a real input after transforms.
        return [torch.randn(1, 3, *size, generator=gen).to(device) for _ in range(count)]
    seq = list(images.unbind(0)) if isinstance(images, Tensor) and images.dim() == 4 else list(images)
    if not seq:
        raise ValueError("images is empty: pass at least one (3, H, W) image or None for random inputs")
    out = []
    for i, img in enumerate(seq):
        if not isinstance(img, Tensor) or img.dim() != 3 or img.shape[0] != 3:
            shape = tuple(img.shape) if isinstance(img, Tensor) else type(img).__name__
            raise ValueError(f"images[{i}] has shape {shape}: expected (3, H, W) (or a (N, 3, H, W) tensor)")
        out.append(img[None].to(device))
    return out


def measure_fps(
    model: nn.Module,
    input_size: int | tuple[int, int],
    device: str | torch.device = "cpu",
    n: int = 100,
    warmup: int = 10,
    threads: int | None = None,
    images: Tensor | Sequence[Tensor] | None = None,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> dict[str, float | int | str]:
    """Median single-image inference time of ``model`` and the FPS it implies.

    Args:
        model: called as ``model(images)`` with ``images`` of shape ``(1, 3, H, W)``. It is moved
            to ``device`` (and stays there); its train/eval mode is restored afterwards.
        input_size: ``S`` (square) or ``(H, W)`` of the random inputs; ignored when ``images``
            are given (their size is measured and reported).
        device: where to run (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        n: timed calls (the median is taken over them).
        warmup: untimed calls first.
        threads: CPU threads for the measurement (restored afterwards); None keeps the current.
        images: real inputs to cycle through, ``(N, 3, H, W)`` or a list of ``(3, H, W)``; NMS and
            mask assembly cost depends on how many detections survive, so real images give the
            honest number for a trained model. None: 8 seeded random images.
        autocast_dtype: run under ``torch.autocast`` with this dtype (e.g. ``torch.bfloat16``).
        channels_last: convert the model and inputs to channels-last memory format.

    Returns:
        ``{"fps", "ms_median", "size", "device", "threads"}``; ``fps = 1000 / ms_median``;
        ``size`` is ``S`` for square inputs, ``"HxW"`` otherwise; ``threads`` the CPU threads used.

    Shape:
        images ``(N, 3, H, W)`` or N tensors ``(3, H, W)``; each call sees one ``(1, 3, H, W)``.
    """
    if n < 1 or warmup < 0:
        raise ValueError(f"n={n} must be >= 1 and warmup={warmup} >= 0")
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but CUDA is not available; use device='cpu'")
    old_threads, was_training = torch.get_num_threads(), model.training
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads={threads} must be >= 1 (or None to keep {old_threads})")
        torch.set_num_threads(threads)
    try:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(dev, memory_format=fmt).eval()
        batches = [b.contiguous(memory_format=fmt) for b in _input_images(images, size, dev)]
        times = _time_calls(model, batches, dev, n, warmup, autocast_dtype)
        used_threads = torch.get_num_threads()
        size = tuple(batches[0].shape[-2:])  # given images decide the size actually measured
    finally:
        model.train(was_training)
        torch.set_num_threads(old_threads)
    ms = statistics.median(times) * 1000.0
    return {
        "fps": 1000.0 / ms if ms > 0 else float("inf"),
        "ms_median": ms,
        "size": size[0] if size[0] == size[1] else f"{size[0]}x{size[1]}",
        "device": str(dev),
        "threads": used_threads,
    }


def _time_calls(
    model: nn.Module, batches: list[Tensor], dev: torch.device, n: int, warmup: int, dtype: torch.dtype | None
) -> list[float]:
    """Seconds per call for ``n`` calls after ``warmup`` untimed ones, cycling through ``batches``."""
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    amp = torch.autocast(dev.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    times = []
    with torch.inference_mode(), amp:
        for i in range(warmup + n):
            x = batches[i % len(batches)]
            sync()
            start = time.perf_counter()
            model(x)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times
