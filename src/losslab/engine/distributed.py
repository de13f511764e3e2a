"""Small helpers around ``torch.distributed`` for one run over several processes (``torchrun``).

Everything here degrades to the single-process case when no process group is initialised, so the
trainer calls these helpers unconditionally.
"""

from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistInfo",
    "all_reduce_mean",
    "any_across_ranks",
    "barrier",
    "broadcast_object",
    "cleanup_distributed",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "resolve_device",
    "wrap_ddp",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: its global rank, the number of processes and its local rank."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """The number of processes (1 outside a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Rank 0: the process that logs and writes checkpoints."""
    return get_rank() == 0


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group described by torchrun's environment (``RANK``, ``WORLD_SIZE``, ...).

    Does nothing when ``WORLD_SIZE`` is unset or 1, or when a group is already initialised.

    Args:
        backend: ``"nccl"`` or ``"gloo"``; by default nccl when CUDA is available, else gloo.
    """
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def cleanup_distributed() -> None:
    """Leave the process group if one is initialised, once every process has reached this point.

    Without the barrier a rank could tear its gloo connections down while another still used them,
    and the process aborted at exit ("terminate called without an active exception") about one run
    in five on a 2-core machine. A peer that already died makes the barrier fail; the group is left
    all the same.

    A garbage collection first frees the DDP wrapper that a finished trainer's reference cycles still
    hold (one per process after ``run_experiment``, measured), so the gloo group is torn down here and
    not whenever the collector next runs, possibly during interpreter shutdown, where its worker
    threads can be destroyed unjoined with the same abort (pytorch/pytorch#179291 describes that
    path). The abort was seen once in five clean-clone CI runs with the barrier alone.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        with contextlib.suppress(RuntimeError):  # DistBackendError is a RuntimeError: a peer is gone
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (no-op outside a process group)."""
    if is_distributed():
        dist.barrier()


def all_reduce_mean(values: dict[str, float], device: torch.device | str = "cpu") -> dict[str, float]:
    """The mean of each value over all processes (the input itself outside a process group).

    Every process must call this with the same keys in the same order.
    """
    if not is_distributed() or not values:
        return dict(values)
    keys = list(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist(), strict=True)}


def any_across_ranks(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True when ``flag`` is true on any process; all processes must call it together."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every process (itself outside a process group)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` becomes ``cuda:<local_rank>`` when CUDA is available, else ``cpu``.

    Raises:
        ValueError: CUDA was asked for on a machine without it.
    """
    if device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use device=cpu or device=auto")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def wrap_ddp(model: nn.Module, device: torch.device, find_unused: bool) -> nn.Module:
    """``model`` inside DistributedDataParallel under torchrun, else ``model`` itself."""
    if not is_distributed():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)
