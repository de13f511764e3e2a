"""Loss-weight schedules in the spec grammar: `bce + ramp(0, 1)*boundary` parses, prints back, weighs
its term by the training progress, trains and logs its weight, and is refused when malformed."""

from __future__ import annotations

import csv

import pytest
import torch
from typer.testing import CliRunner

from losslab.cli import app
from losslab.losses import create_loss, format_spec, parse_spec
from losslab.losses.schedules import Ramp, Step


@pytest.mark.parametrize(
    "spec", ["bce + ramp(0, 1)*boundary", "ramp(1, 0.1)*bce + dice", "bce + step(0, 1, at=0.3)*dice"]
)
def test_scheduled_specs_print_back_as_written(spec):
    assert format_spec(parse_spec(spec)) == spec
    assert create_loss(spec).spec == spec


def test_ramp_and_step_values():
    ramp = Ramp(0.0, 1.0, begin=0.2, stop=0.6)
    assert [ramp(t) for t in (0.0, 0.2, 0.4, 0.6, 1.0)] == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])
    assert [Step(1.0, 0.1, at=0.5)(t) for t in (0.0, 0.49, 0.5, 1.0)] == [1.0, 1.0, 0.1, 0.1]


def test_the_scheduled_term_is_weighted_by_progress():
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(2, 8, 8, generator=g), (torch.rand(2, 8, 8, generator=g) > 0.5).float()
    loss = create_loss("bce + ramp(0, 1)*dice")
    bce, dice = create_loss("bce")(logits, target), create_loss("dice")(logits, target)
    for t in (0.0, 0.25, 1.0):
        loss.set_progress(t)
        assert loss(logits, target).item() == pytest.approx((bce + t * dice).item(), rel=1e-6)
        assert loss.scheduled_weights() == {"ramp(0, 1)*dice": pytest.approx(t)}
    loss.set_progress(0.5)
    terms = loss.forward_terms(logits, target)
    assert terms["ramp(0, 1)*dice"].item() == pytest.approx(0.5 * dice.item(), rel=1e-6)


def test_a_single_scheduled_term_is_scheduled_too():
    loss = create_loss("ramp(0, 2)*mse")
    loss.set_progress(1.0)
    x, y = torch.zeros(1, 4, 4), torch.ones(1, 4, 4)
    assert loss(x, y).item() == pytest.approx(2 * create_loss("mse")(x, y).item())


@pytest.mark.parametrize(
    ("spec", "pos", "why"),
    [
        ("bce + rampp(0, 1)*dice", 6, "unknown weight schedule 'rampp'"),
        ("bce + ramp(0)*dice", 6, "two weights"),
        ("bce + ramp(0, -1)*dice", 6, ">= 0"),
        ("bce + ramp(0, 1, begin=0.8, stop=0.2)*dice", 6, "must come after begin"),
        ("bce + step(0, 1, at=2)*dice", 6, r"in \[0, 1\]"),
        ("bce + ramp(0, 1, every=3)*dice", 6, "no parameter 'every'"),
        ("bce + 0.5*ramp(0, 1)*dice", 6, "takes no number in front"),
        ("bce + ramp(0, 1)*dice*2", 21, "no further weight"),
        ("ramp(0, 1) + bce", 0, "weight schedule: put it in front of a loss"),
        ("huber(2)", 0, "key=value parameters"),
    ],
)
def test_malformed_schedules_are_refused_with_the_position(spec, pos, why):
    with pytest.raises(ValueError, match=why) as info:
        create_loss(spec)
    assert info.value.pos == pos


def test_box_losses_take_no_schedule():
    with pytest.raises(ValueError, match="weight schedules apply to mask"):
        create_loss("smooth_l1 + ramp(0, 1)*giou", contract="box")


def test_training_logs_the_scheduled_weight_per_step(tmp_path):
    out = tmp_path / "run"
    args = ["model=yolact_tiny", "synth_train=4", "synth_val=2", "synth_size=64", "input_size=64", "batch_size=2"]
    args += ["max_iter=5", "log_every=1", "device=cpu", "num_samples=0", "fps_images=1", f"cache_dir={tmp_path}"]
    args += ["mask_loss=bce + ramp(0, 1)*dice", "--no-progress"]
    result = CliRunner().invoke(app, ["train", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    with (out / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["weight/ramp(0, 1)*dice"]) for r in rows] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert "mask/ramp(0, 1)*dice" in rows[0]  # the term itself, weighted as trained
