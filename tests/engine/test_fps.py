"""measure_fps with a tiny dummy model: what is called, how often, in which mode, and that the
global state it touches (threads, the model's train mode) is put back."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from losslab.engine.fps import measure_fps


class Recorder(nn.Module):
    """A conv plus a fake 'postprocess', recording every call."""

    def __init__(self, sleep: float = 0.0):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.sleep = sleep
        self.calls: list[dict] = []

    def forward(self, images):
        self.calls.append(
            {
                "shape": tuple(images.shape),
                "training": self.training,
                "inference": torch.is_inference_mode_enabled(),
                "first": float(images.flatten()[0]),
                "threads": torch.get_num_threads(),
                "autocast": torch.is_autocast_enabled("cpu"),
            }
        )
        if self.sleep:
            time.sleep(self.sleep)
        out = self.conv(images)
        return [{"scores": out.mean(dim=(1, 2, 3))}]


def test_keys_counts_and_mode():
    model = Recorder().train()
    res = measure_fps(model, 32, n=7, warmup=3)
    assert set(res) == {"fps", "ms_median", "size", "device", "threads"}
    assert res["size"] == 32 and res["device"] == "cpu" and res["threads"] == torch.get_num_threads()
    assert res["fps"] == pytest.approx(1000.0 / res["ms_median"])
    assert len(model.calls) == 10  # warm-up calls run but are not timed
    assert all(c["shape"] == (1, 3, 32, 32) for c in model.calls)  # batch size 1
    assert all(not c["training"] and c["inference"] for c in model.calls)
    assert model.training  # the caller's mode is restored


def test_median_covers_the_whole_call():
    res = measure_fps(Recorder(sleep=0.004), 16, n=5, warmup=1)
    assert res["ms_median"] >= 4.0  # the sleep stands in for NMS: it is inside the timed call


def test_threads_are_set_then_restored():
    before = torch.get_num_threads()
    model = Recorder()
    res = measure_fps(model, 16, n=2, warmup=0, threads=1)
    assert res["threads"] == 1 and all(c["threads"] == 1 for c in model.calls)
    assert torch.get_num_threads() == before


def test_given_images_are_cycled_and_autocast_applies():
    images = torch.stack([torch.full((3, 8, 12), float(i)) for i in range(3)])
    model = Recorder()
    res = measure_fps(model, 0, n=5, warmup=1, images=images, autocast_dtype=torch.bfloat16, channels_last=True)
    assert [c["first"] for c in model.calls] == [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]
    assert all(c["shape"] == (1, 3, 8, 12) and c["autocast"] for c in model.calls)
    assert res["size"] == "8x12"  # the given images decide the measured size, not input_size


def test_bad_arguments():
    with pytest.raises(ValueError, match="n=0"):
        measure_fps(Recorder(), 16, n=0)
    with pytest.raises(ValueError, match=r"images\[0\]"):
        measure_fps(Recorder(), 16, images=[torch.zeros(1, 8, 8)])
    with pytest.raises(ValueError, match="threads"):
        measure_fps(Recorder(), 16, threads=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_and_model_live_on_the_device():
    model = Recorder()
    res = measure_fps(model, 32, device="cuda", n=3, warmup=1)
    assert res["device"] == "cuda" and next(model.parameters()).is_cuda
    assert res["fps"] > 0
