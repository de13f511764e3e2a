"""Loss-weight schedules: a weight in a spec that changes with training progress.

``bce + ramp(0, 1)*boundary`` ramps the boundary loss in, as Kervadec et al. do (their
``AlphaScheduler``); ``ramp(1, 0.1)*bce + dice`` decays cross-entropy against Dice (nnU-Net users'
question, MIC-DKFZ/nnUNet #1804). Progress ``t`` runs from 0 (the first step) to 1 (the last); the
trainer sets it before every step (``set_progress``) and logs each scheduled weight.

- ``ramp(start, end, begin=0, stop=1)``: ``start`` until ``t = begin``, linear to ``end`` at
  ``t = stop``, ``end`` after.
- ``step(before, after, at=0.5)``: ``before`` until ``t = at``, ``after`` from then on.

A weight must stay ``>= 0`` (a loss cannot be subtracted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["SCHEDULES", "Ramp", "Schedule", "Step", "build_schedule"]


class Schedule:
    """A weight as a function of training progress ``t`` in [0, 1]."""

    def __call__(self, t: float) -> float:
        raise NotImplementedError


def _number(name: str, what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: {what} must be a finite number, got {value!r}")
    return float(value)


def _weight(name: str, what: str, value: Any) -> float:
    v = _number(name, what, value)
    if v < 0:
        raise ValueError(f"{name}: {what} must be >= 0 (a loss cannot be subtracted), got {value!r}")
    return v


def _fraction(name: str, what: str, value: Any) -> float:
    v = _number(name, what, value)
    if not 0 <= v <= 1:
        raise ValueError(f"{name}: {what} is a fraction of training in [0, 1], got {value!r}")
    return v


@dataclass(frozen=True)
class Ramp(Schedule):
    """``start`` until ``begin``, linear to ``end`` at ``stop``, ``end`` after."""

    start: float
    end: float
    begin: float = 0.0
    stop: float = 1.0

    def __call__(self, t: float) -> float:
        if t <= self.begin:
            return self.start
        if t >= self.stop:
            return self.end
        return self.start + (self.end - self.start) * (t - self.begin) / (self.stop - self.begin)


@dataclass(frozen=True)
class Step(Schedule):
    """``before`` until ``at``, ``after`` from then on."""

    before: float
    after: float
    at: float = 0.5

    def __call__(self, t: float) -> float:
        return self.after if t >= self.at else self.before


def _ramp(args: list[Any], params: dict[str, Any]) -> Ramp:
    if len(args) != 2:
        raise ValueError(f"ramp takes two weights, ramp(start, end[, begin=0, stop=1]), got {len(args)}")
    unknown = set(params) - {"begin", "stop"}
    if unknown:
        raise ValueError(f"ramp has no parameter {sorted(unknown)[0]!r}; its parameters: begin, stop")
    begin = _fraction("ramp", "begin", params.get("begin", 0.0))
    stop = _fraction("ramp", "stop", params.get("stop", 1.0))
    if stop <= begin:
        raise ValueError(f"ramp: stop ({stop:g}) must come after begin ({begin:g})")
    return Ramp(_weight("ramp", "start", args[0]), _weight("ramp", "end", args[1]), begin, stop)


def _step(args: list[Any], params: dict[str, Any]) -> Step:
    if len(args) != 2:
        raise ValueError(f"step takes two weights, step(before, after[, at=0.5]), got {len(args)}")
    unknown = set(params) - {"at"}
    if unknown:
        raise ValueError(f"step has no parameter {sorted(unknown)[0]!r}; its parameter: at")
    at = _fraction("step", "at", params.get("at", 0.5))
    return Step(_weight("step", "before", args[0]), _weight("step", "after", args[1]), at)


#: Schedule name -> builder from the call's positional values and parameters.
SCHEDULES = {"ramp": _ramp, "step": _step}


def build_schedule(name: str, args: list[Any], params: dict[str, Any]) -> Schedule:
    """The schedule a spec's weight names.

    Raises:
        ValueError: an unknown schedule (with the known ones) or bad values (named).
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown weight schedule {name!r}; a weight is a number or one of: {', '.join(SCHEDULES)}")
    return SCHEDULES[name](args, params)
