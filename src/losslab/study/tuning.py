"""The tuning stage of a study: every configuration gets the same hyper-parameter search, scored on
images the verdict never sees, before its verdict runs.

A study declares it under ``tune``::

    tune:
      grid: {lr: [5.0e-4, 1.0e-3, 2.0e-3]}   # keys tried per configuration (their product)
      seeds: 1                              # tuning seeds: a count (1000, 1001, ...) or a list
      dataset: {synthetic: {seed: 1}}       # the tuning split (default below)
      metric: segm.AP                       # what the choice maximises (default: mask AP)
      tolerance: 2.0                        # take the first value within this of the best (default 0)

Each configuration trains once per grid point and tuning seed (a *tune* run) on the tuning split: by
default, for a synthetic dataset, a second synthetic dataset of the same size drawn with another
generator seed (``seed + 1``), so that neither its training nor its validation images are the verdict's;
for a dataset folder, ``dataset: {path: FOLDER}`` names a folder of its own (a part of the training set
kept apart). The configuration's choice is the first grid point, in grid order, whose mean ``metric``
over the tuning seeds is within ``tolerance`` of the best mean (0: the best itself; a failed run, e.g. a
diverged learning rate, scores below every finished one). A tolerance is the one-standard-error rule of
model selection (Hastie, Tibshirani & Friedman, *The Elements of Statistical Learning*, 7.10): a few
tuning runs cannot tell apart scores closer than their noise, so among those the grid's first (put
first because it is the safer value, e.g. the smaller learning rate) is taken. Its *verdict* runs then
train at that value, on the study's dataset, over the study's seeds, which must not repeat a tuning
seed. Tune and verdict runs are ordinary runs: one id each (a hash of the config), resumable, stored,
reported.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from losslab.config import suggest

__all__ = [
    "DEFAULT_TUNE_METRIC",
    "TUNE_KEYS",
    "TUNE_SEED_BASE",
    "TuneChoice",
    "TuneSpec",
    "choose",
    "parse_tune",
]

#: Keys of a study's ``tune`` section.
TUNE_KEYS = ("grid", "seeds", "dataset", "metric", "tolerance")
#: The first tuning seed of ``seeds: N`` (far from the verdict seeds 0, 1, 2, ...).
TUNE_SEED_BASE = 1000
#: What the choice maximises unless the spec says otherwise: the mask AP of the instance models.
DEFAULT_TUNE_METRIC = "segm.AP"
#: Tune runs write no sample overlays (nobody looks at them; they cost seconds per run).
TUNE_RUN_CONFIG = {"num_samples": 0}


@dataclass(frozen=True)
class TuneSpec:
    """A parsed ``tune`` section.

    Attributes:
        grid: ``{key: [values]}``; every configuration tries their product.
        seeds: the tuning seeds (disjoint from the verdict seeds).
        dataset: the tuning split, in the study ``dataset`` form.
        metric: the flat metric (``segm.AP``) that the choice maximises.
        tolerance: the choice is the first grid point within this of the best mean score.
    """

    grid: dict[str, list[Any]]
    seeds: list[int]
    dataset: dict[str, Any]
    metric: str = DEFAULT_TUNE_METRIC
    tolerance: float = 0.0

    def points(self) -> list[dict[str, Any]]:
        """Every grid point, in grid order (the first key varies slowest)."""
        keys = list(self.grid)
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*self.grid.values())]

    def to_dict(self) -> dict[str, Any]:
        """The section as a plain dict (what ``parse_tune`` reads back)."""
        return {"grid": {k: list(v) for k, v in self.grid.items()}, "seeds": list(self.seeds),
                "dataset": dict(self.dataset), "metric": self.metric, "tolerance": self.tolerance}  # fmt: skip


def _tune_seeds(value: Any, where: str) -> list[int]:
    if isinstance(value, bool):
        raise ValueError(f"{where}: tune.seeds must be a count or a list of integers, got {value!r}")
    if isinstance(value, int):
        if not 1 <= value <= 100:
            raise ValueError(f"{where}: tune.seeds must be a count from 1 to 100, got {value}")
        return [TUNE_SEED_BASE + i for i in range(value)]
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    ):
        if len(set(value)) != len(value):
            raise ValueError(f"{where}: tune.seeds repeat a value: {list(value)}")
        return [int(s) for s in value]
    raise ValueError(f"{where}: tune.seeds must be a count or a non-empty list of integers, got {value!r}")


def _tune_grid(value: Any, where: str, grid_axes: Sequence[str]) -> dict[str, list[Any]]:
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"{where}: tune.grid must map at least one key (e.g. lr) to a list of values, got {value!r}")
    out: dict[str, list[Any]] = {}
    for key, values in value.items():
        key = str(key)
        if key in ("seed", "data", "model") or key.startswith("synth_"):
            raise ValueError(f"{where}: tune.grid cannot tune {key!r} (it names the run, not a hyper-parameter)")
        if key in grid_axes:
            raise ValueError(f"{where}: tune.grid key {key!r} is also a grid axis: a key is compared or tuned")
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"{where}: tune.grid.{key} must be a non-empty list of values, got {values!r}")
        if len({repr(v) for v in values}) != len(values):
            raise ValueError(f"{where}: tune.grid.{key} repeats a value: {list(values)}")
        out[key] = list(values)
    return out


def _tune_dataset(value: Any, study_dataset: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The tuning split: a synthetic study defaults to the same generator with seed + 1."""
    if value is None:
        if "synthetic" not in study_dataset:
            raise ValueError(
                f"{where}: a tuned study on a dataset folder needs tune.dataset: {{path: FOLDER}}, a folder of "
                "images the verdict never sees (e.g. a part of your training set kept apart, in the same layout)"
            )
        args = dict(study_dataset["synthetic"])
        return {"synthetic": {**args, "seed": int(args.get("seed", 0)) + 1}}
    if not isinstance(value, Mapping) or len(value) != 1 or next(iter(value)) not in ("synthetic", "path"):
        raise ValueError(f"{where}: tune.dataset needs exactly one of 'synthetic' or 'path', got {value!r}")
    if "path" in value:
        if study_dataset.get("path") is not None and str(value["path"]) == str(study_dataset["path"]):
            raise ValueError(f"{where}: tune.dataset is the study's own dataset; tune on images the verdict never sees")
        return {"path": str(value["path"])}
    args = {**dict(study_dataset.get("synthetic") or {}), **dict(value["synthetic"] or {})}
    if "synthetic" in study_dataset and args == dict(study_dataset["synthetic"]):
        raise ValueError(f"{where}: tune.dataset is the study's own synthetic dataset; give it another seed")
    return {"synthetic": args}


def parse_tune(
    data: Any, where: str, study_dataset: Mapping[str, Any], verdict_seeds: Sequence[int], grid_axes: Sequence[str]
) -> TuneSpec | None:
    """Validate a ``tune`` section (None: the study has no tuning stage).

    Raises:
        ValueError: an unknown key (with the closest), an empty or repeated grid, a tuning seed that is
            also a verdict seed, or a tuning split that is the verdict's own.
    """
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: tune must be a mapping with 'grid' and 'seeds', got {data!r}")
    for key in data:
        if key not in TUNE_KEYS:
            raise ValueError(f"{where}: unknown key tune.{key}.{suggest(str(key), TUNE_KEYS)} Valid: {TUNE_KEYS}")
    grid = _tune_grid(data.get("grid"), where, grid_axes)
    seeds = _tune_seeds(data.get("seeds", 1), where)
    shared = sorted(set(seeds) & set(verdict_seeds))
    if shared:
        raise ValueError(f"{where}: tuning seeds {shared} are also verdict seeds; tuning and verdict seeds must differ")
    metric = str(data.get("metric") or DEFAULT_TUNE_METRIC)
    tolerance = data.get("tolerance", 0.0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < math.inf:
        raise ValueError(f"{where}: tune.tolerance must be a number >= 0 (metric points), got {tolerance!r}")
    return TuneSpec(grid, seeds, _tune_dataset(data.get("dataset"), study_dataset, where), metric, float(tolerance))


@dataclass
class TuneChoice:
    """One configuration's tuning: each grid point's score and the value chosen.

    Attributes:
        label: the configuration.
        scores: ``[(point, mean metric over its finished tuning runs or None, finished runs, failed
            runs, collapsed runs)]`` in grid order.
        chosen: the chosen point (None until every tuning run of the configuration has finished, or
            when every one of them failed).
        edge: the keys whose chosen value is the smallest or largest of a grid of 3 values or more.
    """

    label: str
    scores: list[tuple[dict[str, Any], float | None, int, int, int]] = field(default_factory=list)
    chosen: dict[str, Any] | None = None
    edge: list[str] = field(default_factory=list)

    def collapsed_points(self) -> list[dict[str, Any]]:
        """The grid points at which every finished tuning run collapsed."""
        return [p for p, _, done, _, collapsed in self.scores if done and collapsed == done]

    def collapsed_everywhere(self) -> bool:
        """Every grid point was tried and collapsed at each of them."""
        return bool(self.scores) and len(self.collapsed_points()) == len(self.scores)


def choose(
    label: str,
    tune: TuneSpec,
    outcomes: Mapping[int, Sequence[tuple[str, Mapping[str, float | None]]]],
    collapsed: Any,
) -> TuneChoice:
    """Score one configuration's grid points and choose the first within ``tune.tolerance`` of the best.

    Args:
        label: the configuration.
        tune: the study's tuning spec.
        outcomes: ``{point index: [(status, metrics), ...]}``, one entry per tuning seed that exists;
            status is ``done``, ``failed`` or anything else (not finished).
        collapsed: ``collapsed(metrics) -> bool`` for a done run.
    """
    choice = TuneChoice(label)
    finished = True
    points = tune.points()
    for i, point in enumerate(points):
        runs = list(outcomes.get(i, ()))
        done = [m for s, m in runs if s == "done"]
        failed = sum(1 for s, _ in runs if s == "failed")
        finished &= len(done) + failed == len(tune.seeds)
        values = [m.get(tune.metric) for m in done]
        kept = [float(v) for v in values if v is not None and math.isfinite(v)]
        score = sum(kept) / len(kept) if kept and len(kept) == len(done) and not failed else None
        choice.scores.append((point, score, len(done), failed, sum(1 for m in done if collapsed(m))))
    scored = [(i, score) for i, (_, score, *_) in enumerate(choice.scores) if score is not None]
    if finished and scored:
        best = max(score for _, score in scored)
        first = next(i for i, score in scored if score >= best - tune.tolerance)
        choice.chosen = dict(points[first])
        for key, values in tune.grid.items():
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            ends = (min(values), max(values)) if numeric else (values[0], values[-1])
            if len(values) >= 3 and choice.chosen[key] in ends:
                choice.edge.append(key)
    return choice
