"""A memo of a frozen backbone's outputs, one entry per distinct input image.

A backbone whose every weight and batch-norm statistic is frozen (``freeze_at=5``) is a fixed
function of its input: when the same image comes again (``augment="none"``, a finite pool of
augmented copies with ``augment_variants``, the same validation images in every run of a study),
its features can be looked up instead of computed. An entry's key hashes the image's bytes with
a fingerprint of everything else the features depend on (the backbone's weights, the autocast
dtype, the thread count, the memory format, the device), so a hit is exact by construction: no
index or augmentation state is trusted, and one cache can serve every run a worker process
executes (``SHARED``). Misses are computed one image at a time, so an image's features do not
depend on which other images shared its batch, on when it was first seen, or on which run saw it
first: a run gives the same numbers with or without a resume, alone or in a study.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["SHARED", "FeatureCache", "compute_context", "image_key", "module_fingerprint"]

log = logging.getLogger("losslab.models")


def image_key(image: Tensor, context: bytes = b"") -> bytes:
    """A 16-byte digest of one image's values, shape and dtype, and of ``context``.

    Shape:
        ``image`` ``(3, H, W)`` in any memory format.
    """
    data = image.detach().to("cpu").contiguous()
    digest = hashlib.blake2b(data.numpy().tobytes(), digest_size=16)
    digest.update(f"{tuple(data.shape)}{data.dtype}".encode())
    digest.update(context)
    return digest.digest()


def module_fingerprint(module: nn.Module) -> bytes:
    """A 16-byte digest of a module's parameters and buffers (names, shapes, dtypes, values)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, t in module.state_dict().items():
        digest.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        digest.update(t.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.digest()


def compute_context(x: Tensor) -> bytes:
    """What, besides the weights and the input, a module's float output depends on here: the
    autocast dtype in force, the torch thread count, the input's memory format and its device."""
    kind = x.device.type
    dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return f"{dtype}|{torch.get_num_threads()}|{channels_last}|{x.device}".encode()


def _stack(maps: tuple[Tensor, ...]) -> Tensor:
    """Stack per-image ``(C, H, W)`` maps into ``(B, C, H, W)`` in their memory format (channels-last
    maps stay channels-last, as the backbone returned them)."""
    out = torch.stack(maps)
    if maps[0].shape[0] > 1 and maps[0].permute(1, 2, 0).is_contiguous():
        return out.contiguous(memory_format=torch.channels_last)
    return out.contiguous()


class FeatureCache:
    """Memo of ``fn``'s per-image outputs, for a ``fn`` that maps ``(B, 3, H, W)`` images to a list
    of ``(B, C_l, H_l, W_l)`` feature maps and treats each image on its own (a frozen backbone).

    Args:
        max_bytes: stop adding entries once the stored features reach this size (hits still
            count); a warning says so once.

    Shape:
        images ``(B, 3, H, W)`` -> list of ``(B, C_l, H_l, W_l)``, as ``fn`` returns them.
    """

    def __init__(self, max_bytes: int = 2**30):
        self.max_bytes = max_bytes
        self.entries: dict[bytes, tuple[Tensor, ...]] = {}
        self.bytes = 0
        self.hits = self.misses = 0
        self._warned = False

    def __len__(self) -> int:
        return len(self.entries)

    def __call__(self, fn: Callable[[Tensor], list[Tensor]], images: Tensor, context: bytes = b"") -> list[Tensor]:
        """``fn(images)``, each image looked up under ``(its bytes, context)`` or computed alone.

        Args:
            fn: the frozen module.
            images: the batch.
            context: a fingerprint of everything besides the image that ``fn``'s output depends
                on (``module_fingerprint`` + ``compute_context``); entries of other contexts
                never match.
        """
        per_image = []
        for image in images:
            key = image_key(image, context)
            entry = self.entries.get(key)
            if entry is None:
                self.misses += 1
                with torch.no_grad():
                    entry = tuple(f[0].clone() for f in fn(image.unsqueeze(0)))
                self._store(key, entry)
            else:
                self.hits += 1
            per_image.append(entry)
        return [_stack(level) for level in zip(*per_image, strict=True)]

    def clear(self) -> None:
        """Drop every entry."""
        self.entries.clear()
        self.bytes = 0
        self._warned = False

    def _store(self, key: bytes, entry: tuple[Tensor, ...]) -> None:
        size = sum(t.numel() * t.element_size() for t in entry)
        if self.bytes + size > self.max_bytes:
            if not self._warned:
                log.warning(
                    "feature cache full (%d images, %.0f MiB): further images are computed every time",
                    len(self.entries),
                    self.bytes / 2**20,
                )
                self._warned = True
            return
        self.entries[key] = entry
        self.bytes += size


#: The cache of this process: a study's worker process keeps it from run to run, so the training
#: images' copies and the validation images are computed once per worker, not once per run.
SHARED = FeatureCache()
