"""Mixed precision: which autocast dtype the ``amp`` key means on which device.

One policy for training (``engine.train``), inference (``Yolact``'s own ``amp``) and
``losslab fps --fast``:

- ``amp=false``: float32 everywhere.
- ``amp=true``: float16 autocast with a GradScaler on CUDA; bfloat16 autocast, channels-last, on a
  CPU with native bfloat16 arithmetic (x86 AVX512-BF16 or AMX; an ARM CPU that oneDNN runs bf16
  on). Other CPUs emulate bfloat16 and are slower with it than in float32, so there ``amp=true``
  stays in float32 and says so once in the log.
- ``amp=bf16``: bfloat16 autocast on any device, forced (tests and benchmarks use it to run the
  bf16 path on any CPU). bfloat16 has float32's exponent range, so no GradScaler is needed.

Autocast covers the network only: losses are computed in float32 (the models run their loss
outside the autocast region), and a step whose gradients are not finite is skipped, as the
GradScaler does on CUDA.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import platform
from dataclasses import dataclass

import torch

from losslab.config import check_amp

__all__ = ["Precision", "autocast_dtype", "cpu_has_native_bf16", "resolve_precision"]

log = logging.getLogger("losslab.engine")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (not by emulation in float32 registers).

    x86: AVX512-BF16 or AMX tiles (Cooper Lake, Sapphire Rapids and later, AMD Zen 4 and later).
    Elsewhere (ARM): oneDNN's own bf16 check, which there requires the bf16 instructions.
    """
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        cpu = getattr(torch, "cpu", None)
        checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(bool(check()) for check in checks if callable(check))
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(amp: bool | str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype ``amp`` means on ``device``; None means float32 (no autocast)."""
    device_type = torch.device(device).type
    if amp == "bf16":
        return torch.bfloat16
    if amp is not True:
        return None
    if device_type == "cuda":
        return torch.float16
    if device_type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


@dataclass(frozen=True)
class Precision:
    """How a training run computes: autocast dtype, GradScaler, memory format.

    Attributes:
        device_type: ``"cpu"`` or ``"cuda"``.
        dtype: the autocast dtype, None for float32.
        scaler: use a GradScaler (float16 on CUDA).
        channels_last: convert the model and its 4-D inputs to channels-last (bf16 on the CPU:
            oneDNN's bf16 convolutions are fastest in that layout).
    """

    device_type: str
    dtype: torch.dtype | None = None
    scaler: bool = False
    channels_last: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` with ``dtype``, or a no-op context for float32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    @property
    def name(self) -> str:
        """``"fp32"``, ``"bf16"``, ``"fp16"`` (with ``"+channels-last"``) for logs and benchmarks."""
        base = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]
        return base + ("+channels-last" if self.channels_last else "")


def resolve_precision(amp: bool | str, device: torch.device | str) -> Precision:
    """The ``Precision`` of a training run with this ``amp`` on ``device`` (see the module doc).

    Where ``amp=true`` falls back to float32 on a CPU without native bf16, this is logged once
    per process.
    """
    amp = check_amp(amp)
    device_type = torch.device(device).type
    dtype = autocast_dtype(amp, device)
    if amp is True and device_type == "cpu" and dtype is None:
        _say_once(
            "amp=true: this CPU has no native bfloat16 (AVX512-BF16 or AMX), where bf16 autocast is slower than "
            "float32; training in float32 (amp=bf16 forces bf16 autocast)"
        )
    return Precision(
        device_type=device_type,
        dtype=dtype,
        scaler=dtype == torch.float16,
        channels_last=device_type == "cpu" and dtype == torch.bfloat16,
    )


@functools.cache
def _say_once(message: str) -> None:
    log.info(message)
