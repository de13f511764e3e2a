"""Datasets that look valid but are not: splits without annotations, ids of another type, bad
entries and the option the error names, and the temporaries a killed generator leaves."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from losslab.cli import app
from losslab.data import CocoInstances
from losslab.data.check import check_dataset
from losslab.data.synth import ensure_synthetic

runner = CliRunner()


@pytest.mark.parametrize("crowd", [False, True])
def test_check_reports_a_split_without_annotations_as_a_problem(tiny_coco, crowd):
    ann, img_dir, data = tiny_coco
    data["annotations"] = [{**a, "iscrowd": 1} for a in data["annotations"]] if crowd else []
    ann.write_text(json.dumps(data))
    report = check_dataset(ann, img_dir)
    assert not report.ok
    (problem,) = report.problems
    assert f"{ann}: the split: no annotations in its 3 image(s)" in str(problem)
    assert "COCO AP on it is undefined" in problem.message and ("crowd" in problem.message) == crowd
    res = runner.invoke(app, ["data", "check", str(ann), "--images", str(img_dir)])
    assert res.exit_code == 1 and "no annotations" in res.output and "1 problem(s)" in res.output


def test_an_image_id_of_another_type_is_named_as_such(tiny_coco):
    ann, img_dir, data = tiny_coco
    data["images"][0]["id"] = "1"  # the annotations say 1, an integer
    ann.write_text(json.dumps(data))
    text = "\n".join(str(p) for p in check_dataset(ann, img_dir).problems)
    assert "image_id 1 is an integer but the image's id is '1', a string: write both ids the same way" in text
    data["images"][0]["id"] = 1
    data["annotations"][0]["image_id"] = "1"
    ann.write_text(json.dumps(data))
    text = "\n".join(str(p) for p in check_dataset(ann, img_dir).problems)
    assert "image_id '1' is a string but the image's id is 1, an integer" in text


def test_the_bad_entry_error_names_the_options_that_exist(tiny_coco):
    ann, img_dir, data = tiny_coco
    data["annotations"][0]["image_id"] = 99
    ann.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="unknown image id 99") as err:
        CocoInstances(ann, img_dir)
    assert "losslab train skip_bad=true" in str(err.value) and "losslab eval --skip-bad" in str(err.value)
    assert "skip_bad=True (--skip-bad)" not in str(err.value)
    assert len(CocoInstances(ann, img_dir, skip_bad=True).skipped) == 1


def _hold(path: Path, mode: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, mode)
    return fd


def test_a_killed_generators_temporary_folder_is_removed_by_the_next_one(tmp_path):
    stale = tmp_path / ".tmp-synth-instance-48px-1+1-seed0-abc-xyz"
    (stale / "train").mkdir(parents=True)
    (stale / "train" / "000001.png").write_bytes(b"x" * 1000)
    root = ensure_synthetic(tmp_path, train=1, val=1, size=48, seed=3, workers=1, progress=False)
    assert not stale.exists() and (root / "synth.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")) == []


def test_a_running_generators_temporary_folder_is_left_alone(tmp_path):
    live = tmp_path / ".tmp-synth-instance-48px-1+1-seed0-abc-live"
    live.mkdir()
    fd = _hold(tmp_path / ".generating.lock", fcntl.LOCK_SH)  # another process generating into it
    try:
        ensure_synthetic(tmp_path, train=1, val=1, size=48, seed=4, workers=1, progress=False)
        assert live.is_dir()
    finally:
        os.close(fd)
    ensure_synthetic(tmp_path, train=1, val=1, size=48, seed=5, workers=1, progress=False)
    assert not live.exists()  # once nobody generates, it is a leftover
