"""Nothing broken is stored as done: a study's runs that diverge, that train on a split without
annotations or whose checkpoint is damaged; bad values and --workers refused before anything is
written; undefined metrics read as undefined; and a run's numbers independent of --workers."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from losslab.cli import app
from losslab.engine.checkpoint import load_checkpoint
from losslab.models import register_model, unregister_model
from losslab.report.write import write_report
from losslab.study.runner import run_dir_of, run_study
from losslab.study.spec import parse_study
from losslab.study.store import StudyStore
from tests.engine._engine_fakes import FakeConfig, FakeInstanceModel, fake_presets, write_datasets

runner = CliRunner()
FAKE = {"batch_size": 4, "max_iter": 4, "ckpt_every": 2, "device": "cpu", "num_samples": 1, "fps_images": 2}


@pytest.fixture(scope="module")
def instance_data(tmp_path_factory) -> Path:
    return Path(write_datasets(tmp_path_factory.mktemp("data"))["instance"])


@pytest.fixture
def fakes():
    """The fake presets, and ``fake_nan`` whose loss is NaN on every image."""
    build = lambda c: FakeInstanceModel(c, nan_ids=tuple(range(100)))  # noqa: E731
    with fake_presets():
        register_model("fake_nan", FakeConfig(), build, family="fake", task="instance", description="diverges")
        yield
        unregister_model("fake_nan")


def _spec(data: Path, grid: dict, **config) -> dict:
    return {"name": "faults", "dataset": {"path": str(data)}, "config": {**FAKE, **config}, "grid": grid}


def test_a_diverged_run_is_stored_as_failed_with_the_reason(fakes, instance_data, tmp_path):
    spec = _spec(instance_data, {"model": {"ok": "fake_instance", "nan": "fake_nan"}}, max_iter=20)
    out = tmp_path / "study"
    summary = run_study(parse_study(spec), out, progress=False)  # the real run_experiment, inline
    assert summary == {"total": 2, "skipped": 0, "done": 1, "failed": 1}
    with StudyStore(out / "study.db") as store:
        (failed,) = store.runs("failed")
        assert failed["label"] == "nan" and "NonFiniteLossError" in failed["error"]
        assert "the run learned from too few of its steps" in failed["error"]
        (done,) = store.runs("done")
        result = store.result(done["run_id"])
        assert result["iterations"] == 20 and result["skipped_steps"] == 0  # kept for the report's flags
    assert not (run_dir_of(out, failed["run_id"]) / "result.json").exists()


def test_a_dataset_without_annotations_fails_its_runs_with_the_reason(fakes, instance_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(instance_data, data)
    for split in ("train", "val"):
        ann = data / "annotations" / f"instances_{split}.json"
        ann.write_text(json.dumps({**json.loads(ann.read_text()), "annotations": []}))
    out = tmp_path / "study"
    summary = run_study(parse_study(_spec(data, {"model": ["fake_instance"]})), out, progress=False)
    assert summary["failed"] == 1 and summary["done"] == 0
    with StudyStore(out / "study.db") as store:
        (failed,) = store.runs("failed")
        assert "instances_train.json has no annotations" in failed["error"]
        assert store.all_metrics() == {}  # no -1 and no 0 anywhere


def test_a_study_run_with_a_truncated_checkpoint_resumes_instead_of_failing(
    fakes, instance_data, tmp_path, caplog, monkeypatch
):
    import losslab.study.runner as runner

    study = parse_study(_spec(instance_data, {"model": ["fake_instance"]}))
    out = tmp_path / "study"
    with monkeypatch.context() as m:  # a run killed while training is never slimmed: it keeps previous.pt
        m.setattr(runner, "_slim", lambda *args: None)
        run_study(study, out, progress=False)
    run_id = study.runs()[0].run_id
    run_dir = run_dir_of(out, run_id)
    last = run_dir / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # as a full disk or a killed copy leaves it
    (run_dir / "result.json").unlink()
    with StudyStore(out / "study.db") as store:
        store.mark_running(run_id, run_dir)  # the driver was killed while the run trained
    with caplog.at_level(logging.WARNING, logger="losslab.engine"):
        summary = run_study(study, out, progress=False)
    assert summary["done"] == 1 and summary["failed"] == 0
    assert f"checkpoint {last} (1,000 bytes) is truncated" in caplog.text
    assert "resuming from the previous checkpoint" in caplog.text
    assert load_checkpoint(last)["iteration"] == 4


def test_bad_values_and_workers_are_refused_before_anything_is_written(fakes, instance_data, tmp_path):
    for value in (0, -2, 2.5, "four"):
        with pytest.raises(ValueError, match=rf"configuration 'fake_instance'.*batch_size.*{value}"):
            run_study(parse_study(_spec(instance_data, {"model": ["fake_instance"]}, batch_size=value)), tmp_path)
    with pytest.raises(ValueError, match=r"lr must be a finite number, got nan"):
        run_study(parse_study({**_spec(instance_data, {"lr": [1e-3, math.nan]}), "model": "fake_instance"}), tmp_path)
    with pytest.raises(ValueError, match="--workers must be at least 1, got 0"):
        run_study(parse_study(_spec(instance_data, {"model": ["fake_instance"]})), tmp_path, workers=0)
    assert list(tmp_path.iterdir()) == []


def test_the_cli_refuses_workers_0_and_bad_values_with_the_key(tmp_path, tiny_spec):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec))
    res = runner.invoke(app, ["study", "run", str(spec), "--out", str(tmp_path / "o"), "--workers", "0"])
    assert res.exit_code == 2 and "--workers must be at least 1, got 0" in res.output
    tiny_spec["config"]["max_iter"] = -5
    spec.write_text(yaml.safe_dump(tiny_spec))
    res = runner.invoke(app, ["study", "run", str(spec), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "max_iter must be >= 0, got -5" in res.output
    assert not (tmp_path / "o").exists()
    help_text = runner.invoke(app, ["study", "run", "--help"]).output
    assert "threads" in help_text and "--workers" in help_text


def _nan_run(config: dict, run_dir: Path, progress: bool = True) -> dict:
    from studyfake import fake_run

    result = fake_run(config, run_dir, progress)
    result["metrics"]["segm"].update({"APs": math.nan, "APl": math.nan})  # no small / large objects
    return result


def test_undefined_metrics_are_stored_as_missing_and_the_report_reads_them(tmp_path, tiny_spec):
    out = tmp_path / "study"
    assert run_study(parse_study(tiny_spec), out, run_fn=_nan_run, progress=False)["done"] == 4
    with StudyStore(out / "study.db") as store:
        metrics = store.metrics(store.runs()[0]["run_id"])
        assert metrics["segm.APl"] is None and metrics["segm.AP"] > 0
    files = write_report(out)
    assert "-1.00" not in files["report.md"].read_text()


@pytest.mark.slow
def test_a_runs_numbers_do_not_depend_on_workers(tmp_path):
    """The issue's case: the same run ids gave other weights with --workers 1 and 2 (1 vs 2 threads)."""
    spec = {
        "name": "workers",
        "dataset": {"synthetic": {"train": 4, "val": 2, "size": 64, "seed": 0}},
        "model": "masknet",
        "config": {"max_iter": 3, "batch_size": 2, "input_size": 64, "warmup_iters": 1, "fps_images": 1},
        "grid": {"mask_loss": ["bce"]},
        "seeds": 2,
    }
    spec["config"] |= {"num_samples": 1, "device": "cpu", "cache_dir": str(tmp_path / "cache")}
    study = parse_study(spec)
    outer = torch.get_num_threads()
    torch.set_num_threads(2)  # the driver's own count must not reach an inline run either
    try:
        for workers in (1, 2):
            assert run_study(study, tmp_path / f"w{workers}", workers=workers, progress=False)["done"] == 2
    finally:
        torch.set_num_threads(outer)
    for run in study.runs():
        a, b = (load_checkpoint(run_dir_of(tmp_path / f"w{w}", run.run_id) / "checkpoints" / "last.pt") for w in (1, 2))
        assert a["config"]["train"]["threads"] == 1
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), run.label
