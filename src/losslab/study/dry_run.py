"""``losslab study run NAME --dry-run``: the resolved config of every run of a study, without training.

One entry per configuration and stage (its seeds share everything but the seed): the label, the
seeds and run ids, and the run config with every default filled in (``resolve_run_config``: the
trainer's keys and the model preset's), so a user can check a study against a paper before renting
GPUs. In a tuned study the verdict runs' tuned keys are not known yet: they show the grid they are
chosen from.
"""

from __future__ import annotations

from typing import Any

import yaml

from losslab.engine.config import resolve_run_config
from losslab.study.spec import RunSpec, StudySpec

__all__ = ["dry_run", "dry_run_yaml"]


def _group(runs: list[RunSpec]) -> dict[tuple[str, str, str], list[RunSpec]]:
    groups: dict[tuple[str, str, str], list[RunSpec]] = {}
    for run in runs:
        key = (run.stage, run.label, repr(sorted(run.tuned.items())) if run.stage == "tune" else "")
        groups.setdefault(key, []).append(run)
    return groups


def dry_run(study: StudySpec) -> list[dict[str, Any]]:
    """The study's runs grouped by configuration: ``{"label", "stage", "seeds", "run_ids", "config"}``.

    Raises:
        ValueError: a run config that does not resolve (an unknown key or a refused value, named).
    """
    tune = study.tune
    aliased = study.aliases()
    out = []
    for (stage, label, _), runs in _group(study.tune_runs() + study.runs(study.first_choices())).items():
        config = resolve_run_config(runs[0].config).to_dict()
        entry: dict[str, Any] = {"label": label, "stage": stage}
        if label in aliased:
            entry["same_runs_as"] = aliased[label]
        if stage == "verdict" and tune is not None:
            for key, values in tune.grid.items():
                section = "train" if key in config["train"] else "model"
                config[section][key] = f"tuned: one of {list(values)}"
        entry.update(
            seeds=[r.seed for r in runs],
            run_ids=[r.run_id if stage == "tune" or tune is None else "(after tuning)" for r in runs],
            config=config,
        )
        out.append(entry)
    return out


def dry_run_yaml(study: StudySpec) -> str:
    """``dry_run`` as YAML documents, after a header line with the run counts and the study's notes
    (what its configs cannot say, such as which reading of a paper's recipe it follows)."""
    entries = dry_run(study)
    head = (
        f"# {study.name}: {len(study.labels())} configurations, {study.run_count()} runs"
        + (" (tuning first)" if study.tune is not None else "")
        + "; nothing is trained or written\n"
    )
    head += "".join(f"# note: {note}\n" for note in study.notes)
    return head + yaml.safe_dump_all(entries, sort_keys=False, allow_unicode=True, explicit_start=True)
