"""A tiny study with the real trainer (run_experiment): two configurations x two seeds, two steps on
a handful of 64-px synthetic images, then its report. MaskNet keeps it fast; the fake-run tests cover
the runner's logic in detail."""

from __future__ import annotations

import csv

import pytest

from losslab.report.write import write_report
from losslab.study.runner import run_study
from losslab.study.spec import parse_study, validate_keys
from losslab.study.store import StudyStore


@pytest.mark.slow
def test_tiny_real_study_end_to_end(tmp_path):
    spec = {
        "name": "real-tiny",
        "dataset": {"synthetic": {"train": 4, "val": 2, "size": 64, "seed": 0}},
        "model": "masknet",
        "config": {
            "max_iter": 2,
            "batch_size": 2,
            "input_size": 64,
            "log_every": 1,
            "warmup_iters": 1,
            "fps_images": 2,
            "num_samples": 1,
            "device": "cpu",
        },
        "grid": {"mask_loss": {"BCE": "bce", "Dice": "dice"}},
        "seeds": 2,
    }
    study = parse_study(spec)
    validate_keys(study)
    out = tmp_path / "study"
    summary = run_study(study, out, progress=False, fps_images=3)
    assert summary == {"total": 4, "skipped": 0, "done": 4, "failed": 0}, summary
    with StudyStore(out / "study.db") as store:
        # one architecture (the loss and the seed do not change it): timed once, shown for every run
        (arch,) = store.architecture_fps()
        assert sorted(arch["run_ids"]) == sorted(r["run_id"] for r in store.runs()) and arch["images"] == 3
        for run in store.runs():
            metrics = store.metrics(run["run_id"])
            assert "mask.IoU" in metrics and metrics["fps"] == pytest.approx(arch["fps"]) and arch["fps"] > 0
            assert metrics["fps_in_run"] > 0  # the run's own timing is kept beside it
            assert [s for s, _ in store.losses(run["run_id"])["total"]] == [1, 2]
    files = write_report(out)
    report = (out / "report.md").read_text()
    assert "Dense metrics" in report and "measured once per architecture (1)" in report
    with files["results.csv"].open() as fh:
        assert len(list(csv.reader(fh))) == 5
    assert (out / "plots" / "loss_curves.png").is_file() and (out / "plots" / "samples.jpg").is_file()
    assert run_study(study, out, progress=False)["skipped"] == 4
