"""What a run does with faults and leftovers: damaged checkpoints (fall back or restart, and say
which), stale temporaries, splits without annotations, undefined AP, a diverged model, and its
own thread count. On the fake presets and tiny synthetic datasets."""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from losslab.engine import run
from losslab.engine.checkpoint import load_checkpoint, previous_of
from losslab.engine.train import NonFiniteLossError
from losslab.models import register_model, unregister_model
from tests.engine._engine_fakes import FakeConfig, FakeInstanceModel

BASE = {"batch_size": 4, "max_iter": 4, "ckpt_every": 2, "log_every": 1, "device": "cpu", "num_samples": 1}
BASE |= {"fps_images": 2}


@pytest.fixture
def dense(fake_models, fake_data):
    return {**BASE, "model": "fake_dense", "data": fake_data["dense"]}


def _iterations(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return [int(r["iteration"]) for r in csv.DictReader(fh)]


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_truncated_last_checkpoint_resumes_from_the_previous_one_and_says_so(dense, tmp_path, caplog):
    out = tmp_path / "run"
    run.run_experiment(dense, out, progress=False)
    last = out / "checkpoints" / "last.pt"
    assert load_checkpoint(previous_of(last))["iteration"] == 2
    _truncate(last)
    with caplog.at_level(logging.WARNING, logger="losslab.engine"):
        result = run.run_experiment({**dense, "max_iter": 6}, out, progress=False)
    assert result["iterations"] == 6
    assert "truncated or corrupt" in caplog.text and str(last) in caplog.text
    assert "resuming from the previous checkpoint" in caplog.text and "iteration 2" in caplog.text
    assert _iterations(out) == [1, 2, 3, 4, 5, 6]  # steps 3-4 of the damaged file were trained again
    assert (out / "checkpoints" / "last.pt.damaged").is_file()  # set aside, never kept as previous.pt
    assert load_checkpoint(previous_of(last))["iteration"] == 4


def test_no_good_checkpoint_left_restarts_the_run_and_says_so(dense, tmp_path, caplog):
    out = tmp_path / "run"
    run.run_experiment(dense, out, progress=False)
    last = out / "checkpoints" / "last.pt"
    _truncate(last)
    previous_of(last).write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="losslab.engine"):
        result = run.run_experiment(dense, out, progress=False)
    assert result["iterations"] == 4 and "starts again from iteration 0" in caplog.text
    assert _iterations(out) == [1, 2, 3, 4]


def test_stale_temporaries_of_an_interrupted_write_are_removed_on_the_next_start(dense, tmp_path, caplog):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    stale = [out / "checkpoints" / ".last.pt.tmp", out / "checkpoints" / ".last.pt.prev.tmp", out / ".eval.json.tmp"]
    for path in stale:
        path.write_bytes(b"x" * 1000)
    with caplog.at_level(logging.WARNING, logger="losslab.engine"):
        run.run_experiment(dense, out, progress=False)
    assert not any(p.exists() for p in stale)
    assert "left by an interrupted write" in caplog.text


def _without_annotations(src: str, dst: Path, split: str, crowd: bool = False) -> Path:
    shutil.copytree(src, dst)
    path = dst / "annotations" / f"instances_{split}.json"
    data = json.loads(path.read_text())
    data["annotations"] = [{**a, "iscrowd": 1} for a in data["annotations"]] if crowd else []
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("crowd", [False, True])
def test_a_training_split_without_annotations_is_refused_before_training(fake_models, fake_data, tmp_path, crowd):
    ann = _without_annotations(fake_data["instance"], tmp_path / "data", "train", crowd)
    config = {**BASE, "model": "fake_instance", "data": str(tmp_path / "data")}
    with pytest.raises(ValueError, match=rf"the training split {ann} has no annotations.*nothing to learn"):
        run.run_experiment(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_validation_split_without_annotations_is_refused_before_training(fake_models, fake_data, tmp_path):
    ann = _without_annotations(fake_data["instance"], tmp_path / "data", "val")
    config = {**BASE, "model": "fake_instance", "data": str(tmp_path / "data")}
    with pytest.raises(ValueError, match=rf"the validation split {ann} has no annotations.*AP is undefined"):
        run.run_experiment(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "result.json").exists()


class _Split:
    ann_file = "val.json"

    def __init__(self, annotations: list):
        self.gt = {"annotations": annotations}


def test_an_undefined_mask_ap_is_no_result():
    undefined = {"segm": {"AP": math.nan}}
    with pytest.raises(ValueError, match=r"the validation split val\.json has no annotations: AP is undefined"):
        run._check_defined(undefined, _Split([]))
    with pytest.raises(ValueError, match=r"mask AP on the validation split val\.json is undefined"):
        run._check_defined(undefined, _Split([{"iscrowd": 1}]))
    run._check_defined({"segm": {"AP": 0.0, "APl": math.nan}}, _Split([{}]))  # other NaNs are fine
    run._check_defined({"mask": {"IoU": 50.0}}, _Split([]))  # dense metrics


@pytest.fixture
def diverging():
    """``fake_nan``: the fake instance model whose loss is NaN on every image."""
    build = lambda c: FakeInstanceModel(c, nan_ids=tuple(range(100)))  # noqa: E731
    register_model("fake_nan", FakeConfig(), build, family="fake", task="instance", description="diverges")
    yield
    unregister_model("fake_nan")


def test_a_run_whose_steps_were_nearly_all_skipped_fails_and_writes_no_result(diverging, fake_data, tmp_path):
    config = {**BASE, "model": "fake_nan", "data": fake_data["instance"], "max_iter": 20}
    with pytest.raises(NonFiniteLossError, match=r"max_skipped_fraction=0\.05"):
        run.run_experiment(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "result.json").exists() and not (tmp_path / "run" / "eval.json").exists()


def test_the_run_sets_its_thread_count_and_puts_the_callers_back(dense, tmp_path, monkeypatch):
    real, outer = torch.set_num_threads, torch.get_num_threads()
    calls: list[int] = []
    seen: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n)))
    monkeypatch.setattr(run, "build_datasets", _spy(run.build_datasets, seen))
    real(2)  # the caller's count differs from the run's on any machine
    try:
        run.run_experiment({**dense, "threads": 1}, tmp_path / "a", progress=False)
        assert seen == [1] and calls[0] == 1 and torch.get_num_threads() == 2
        calls.clear()
        run.run_experiment(dense, tmp_path / "b", progress=False)  # threads=0: the count it finds, recorded
        assert seen == [1, 2] and set(calls) <= {2}
        assert yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())["train"]["threads"] == 2
    finally:
        real(outer)


def _spy(fn, seen: list):
    def wrapped(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return fn(*args, **kwargs)

    return wrapped


def test_skip_bad_is_a_trainer_key_that_leaves_bad_entries_out(fake_models, fake_data, tmp_path):
    shutil.copytree(fake_data["instance"], tmp_path / "data")
    ann = tmp_path / "data" / "annotations" / "instances_train.json"
    content = json.loads(ann.read_text())
    content["annotations"].append({**content["annotations"][0], "id": 999, "image_id": 12345})
    ann.write_text(json.dumps(content))
    config = {**BASE, "model": "fake_instance", "data": str(tmp_path / "data"), "max_iter": 2}
    with pytest.raises(ValueError, match=r"(?s)unknown image id 12345.*losslab train skip_bad=true"):
        run.run_experiment(config, tmp_path / "a", progress=False)
    assert run.run_experiment({**config, "skip_bad": True}, tmp_path / "b", progress=False)["iterations"] == 2
