"""Every registered preset keeps the model contract of docs/architecture.md (timm's test_models.py):
it builds from its config factory, takes one training step, predicts in the task's format, and its
config survives the round trip through a dict and through the run-config seam.

Presets run at a 64-px input with a few proposals (``TINY``: each key applies where a preset's config
has it), which keeps the whole parametrised test to seconds per preset on one core.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from losslab.config import config_to_dict
from losslab.engine.config import resolve_run_config
from losslab.models import create_model, get_model_info, list_models, model_config

SIZE = 64
#: Small settings for the contract check; a key a preset's config lacks is left out for that preset.
TINY = {
    "input_size": SIZE,
    "num_classes": 1,
    "rpn_pre_nms_train": 100,
    "rpn_post_nms_train": 50,
    "rpn_pre_nms_test": 100,
    "rpn_post_nms_test": 50,
    "box_batch_size_per_image": 32,
    "detections_per_img": 20,
}


def tiny_overrides(name: str) -> dict:
    keys = {f.name for f in dataclasses.fields(get_model_info(name).defaults)}
    return {k: v for k, v in TINY.items() if k in keys}


def batch(task: str, n: int = 2) -> tuple[torch.Tensor, object]:
    """Two noise images with one bright square each, and their targets in the task's format."""
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(n, 1, SIZE, SIZE)
    mask[:, :, 16:40, 20:44] = 1.0
    images = 0.3 * torch.randn(n, 3, SIZE, SIZE, generator=g) + mask
    if task == "dense":
        return images, {"mask": mask, "depth": 2.0 - mask, "image_id": torch.arange(n)}
    box = torch.tensor([[20.0, 16.0, 44.0, 40.0]])
    targets = [
        {
            "boxes": box,
            "labels": torch.ones(1, dtype=torch.int64),
            "masks": mask[i].to(torch.uint8),
            "iscrowd": torch.zeros(1, dtype=torch.bool),
            "image_id": i + 1,
            "orig_size": (SIZE, SIZE),
            "scale": 1.0,
        }
        for i in range(n)
    ]
    return images, targets


def check_predictions(out: object, task: str, n: int) -> None:
    if task == "dense":
        assert isinstance(out, dict) and out["mask"].shape == (n, 1, SIZE, SIZE)
        assert all(v.shape == (n, 1, SIZE, SIZE) for v in out.values())
        return
    assert isinstance(out, list) and len(out) == n
    for det in out:
        assert {"boxes", "scores", "labels", "masks"} <= set(det)
        k = det["scores"].shape[0]
        assert det["boxes"].shape == (k, 4) and det["labels"].shape == (k,)
        assert det["masks"].shape == (k, SIZE, SIZE)
        if k:
            assert det["labels"].min() >= 1 and 0.0 <= float(det["masks"].min()) <= float(det["masks"].max()) <= 1.0


@pytest.mark.parametrize("name", list_models())
def test_preset_keeps_the_model_contract(name):
    info = get_model_info(name)
    overrides = tiny_overrides(name)
    torch.manual_seed(0)
    model = create_model(name, **overrides)
    assert model.task == info.task and model.config == model_config(name, **overrides)

    images, targets = batch(info.task)
    model.train()
    out = model(images, targets)
    terms = {k: v for k, v in out.items() if k.startswith("loss_")}
    assert terms and all(v.dim() == 0 and math.isfinite(float(v.detach())) for v in terms.values()), out
    sum(terms.values()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())

    model.eval()
    with torch.no_grad():
        check_predictions(model(images), info.task, len(images))


@pytest.mark.parametrize("name", list_models())
def test_preset_config_round_trips(name):
    config = model_config(name, **tiny_overrides(name))
    assert model_config(name, **config_to_dict(config)) == config  # the dict form of config.yaml
    run = resolve_run_config({"model": name, "max_iter": 3, **tiny_overrides(name)})
    assert run.model == config and run.task == get_model_info(name).task
    assert resolve_run_config(run.to_dict()).to_dict() == run.to_dict()
    assert model_config(name) == get_model_info(name).defaults  # no override: the preset's own
