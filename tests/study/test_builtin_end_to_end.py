"""Every CPU-sized built-in study runs end to end with the real trainer at a tiny size: the same
grid, labels and model keys, on a handful of 64-px images for two steps, then its report."""

from __future__ import annotations

import copy

import pytest
from studyfake import TINY_REAL_CONFIG

from losslab.report.write import write_report
from losslab.study.builtin import BUILTIN_STUDIES
from losslab.study.runner import run_study
from losslab.study.spec import parse_study, validate_keys
from losslab.study.store import StudyStore

TINY_CONFIG = TINY_REAL_CONFIG


def _tiny(name: str, max_configs: int | None = None) -> dict:
    spec = copy.deepcopy(BUILTIN_STUDIES[name])
    spec["dataset"] = {"synthetic": {"train": 4, "val": 2, "size": 64, "seed": 0}}
    spec["config"] = {**spec["config"], **TINY_CONFIG}
    spec["seeds"] = 1
    if max_configs is not None:  # the YOLACT grids repeat one model: a few of their rows suffice
        axis, values = next(iter(spec["grid"].items()))
        spec["grid"] = {axis: dict(list(values.items())[:max_configs])}
    return spec


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "max_configs"), [("masknet-depth", None), ("maskrcnn-custom", None), ("quick", 2), ("audit", 2)]
)
def test_builtin_study_runs_end_to_end(tmp_path, name, max_configs):
    raw = _tiny(name, max_configs)
    study = parse_study(raw)
    validate_keys(study)
    out = tmp_path / name
    summary = run_study(study, out, progress=False)
    assert summary["failed"] == 0 and summary["done"] == summary["total"] > 0, summary
    with StudyStore(out / "study.db") as store:
        for run in store.runs():
            metrics = store.metrics(run["run_id"])
            assert metrics["fps"] > 0
            assert any(k.startswith(("segm.", "mask.")) for k in metrics), sorted(metrics)
    write_report(out)
    report = (out / "report.md").read_text()
    labels = list(next(iter(raw["grid"].values())))
    assert labels and all(label in report for label in labels), labels
    assert (out / "results.csv").is_file() and (out / "plots" / "loss_curves.png").is_file()
