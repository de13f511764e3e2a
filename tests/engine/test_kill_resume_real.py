"""A real `losslab train` of yolact_tiny, killed with SIGKILL past a checkpoint and started again with
the same command: it resumes from that checkpoint, metrics.csv ends with each iteration once and the
run finishes with its results. (tests/engine/test_train.py checks exact resume on a fake model.)"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from losslab.data.synth import SynthConfig, generate

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs POSIX signals"),
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

MAX_ITER, CKPT_EVERY = 20, 5
#: Seconds before the test calls the run hung; against a hang only, never a speed check.
HANG_GUARD = 600
#: The metrics.csv columns that a replayed step measures anew; every other column is the step's numbers.
CLOCK = ("images_per_s", "time")


def _train_command(data: Path, out: Path) -> list[str]:
    """The one command of both launches: ``--resume`` starts a fresh run when ``out`` holds none."""
    keys = {
        "model": "yolact_tiny",
        "data": data,
        "input_size": 64,
        "batch_size": 2,
        "max_iter": MAX_ITER,
        "ckpt_every": CKPT_EVERY,
        "log_every": 1,
        "warmup_iters": 1,
        "grad_clip": 10,  # unclipped, the default SGD recipe diverges by step 10 on these 64-px images
        "workers": 0,  # a resume replays the same augmentations only in-process
        "threads": 1,
        "fps_images": 1,
        "num_samples": 1,
        "device": "cpu",
        "amp": False,
    }
    args = [f"{k}={v}" for k, v in keys.items()]
    return [sys.executable, "-m", "losslab", "train", *args, "--no-progress", "--resume", "--out", str(out)]


def _rows(path: Path) -> list[dict[str, str]]:
    """The complete rows of a metrics.csv that may be growing (a line still being written is left out)."""
    if not path.is_file():
        return []
    text = path.read_text()
    text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text)))


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def _kill_past_a_checkpoint(proc: subprocess.Popen, run: Path) -> int:
    """SIGKILL ``proc`` once it has logged a step past its last checkpoint; that checkpoint's iteration.

    The process is stopped (SIGSTOP) while the files are read, so that it cannot write a checkpoint
    between the two reads; if it stands exactly on one, it goes on and is looked at again.
    """
    last, metrics = run / "checkpoints" / "last.pt", run / "metrics.csv"
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit code {proc.returncode}) before it was killed; see {run.parent}/log1")
        rows = _rows(metrics)
        if last.is_file() and rows and int(rows[-1]["iteration"]) > CKPT_EVERY:
            os.kill(proc.pid, signal.SIGSTOP)
            at = _checkpoint(last)["iteration"]
            if int(_rows(metrics)[-1]["iteration"]) > at:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
                return at
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no step past a checkpoint within {HANG_GUARD} s")


def test_a_killed_real_run_resumes_from_its_checkpoint_and_finishes(tmp_path):
    data = generate(tmp_path / "ds", SynthConfig(train=4, val=2, size=64, seed=0), workers=1, progress=False)
    run = tmp_path / "run"
    command = _train_command(data, run)
    with open(tmp_path / "log1", "w") as log:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    ckpt_at = _kill_past_a_checkpoint(proc, run)
    assert proc.returncode == -signal.SIGKILL
    before = _rows(run / "metrics.csv")
    killed_at = int(before[-1]["iteration"])
    assert ckpt_at % CKPT_EVERY == 0 and CKPT_EVERY <= ckpt_at < killed_at < MAX_ITER
    assert not (run / "result.json").exists()

    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=HANG_GUARD)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "skipped steps 0 · results in" in again.stdout
    assert "config changed" not in again.stderr  # --resume reused the run's own config.yaml
    assert "resuming from" in again.stderr, again.stderr  # the command says where it resumed

    rows = _rows(run / "metrics.csv")
    assert [int(r["iteration"]) for r in rows] == list(range(1, MAX_ITER + 1))  # each once, no gap
    # Resumed, not restarted: the rows up to the checkpoint are the killed run's own, clock columns
    # (time, images_per_s) included, and the cumulative train time goes on from them.
    assert rows[:ckpt_at] == before[:ckpt_at]
    assert float(rows[ckpt_at]["time"]) > float(rows[ckpt_at - 1]["time"])
    # Exact resume: the steps the kill lost are replayed with the same batches and weights.
    assert {"lr", "loss_mask", "total"} < set(rows[0]) and set(CLOCK) < set(rows[0])
    for lost, replayed in zip(before[ckpt_at:killed_at], rows[ckpt_at:killed_at], strict=True):
        numbers = [k for k in lost if k not in CLOCK]
        assert {k: replayed[k] for k in numbers} == {k: lost[k] for k in numbers}, lost["iteration"]

    state = _checkpoint(run / "checkpoints" / "last.pt")
    assert state["iteration"] == state["max_iter"] == MAX_ITER and state["skipped_steps"] == 0
    assert not [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]  # no temporaries
    result = json.loads((run / "result.json").read_text())
    assert result["iterations"] == MAX_ITER and result["skipped_steps"] == 0 and result["precision"] == "fp32"
    assert json.loads((run / "eval.json").read_text()) == result["metrics"] and "segm" in result["metrics"]
    assert len(list((run / "samples").glob("*.png"))) == 1
