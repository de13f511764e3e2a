"""`losslab study` through typer's CliRunner, with the fake run function."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from losslab.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_list_and_show():
    result = runner.invoke(app, ["study", "list"])
    assert result.exit_code == 0, result.output
    for name in ("quick", "paper-hybrid", "audit", "masknet-depth"):
        assert name in result.output
    shown = runner.invoke(app, ["study", "show", "quick"])
    assert shown.exit_code == 0 and yaml.safe_load(shown.output)["name"] == "quick"


@pytest.mark.slow
def test_run_status_report(tmp_path, tiny_spec):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec))
    out = tmp_path / "out"
    args = ["study", "run", str(spec), "--out", str(out), "--run-fn", "studyfake:fake_run", "--set", "max_iter=2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "mask AP" in result.output and "vs BCE" in result.output and f"report: {out / 'report.md'}" in result.output
    assert (out / "report.html").is_file()
    status = runner.invoke(app, ["study", "status", str(out)])
    assert status.exit_code == 0 and status.output.count("done") >= 4 and "4 runs: 4 done" in status.output
    report = runner.invoke(app, ["study", "report", str(out)])
    assert report.exit_code == 0 and "results.csv" in report.output


def test_errors_exit_2_with_a_message(tmp_path):
    result = runner.invoke(app, ["study", "run", "quik", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "Did you mean 'quick'" in result.output
    status = runner.invoke(app, ["study", "status", str(tmp_path / "none")])
    assert status.exit_code == 2 and "does not exist" in status.output
