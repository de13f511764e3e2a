"""A tuned study's choices, read from its store: which value each configuration trains its verdict
runs with (``losslab.study.tuning``). The runner and the report both call ``study_choices``, so they
always agree on the verdict runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from losslab.study.flags import is_collapsed
from losslab.study.spec import StudySpec, canonical_json
from losslab.study.store import StudyStore
from losslab.study.tuning import TuneChoice, choose

__all__ = ["chosen_values", "study_choices"]


def _collapsed(metrics: Mapping[str, float | None]) -> bool:
    return is_collapsed(metrics.get("segm.AP"), metrics.get("bbox.AP"))


def study_choices(spec: StudySpec, store: StudyStore) -> dict[str, TuneChoice]:
    """``{label: TuneChoice}`` of every configuration of a tuned study (empty without tuning).

    A configuration's choice exists once each of its tuning runs is done or failed.
    """
    if spec.tune is None:
        return {}
    status = {r["run_id"]: r["status"] for r in store.runs()}
    metrics = store.all_metrics()
    point_index = {canonical_json(p): i for i, p in enumerate(spec.tune.points())}
    outcomes: dict[str, dict[int, list[tuple[str, Mapping[str, Any]]]]] = {}
    for run in spec.tune_runs():
        entry = (status.get(run.run_id, "pending"), metrics.get(run.run_id, {}))
        outcomes.setdefault(run.label, {}).setdefault(point_index[canonical_json(run.tuned)], []).append(entry)
    return {label: choose(label, spec.tune, outcomes.get(label, {}), _collapsed) for label in spec.labels()}


def chosen_values(choices: Mapping[str, TuneChoice]) -> dict[str, dict[str, Any]]:
    """``{label: chosen point}`` of the configurations that have a choice (``StudySpec.runs``' argument)."""
    return {label: c.chosen for label, c in choices.items() if c.chosen is not None}
