"""`losslab study status`: progress of a run in flight from its metrics.csv, ETA from done runs."""

from __future__ import annotations

import pytest
from rich.console import Console

from losslab.study.spec import parse_study
from losslab.study.status import format_seconds, status_table
from losslab.study.store import StudyStore


def test_status_shows_progress_and_eta(tmp_path, tiny_spec):
    tiny_spec["config"] = {"max_iter": 10}
    study = parse_study(tiny_spec)
    runs = study.runs()
    out = tmp_path / "study"
    running_dir = out / "runs" / runs[1].run_id
    running_dir.mkdir(parents=True)
    (running_dir / "metrics.csv").write_text("iteration,lr,total\n1,0.1,2.0\n5,0.1,1.0\n")
    with StudyStore(out / "study.db") as store:
        store.save_study(study.name, study.to_dict(), runs)
        store.mark_running(runs[0].run_id, out / "runs" / runs[0].run_id)
        store.mark_done(runs[0].run_id, {"fps": 1.0}, [], wall_seconds=120.0)
        store.mark_running(runs[1].run_id, running_dir)
    table, footer = status_table(out)
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "50% (5/10)" in text and "2:00" in text
    assert footer.startswith("4 runs: 1 done, 2 pending, 1 running; study ETA")


def test_study_eta_shares_the_runs_left_among_the_runs_in_flight(tmp_path, tiny_spec):
    study = parse_study(tiny_spec)
    runs = study.runs()
    out = tmp_path / "study"
    with StudyStore(out / "study.db") as store:
        store.save_study(study.name, study.to_dict(), runs)
        store.mark_running(runs[0].run_id, out / "runs" / runs[0].run_id)
        store.mark_done(runs[0].run_id, {"fps": 1.0}, [], wall_seconds=120.0)
        _, one_worker = status_table(out)
        for run in runs[1:3]:  # two workers: two runs in flight, no progress known (the mean: 2:00 each)
            store.mark_running(run.run_id, out / "runs" / run.run_id)
        _, two_workers = status_table(out)
    assert one_worker.endswith("study ETA 6:00")  # 3 runs left at 2:00 one after another
    assert two_workers.endswith("study ETA 3:00")  # the same 3 runs, two at a time


def test_format_seconds():
    assert format_seconds(3723) == "1:02:03" and format_seconds(62) == "1:02" and format_seconds(None) == ""


def test_status_of_an_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        status_table(tmp_path)
