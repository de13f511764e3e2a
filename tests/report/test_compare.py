"""``losslab study compare``: contradicting verdicts between two studies' verdicts.csv."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from losslab.cli import app
from losslab.report.compare import compare_verdicts, contradicts
from losslab.report.tuning_report import VERDICT_COLUMNS


def _write(folder, verdicts):
    folder.mkdir()
    with (folder / "verdicts.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(VERDICT_COLUMNS)
        for (config, metric), verdict in verdicts.items():
            writer.writerow([config, metric, verdict, "-1.0", "-2.0", "0.0", "0.01", "pooled t", "BCE",
                             "", "2", "1.5", "3"])  # fmt: skip
    return folder


def test_what_contradicts():
    assert contradicts("better", "worse") and contradicts("better", "equivalent") and contradicts("worse", "equivalent")
    assert not contradicts("better", "undecided") and not contradicts("undecided", "worse")
    assert not contradicts("worse", "worse") and not contradicts("", "better")


def test_compare_two_studies(tmp_path):
    a = _write(
        tmp_path / "a", {("MSE", "segm.AP"): "worse", ("Dice", "segm.AP"): "undecided", ("MSE", "bbox.AP"): "worse"}
    )
    b = _write(
        tmp_path / "b", {("MSE", "segm.AP"): "equivalent", ("Dice", "segm.AP"): "better", ("X", "segm.AP"): "worse"}
    )
    pairs = compare_verdicts(a, b, "segm.AP")
    assert [(p.config, p.first, p.second, p.contradiction) for p in pairs] == [
        ("MSE", "worse", "equivalent", True),
        ("Dice", "undecided", "better", False),
        ("X", "", "worse", False),
    ]
    result = CliRunner().invoke(app, ["study", "compare", str(a), str(b)])
    assert result.exit_code == 1 and "1 contradicting verdict of 3 compared" in result.output
    same = CliRunner().invoke(app, ["study", "compare", str(a), str(a), "--metric", "all"])
    assert same.exit_code == 0 and "0 contradicting verdicts of 3 compared" in same.output


def test_a_folder_without_verdicts_is_refused(tmp_path):
    with pytest.raises(ValueError, match="losslab study report"):
        compare_verdicts(tmp_path, tmp_path)
    result = CliRunner().invoke(app, ["study", "compare", str(tmp_path), str(tmp_path)])
    assert result.exit_code == 2 and "verdicts.csv does not exist" in result.output
