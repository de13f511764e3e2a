"""The runner end to end with the fake run function: two configurations x two seeds, a failing run,
re-running skips finished runs, parallel workers, the folder lock."""

from __future__ import annotations

import itertools

import pytest
from studyfake import fake_run

from losslab.study.runner import pregenerate_synthetic, run_dir_of, run_study, study_lock
from losslab.study.spec import parse_study
from losslab.study.store import StudyStore


def _completions(out, run_id):
    log = run_dir_of(out, run_id) / "calls.log"
    return log.read_text().count("complete") if log.is_file() else 0


def test_two_configs_two_seeds_end_to_end(tmp_path, tiny_spec):
    study = parse_study(tiny_spec)
    out = tmp_path / "study"
    summary = run_study(study, out, run_fn=fake_run, progress=False)
    assert summary == {"total": 4, "skipped": 0, "done": 4, "failed": 0}
    with StudyStore(out / "study.db") as store:
        runs = store.runs()
        assert [r["status"] for r in runs] == ["done"] * 4
        for run in runs:
            assert store.metrics(run["run_id"])["segm.AP"] > 0
            assert [s for s, _ in store.losses(run["run_id"])["total"]] == [1, 2, 3]
            assert run["attempts"] == 1 and run["wall_seconds"] is not None
        assert store.integrity_ok()
    assert (out / "study.yaml").is_file()
    # Running again does nothing: every run is done.
    again = run_study(study, out, run_fn=fake_run, progress=False)
    assert again == {"total": 4, "skipped": 4, "done": 0, "failed": 0}
    assert all(_completions(out, r.run_id) == 1 for r in study.runs())


def test_more_seeds_later_adds_only_the_new_runs(tmp_path, tiny_spec):
    out = tmp_path / "study"
    run_study(parse_study(tiny_spec), out, run_fn=fake_run, progress=False)
    summary = run_study(parse_study(tiny_spec, seeds=3), out, run_fn=fake_run, progress=False)
    assert summary == {"total": 6, "skipped": 4, "done": 2, "failed": 0}


def test_a_failing_run_is_recorded_and_the_study_goes_on(tmp_path, tiny_spec):
    tiny_spec["grid"] = {"variants": {"BCE": {"mask_loss": "bce"}, "Broken": {"mask_loss": "dice", "fake_fail": 1}}}
    out = tmp_path / "study"
    summary = run_study(parse_study(tiny_spec), out, run_fn=fake_run, progress=False)
    assert summary["done"] == 2 and summary["failed"] == 2
    with StudyStore(out / "study.db") as store:
        failed = store.runs("failed")
        assert {r["label"] for r in failed} == {"Broken"}
        assert "RuntimeError: fake failure of dice" in failed[0]["error"] and "Traceback" in failed[0]["error"]
        assert len(store.runs("done")) == 2
    # A second attempt retries the failed runs only.
    summary = run_study(parse_study(tiny_spec), out, run_fn=fake_run, progress=False)
    assert summary == {"total": 4, "skipped": 2, "done": 0, "failed": 2}
    with StudyStore(out / "study.db") as store:
        assert {r["attempts"] for r in store.runs("failed")} == {2}


def test_missing_dataset_fails_before_any_run(tmp_path, tiny_spec):
    tiny_spec["dataset"] = {"path": str(tmp_path / "nowhere")}
    with pytest.raises(ValueError, match="nowhere"):
        run_study(parse_study(tiny_spec), tmp_path / "study", run_fn=fake_run, progress=False)


def test_one_driver_per_folder(tmp_path, tiny_spec):
    out = tmp_path / "study"
    with study_lock(out), pytest.raises(ValueError, match="in use"):
        run_study(parse_study(tiny_spec), out, run_fn=fake_run, progress=False)


@pytest.mark.slow
def test_parallel_workers(tmp_path, tiny_spec):
    """Two workers run two runs at once: in two processes, with overlapping start-to-end windows."""
    tiny_spec["config"]["fake_step_seconds"] = 0.8  # three steps: 2.4 s per run, longer than a worker's start
    out = tmp_path / "study"
    summary = run_study(parse_study(tiny_spec), out, run_fn=fake_run, workers=2, progress=False)
    assert summary["done"] == 4
    with StudyStore(out / "study.db") as store:
        runs = store.runs("done")
        assert len(runs) == 4 and store.integrity_ok()
    pids = {(run_dir_of(out, r["run_id"]) / "worker.pid").read_text() for r in runs}
    assert len(pids) == 2
    windows = sorted((r["started"], r["finished"]) for r in runs)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(windows))


def test_a_folder_holds_one_study(tmp_path, tiny_spec):
    out = tmp_path / "study"
    run_study(parse_study(tiny_spec), out, run_fn=fake_run, progress=False)
    with pytest.raises(ValueError, match="holds study 'tiny'"):
        run_study(parse_study({**tiny_spec, "name": "other"}), out, run_fn=fake_run, progress=False)


def test_pregenerate_synthetic_makes_each_dataset_once(tmp_path, tiny_spec, monkeypatch):
    from losslab.data import synth

    calls = []
    real = synth.generate
    monkeypatch.setattr(synth, "generate", lambda *a, **kw: calls.append(a[1]) or real(*a, **kw))
    tiny_spec["dataset"] = {"synthetic": {"train": 2, "val": 1, "size": 32, "seed": 0}}
    tiny_spec["config"] = {"max_iter": 3, "cache_dir": str(tmp_path / "cache")}
    runs = parse_study(tiny_spec).runs()  # 2 losses x 2 seeds over one dataset
    pregenerate_synthetic(runs)
    pregenerate_synthetic(runs)  # cached: nothing generated again
    assert [(c.train, c.val, c.size, c.task) for c in calls] == [(2, 1, 32, "instance")]
    assert len(list((tmp_path / "cache").glob("synth-instance-32px-2+1-seed0-*"))) == 1


def test_progress_without_a_terminal_prints_a_line_per_finished_run(tmp_path, tiny_spec, monkeypatch):
    """`make study > log.txt`: no bars, one plain line per run (configuration, seed, mask AP, wall, ETA)
    and a heartbeat with the ETA when a minute passes without one."""
    import io

    from rich.console import Console

    import losslab.study.runner as runner

    monkeypatch.setattr(runner, "HEARTBEAT_SECONDS", 0.0)  # every poll beats
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    run_study(parse_study(tiny_spec), tmp_path / "study", run_fn=fake_run, console=console, workers=2)
    lines = buffer.getvalue().splitlines()
    done = [line for line in lines if " done " in line]
    assert len(done) == 4
    assert all("mask AP" in line and "study ETA" in line and " · seed " in line for line in done)
    assert done[-1].startswith("[4/4] done")
    assert any("running" in line and "elapsed" in line for line in lines)  # the heartbeat
    assert "█" not in buffer.getvalue() and "━" not in buffer.getvalue()  # no bars


def test_iterations_of_counts_steps_as_the_trainer_does():
    from losslab.study.runner import iterations_of

    assert iterations_of({"max_iter": 360}) == 360
    assert iterations_of({}) == 500  # the trainer's default
    assert iterations_of({"epochs": 3, "data": "synthetic", "synth_train": 50, "batch_size": 8}) == 18
    assert iterations_of({"epochs": 3, "data": "/data/butts", "batch_size": 8}) is None  # only the data can tell


def test_the_study_eta_counts_runs_that_ran_side_by_side_once(tiny_spec):
    """Two workers finish two 100-second runs in 100 s of wall time: 8 runs left take 400 s, not 800."""
    import io
    import time

    from rich.console import Console

    from losslab.study.runner import _StudyProgress

    progress = _StudyProgress(Console(file=io.StringIO()), total=10, done=0, live=False, enabled=True)
    assert progress.eta() is None
    progress.started = time.time() - 100.0
    run = parse_study(tiny_spec).runs()[0]
    progress.finished_run(run, 100.0)
    progress.finished_run(run, 100.0)
    assert progress.eta() == pytest.approx(400.0, rel=0.05)
