"""run_experiment and its config handling, on the fake presets and tiny synthetic datasets."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml

from losslab.engine import run
from losslab.engine.checkpoint import load_checkpoint
from losslab.engine.config import resolve_run_config
from losslab.engine.inference import model_from_checkpoint

RESULT_KEYS = {"metrics", "fps", "train_seconds", "iterations", "skipped_steps", "precision"}
INSTANCE_KEYS = RESULT_KEYS | {"pr", "per_image"}
# FPS is measured for real: fps_images=2 keeps it to a few calls of the tiny model
BASE = {
    "batch_size": 4,
    "max_iter": 4,
    "ckpt_every": 2,
    "log_every": 1,
    "device": "cpu",
    "num_samples": 3,
    "fps_images": 2,
}


@pytest.fixture
def fakes(fake_models, fake_data):
    """Run configs of the fake presets on their datasets: ``fakes["dense"]`` and ``fakes["instance"]``."""
    return {
        "dense": {**BASE, "model": "fake_dense", "data": fake_data["dense"]},
        "instance": {**BASE, "model": "fake_instance", "data": fake_data["instance"]},
    }


def test_resolve_config_routes_keys_to_trainer_and_model(fakes):
    r = resolve_run_config({"model": "fake_dense", "max_iter": "7", "mask_loss": "0.5*mse + bce", "width": 8})
    assert r.train.max_iter == 7 and r.train.model == "fake_dense" and r.task == "dense"
    assert r.model.mask_loss == "0.5*mse + bce" and r.model.width == 8
    assert set(r.model_keys_given) == {"mask_loss", "width"}
    nested = resolve_run_config(r.to_dict())  # the config.yaml form resolves to the same
    assert nested.to_dict() == r.to_dict()


def test_unknown_key_suggests_from_both_sets(fakes):
    with pytest.raises(ValueError, match=r"unknown key 'max_iters'.*Did you mean 'max_iter'"):
        resolve_run_config({"model": "fake_dense", "max_iters": 3})
    with pytest.raises(ValueError, match=r"'mask_los'.*Did you mean 'mask_loss'.*Model keys of fake_dense"):
        resolve_run_config({"model": "fake_dense", "mask_los": "bce"})
    with pytest.raises(ValueError, match="unknown model 'fake_dens'"):
        resolve_run_config({"model": "fake_dens"})


def test_run_experiment_writes_the_run_folder_and_resumes(fakes, tmp_path):
    out = tmp_path / "run"
    result = run.run_experiment(fakes["dense"], out, progress=False)
    assert set(result) == RESULT_KEYS
    assert result["iterations"] == 4 and result["skipped_steps"] == 0 and result["fps"] > 0
    assert result["precision"] in {"fp32", "bf16+channels-last"}  # amp=true: bf16 where the CPU has it natively
    assert set(result["metrics"]) == {"mask"} and 0 <= result["metrics"]["mask"]["IoU"] <= 100
    assert json.loads((out / "result.json").read_text()) == result
    assert json.loads((out / "eval.json").read_text()) == result["metrics"]
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["max_iter"] == 4 and saved["model"]["mask_loss"] == "bce"
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["1.png", "2.png", "3.png"]
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["iteration"] == 4 and state["config"]["train"]["model"] == "fake_dense"

    # a longer schedule on the same folder continues from iteration 4 instead of starting again
    again = run.run_experiment({**fakes["dense"], "max_iter": 6}, out, progress=False)
    assert again["iterations"] == 6
    with open(out / "metrics.csv", newline="") as fh:
        assert [int(r["iteration"]) for r in csv.DictReader(fh)] == [1, 2, 3, 4, 5, 6]


def test_run_experiment_instance_task_sets_num_classes_and_draws_samples(fakes, tmp_path):
    out = tmp_path / "inst"
    result = run.run_experiment({**fakes["instance"], "mask_loss": "dice"}, out, progress=False)
    assert set(result) == INSTANCE_KEYS and set(result["metrics"]) == {"segm", "bbox", "boundary", "mask_fill"}
    assert (
        set(result["per_image"]["segm"])
        and set(result["per_image"]["segm"]) <= {1, 2, 3, 4}
        and 0 <= result["metrics"]["segm"]["AP"] <= 100
    )
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["num_classes"] == 2 and saved["model"]["mask_loss"] == "dice"
    assert len(list((out / "samples").glob("*.png"))) == 3
    with pytest.raises(ValueError, match="num_classes=5 but the dataset"):
        run.run_experiment({**fakes["instance"], "num_classes": 5}, tmp_path / "bad", progress=False)


def test_eval_every_writes_a_history(fakes, tmp_path):
    out = tmp_path / "ev"
    run.run_experiment({**fakes["dense"], "eval_every": 2}, out, progress=False)
    lines = [json.loads(x) for x in (out / "eval_history.jsonl").read_text().splitlines()]
    assert [e["iteration"] for e in lines] == [2] and "mask" in lines[0]["metrics"]


def test_model_from_checkpoint_rebuilds_the_trained_model(fakes, tmp_path):
    out = tmp_path / "m"
    run.run_experiment({**fakes["dense"], "width": 8}, out, progress=False)
    model, state = model_from_checkpoint(out / "checkpoints" / "last.pt")
    assert not model.training and model.config.width == 8
    for k, v in model.state_dict().items():
        assert torch.equal(v, state["model"][k])
