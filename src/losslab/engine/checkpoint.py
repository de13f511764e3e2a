"""Checkpoints that are safe to load and safe to write.

- Written atomically: to a temporary file in the same folder, flushed to disk, then renamed over the
  old one with ``os.replace``, so a crash at any point leaves either the old or the new file whole.
- One previous checkpoint is kept (``last.pt`` -> ``previous.pt``, a hard link swapped in before
  the rename), so a file damaged after it was written (a full disk, a truncated copy) leaves a good
  one to resume from: ``load_resumable`` tries ``last.pt``, then ``previous.pt``, and says which.
- Plain data only (tensors, numbers, strings, lists, tuples, dicts), checked before writing, and
  read back with ``torch.load(weights_only=True)``: a checkpoint from elsewhere cannot run code.
- A damaged file gets a ``CheckpointError`` naming the file, its size and what is wrong, never
  torch's "PytorchStreamReader failed reading zip archive".
- The random states of Python, NumPy and torch (and CUDA) are captured as plain data so that a
  resumed run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import json
import os
import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "capture_rng_state",
    "check_plain",
    "clean_stale_temporaries",
    "load_checkpoint",
    "load_resumable",
    "previous_of",
    "restore_rng_state",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "losslab-checkpoint-v1"

_PLAIN = (bool, int, float, str, type(None))


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, damaged, unsafe or not losslab's."""


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is; not every OS lets us open a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, write: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    _atomic_write(Path(path), lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` through a temporary file and a rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def check_plain(obj: Any, where: str = "checkpoint") -> None:
    """Raise ``ValueError`` naming the first value that ``torch.load(weights_only=True)`` would refuse.

    Allowed: tensors, ``torch.Size``, bool/int/float/str/None, and lists, tuples and dicts of those.
    """
    if isinstance(obj, (torch.Tensor, torch.Size, *_PLAIN)):
        return
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise ValueError(f"{where}: key {k!r} is a {type(k).__name__}; use str or int keys")
            check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    raise ValueError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}; checkpoints hold tensors and "
        "plain data only (convert it with config_to_dict, .tolist() or torch.as_tensor)"
    )


def previous_of(path: str | Path) -> Path:
    """Where the checkpoint before ``path`` is kept: ``checkpoints/previous.pt`` beside ``last.pt``."""
    path = Path(path)
    return path.with_name(f"previous{path.suffix}")


def _keep_previous(path: Path) -> None:
    # A hard link to the current file, renamed over previous.pt: each step is atomic, so a crash
    # leaves last.pt and previous.pt each either old or new, never half written.
    if not path.is_file():
        return
    link = path.with_name(f".{path.name}.prev.tmp")
    link.unlink(missing_ok=True)
    try:
        os.link(path, link)
    except OSError:  # a file system without hard links: copy instead
        link.write_bytes(path.read_bytes())
    os.replace(link, previous_of(path))


def save_checkpoint(path: str | Path, state: dict[str, Any], keep_previous: bool = True) -> Path:
    """Write ``state`` (plain data and tensors) to ``path`` atomically and return the path.

    Args:
        path: the checkpoint file (``run_dir/checkpoints/last.pt``).
        state: tensors and plain data.
        keep_previous: first keep the file already at ``path`` as ``previous_of(path)``.

    Raises:
        ValueError: ``state`` holds something other than tensors and plain data.
    """
    check_plain(state)
    state = {"format": CHECKPOINT_FORMAT, **state}
    path = Path(path)
    if keep_previous:
        _keep_previous(path)
    _atomic_write(path, lambda fh: torch.save(state, fh))
    return path


def _first_line(exc: BaseException) -> str:
    # the first sentence: torch follows "failed finding central directory" with a paragraph of advice
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line.split(". ")[0].rstrip(".")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is empty, truncated or corrupt, holds objects other than tensors
            and plain data (refused, since unpickling them could run code), or is not a losslab
            checkpoint. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): it was never written completely")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refused to load {path}: it holds objects other than tensors and plain data, and "
            f"loading those could run code ({_first_line(exc)}). Only load checkpoints you trust, and re-save "
            "them as plain state dicts."
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {path} ({size:,} bytes) is truncated or corrupt and cannot be read "
            f"({_first_line(exc)}); use another checkpoint or delete this one to train from the start"
        ) from exc
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a losslab checkpoint (expected a dict with a 'model' entry)")
    return state


def load_resumable(
    path: str | Path, map_location: str | torch.device = "cpu", set_aside: bool = False
) -> tuple[dict[str, Any] | None, str]:
    """The newest good checkpoint of a run, for resuming: ``path``, else ``previous_of(path)``.

    Args:
        path: the run's ``last.pt``.
        map_location: as ``torch.load``.
        set_aside: rename each damaged file to ``NAME.damaged`` (replacing an older one), so that
            the next save does not keep it as ``previous.pt`` and a retry does not read it again.

    Returns:
        ``(state, note)``: the state (``None`` when neither file is usable: train from the start)
        and one sentence saying which file was used and why, for the log.
    """
    path = Path(path)
    problems = []
    for candidate in (path, previous_of(path)):
        if not candidate.is_file():
            continue
        try:
            state = load_checkpoint(candidate, map_location)
        except CheckpointError as exc:
            problems.append(str(exc) + (_set_aside(candidate) if set_aside else ""))
            continue
        if candidate == path:
            return state, f"resuming from {candidate} (iteration {state.get('iteration', '?')})"
        return state, (
            f"{problems[0]}; resuming from the previous checkpoint {candidate} "
            f"(iteration {state.get('iteration', '?')}) instead"
        )
    if problems:
        return None, f"{'; '.join(problems)}; no good checkpoint is left, so the run starts again from iteration 0"
    return None, f"no checkpoint at {path}: starting from iteration 0"


def _set_aside(path: Path) -> str:
    aside = path.with_name(f"{path.name}.damaged")
    os.replace(path, aside)
    return f" (kept as {aside.name})"


def clean_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the ``.NAME.tmp`` files an interrupted atomic write left in ``folder``; return them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted(p for p in folder.glob(".*.tmp") if p.is_file())
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def capture_rng_state() -> dict[str, Any]:
    """The random states of Python, NumPy, torch and CUDA as plain data and tensors."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Set the random states saved by ``capture_rng_state``."""
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    npst = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            npst["key"].numpy().astype(np.uint32),
            int(npst["pos"]),
            int(npst["has_gauss"]),
            float(npst["gauss"]),
        )
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
