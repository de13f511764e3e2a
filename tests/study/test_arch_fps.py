"""FPS once per architecture: which runs share one, what the store keeps, and what a failed or
missing measurement leaves (the runs' own FPS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from losslab.engine.config import resolve_run_config
from losslab.study.arch_fps import architecture_key, describe, measure_architectures
from losslab.study.spec import parse_study
from losslab.study.store import StudyStore

BASE = {"model": "yolact_tiny", "input_size": 64, "max_iter": 2}


def test_the_loss_and_the_seed_do_not_change_the_architecture():
    a = architecture_key(resolve_run_config({**BASE, "mask_loss": "bce", "seed": 0}))
    assert a == architecture_key(resolve_run_config({**BASE, "mask_loss": "0.5*mse + dice", "seed": 3, "lr": 0.5}))
    assert a != architecture_key(resolve_run_config({**BASE, "input_size": 96}))
    assert a != architecture_key(resolve_run_config({**BASE, "freeze_at": 2}))
    assert a != architecture_key(resolve_run_config({**BASE, "model": "yolact_lite"}))


def _store_with_done_runs(tmp_path, grid: dict) -> StudyStore:
    spec = {"name": "s", "model": "yolact_tiny", "config": {"input_size": 64, "max_iter": 2}, "grid": grid, "seeds": 2}
    study = parse_study(spec)
    store = StudyStore(tmp_path / "study.db")
    runs = study.unique_runs()
    store.save_study(study.name, study.to_dict(), runs)
    for i, run in enumerate(runs):
        run_dir = tmp_path / "runs" / run.run_id
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "checkpoints" / "last.pt").write_bytes(b"x")
        store.mark_running(run.run_id, run_dir)
        store.mark_done(run.run_id, {"metrics": {"segm": {"AP": 10.0}}, "fps": 5.0 + i})
    return store


def _fake_measure(calls: list):
    def measure(run_dir, run, images):
        calls.append((run_dir.name, run.model.input_size, images))
        return {"fps": 100.0 + run.model.input_size, "ms_median": 1.0, "threads": 2, "size": 64, "device": "cpu"}

    return measure


def test_one_measurement_per_architecture_becomes_every_runs_fps(tmp_path):
    grid = {"variants": {"BCE": {"mask_loss": "bce"}, "Dice": {"mask_loss": "dice"}, "big": {"input_size": 96}}}
    store = _store_with_done_runs(tmp_path, grid)
    calls: list = []
    rows = measure_architectures(store, images=7, log=lambda _: None, measure=_fake_measure(calls))
    assert sorted(c[1] for c in calls) == [64, 96] and {c[2] for c in calls} == {7}  # 6 runs, 2 architectures
    assert sorted(len(r["run_ids"]) for r in rows) == [2, 4]
    for run in store.runs():
        metrics = store.metrics(run["run_id"])
        assert metrics["fps"] == 100.0 + run["config"]["input_size"]
        assert 5.0 <= metrics["fps_in_run"] <= 10.0  # the run's own timing, kept
    assert "measured once per architecture (2)" in describe(store.architecture_fps())
    # measured again (a later `study run`): the run's own number is not overwritten by the architecture's
    measure_architectures(store, images=7, log=lambda _: None, measure=_fake_measure(calls))
    assert all(5.0 <= store.metrics(r["run_id"])["fps_in_run"] <= 10.0 for r in store.runs())
    # nothing new: only_missing skips both
    calls.clear()
    assert measure_architectures(store, 7, lambda _: None, only_missing=True, measure=_fake_measure(calls)) == []
    assert calls == []
    store.close()


def test_a_failed_or_impossible_measurement_keeps_the_runs_own_fps(tmp_path):
    store = _store_with_done_runs(tmp_path, {"mask_loss": {"BCE": "bce"}})
    lines: list[str] = []

    def broken(run_dir, config, images):
        raise RuntimeError("no such kernel")

    assert measure_architectures(store, log=lines.append, measure=broken) == []
    assert "not measured (RuntimeError: no such kernel)" in lines[-1]
    assert sorted(store.metrics(r["run_id"])["fps"] for r in store.runs()) == [5.0, 6.0]
    for run in store.runs():
        Path(run["run_dir"], "checkpoints", "last.pt").unlink()
    assert measure_architectures(store, log=lines.append, measure=_fake_measure([])) == []
    assert "no checkpoint of its runs here" in lines[-1]
    assert store.architecture_fps() == []
    store.close()


@pytest.mark.parametrize("rows", [[]])
def test_describe_nothing_measured(rows):
    assert describe(rows) == ""
