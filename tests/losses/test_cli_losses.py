"""`losslab losses list | show | plot` through typer's CliRunner."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from losslab.cli import app
from losslab.losses import list_losses
from losslab.losses.plot import loss_curves

runner = CliRunner()
WIDE = {"COLUMNS": "250"}  # rich sizes the table to the terminal


def test_list_shows_every_registered_loss_with_metadata():
    result = runner.invoke(app, ["losses", "list"], env=WIDE)
    assert result.exit_code == 0, result.output
    for name in list_losses():
        assert name in result.output
    assert "Kervadec" in result.output and "window=11" in result.output


def test_list_filters_by_kind_and_pattern():
    result = runner.invoke(app, ["losses", "list", "--kind", "box"], env=WIDE)
    assert result.exit_code == 0
    assert "giou" in result.output and "ohem_ce" not in result.output and "bce " not in result.output
    result = runner.invoke(app, ["losses", "list", "*focal*"], env=WIDE)
    assert "softmax_focal" in result.output and "giou" not in result.output
    bad = runner.invoke(app, ["losses", "list", "--kind", "nope"], env=WIDE)
    assert bad.exit_code != 0 and "pixel" in bad.output


def test_show_prints_parameters_and_docstring():
    result = runner.invoke(app, ["losses", "show", "ohem_ce"], env=WIDE)
    assert result.exit_code == 0
    assert "neg_pos_ratio=3.0" in result.output and "hard negative" in result.output
    bad = runner.invoke(app, ["losses", "show", "dise"], env=WIDE)
    assert bad.exit_code != 0 and "dice" in bad.output


def test_plot_writes_a_png(tmp_path):
    out = tmp_path / "plots" / "losses.png"
    result = runner.invoke(app, ["losses", "plot", "bce", "0.5*mse + bce", "ssim", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_plot_rejects_a_bad_spec(tmp_path):
    result = runner.invoke(app, ["losses", "plot", "giou", "--out", str(tmp_path / "x.png")])
    assert result.exit_code != 0
    assert not (tmp_path / "x.png").exists()


def test_curves_are_the_loss_itself():
    c = loss_curves("bce", points=5)
    p = c.prob
    np.testing.assert_allclose(c.value_fg, -np.log(p), rtol=1e-10)
    np.testing.assert_allclose(c.grad_fg, p - 1, rtol=1e-10, atol=1e-12)  # d bce / d logit = p - g
    np.testing.assert_allclose(c.grad_bg, p, rtol=1e-10)
    assert c.overlap_value[0] < c.overlap_value[-1]  # sliding the disk off makes it worse
    assert c.iou[0] == pytest.approx(1.0) and c.iou[-1] == 0.0


def test_list_and_show_name_the_operators():
    from typer.testing import CliRunner

    from losslab.cli import app

    listed = CliRunner().invoke(app, ["losses", "list"], terminal_width=200)
    assert listed.exit_code == 0 and "uncropped(TERM)" in listed.output and "log_cosh(TERM)" in listed.output
    shown = CliRunner().invoke(app, ["losses", "show", "uncropped"], terminal_width=200)
    assert shown.exit_code == 0 and "mask_proto_double_loss" in shown.output
