"""`losslab data synth` and `losslab data check` through typer's CliRunner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from losslab.cli import app

runner = CliRunner()


def test_synth_then_check(tmp_path):
    out = tmp_path / "ds"
    res = runner.invoke(
        app,
        [
            "data",
            "synth",
            str(out),
            "--train",
            "2",
            "--val",
            "1",
            "--size",
            "48",
            "--seed",
            "3",
            "--workers",
            "1",
            "--objects",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "annotations" / "instances_train.json").is_file()
    res = runner.invoke(
        app, ["data", "check", str(out / "annotations" / "instances_train.json"), "--images", str(out / "train")]
    )
    assert res.exit_code == 0, res.output
    assert "images" in res.output and "cig_butt" in res.output and "0 problem(s)" in res.output


def test_synth_bad_option(tmp_path):
    res = runner.invoke(app, ["data", "synth", str(tmp_path / "x"), "--difficulty", "insane", "--workers", "1"])
    assert res.exit_code != 0 and "difficulty" in res.output


def test_check_reports_problems_and_exit_codes(tiny_coco):
    ann, img_dir, data = tiny_coco
    data["annotations"][0]["category_id"] = 42
    data["images"][2]["file_name"] = "../../etc/passwd"
    ann.write_text(json.dumps(data))
    res = runner.invoke(app, ["data", "check", str(ann), "--images", str(img_dir)])
    assert res.exit_code == 1
    assert "unknown category id 42" in res.output and "outside the image folder" in res.output
    assert "2 problem(s)" in res.output
    res = runner.invoke(app, ["data", "check", str(ann), "--images", str(img_dir), "--skip-bad"])
    assert res.exit_code == 0


def test_check_malformed_json(tmp_path):
    bad = tmp_path / "a.json"
    bad.write_text("{")
    res = runner.invoke(app, ["data", "check", str(bad), "--images", str(tmp_path)])
    assert res.exit_code == 2 and "malformed json" in res.output


@pytest.mark.parametrize("cmd", [["data", "--help"], ["data", "synth", "--help"], ["data", "check", "--help"]])
def test_help(cmd):
    res = runner.invoke(app, cmd)
    assert res.exit_code == 0 and "Usage" in res.output


def _synth(out, *extra: str):
    args = ["data", "synth", str(out), "--train", "2", "--val", "1", "--size", "48", "--workers", "1", *extra]
    return runner.invoke(app, args)


@pytest.mark.parametrize(("layout", "title"), [("cig_butts", "Cigarette Butts"), ("roboflow", "Roboflow")])
def test_synth_layout_then_check_the_root(tmp_path, layout, title):
    out = tmp_path / "ds"
    assert _synth(out, "--layout", layout, "--objects", "1").exit_code == 0
    res = runner.invoke(app, ["data", "check", str(out)])
    assert res.exit_code == 0, res.output
    assert f"found the {title}" in res.output and "0 problem(s), 0 note(s) in 2 split(s)" in res.output
    assert "train:" in res.output and "val:" in res.output


def test_synth_rejects_unknown_and_dense_layouts(tmp_path):
    res = _synth(tmp_path / "a", "--layout", "coco2017")
    assert res.exit_code != 0 and "layout must be" in res.output
    res = _synth(tmp_path / "b", "--layout", "cig_butts", "--task", "dense")
    assert res.exit_code != 0 and "losslab's own layout only" in res.output


def test_check_root_counts_notes_apart_from_problems(tmp_path):
    out = tmp_path / "ds"
    assert _synth(out, "--layout", "cig_butts", "--objects", "2").exit_code == 0
    ann = out / "val" / "coco_annotations.json"
    data = json.loads(ann.read_text())
    for a in data["annotations"]:
        a["segmentation"] = a["segmentation"][0]  # one flat list, as some exporters write it
    ann.write_text(json.dumps(data))
    res = runner.invoke(app, ["data", "check", str(out)])
    assert res.exit_code == 0, res.output
    assert "notes: flat-list polygon" in res.output and "0 problem(s), 2 note(s) in 2 split(s)" in res.output
    assert res.output.count("note: ") == 1  # the first of its kind; --all-notes lists both
    res = runner.invoke(app, ["data", "check", str(out), "--all-notes"])
    assert res.output.count("note: ") == 2
    data["annotations"][0]["category_id"] = 9
    ann.write_text(json.dumps(data))
    res = runner.invoke(app, ["data", "check", str(out)])
    assert res.exit_code == 1 and "unknown category id 9" in res.output and "1 problem(s)" in res.output


def test_check_explains_what_it_needs(tmp_path):
    res = runner.invoke(app, ["data", "check", str(tmp_path)])
    assert res.exit_code == 2 and "no dataset layout found" in res.output
    assert str(tmp_path / "train" / "coco_annotations.json") in res.output
    ann = tmp_path / "a.json"
    ann.write_text("{}")
    res = runner.invoke(app, ["data", "check", str(ann)])
    assert res.exit_code == 2 and "--images" in res.output
