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
