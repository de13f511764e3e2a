"""Two CPU processes with the gloo backend: DDP keeps the weights identical on both ranks."""

from __future__ import annotations

import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

from losslab.engine.config import TrainConfig
from losslab.engine.distributed import cleanup_distributed, init_distributed, is_distributed
from losslab.engine.hooks import EvalHook
from losslab.engine.train import Trainer
from tests.engine._engine_fakes import FakeInstanceModel, FakeInstances, collate

pytestmark = [pytest.mark.ddp, pytest.mark.slow]

HANG_GUARD_S = 1200


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    # the environment torchrun gives each process; init_distributed reads it
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    info = init_distributed("gloo")
    assert (info.rank, info.world_size) == (rank, world) and is_distributed()
    try:
        torch.manual_seed(100 + rank)  # different initial weights: DDP must start from rank 0's
        model = FakeInstanceModel()
        cfg = TrainConfig(
            model="fake", batch_size=2, max_iter=4, lr=0.1, warmup_iters=1, ckpt_every=2, log_every=1,
            device="cpu", amp=False,
        )  # fmt: skip
        trainer = Trainer(model, FakeInstances(12), cfg, collate_fn=collate, run_dir=out_dir)
        ids: list[list[int]] = []
        next_batch = trainer._next_batch

        def spy():
            batch = next_batch()
            ids.append([t["image_id"] for t in batch[1]])
            return batch

        trainer._next_batch = spy
        evals = EvalHook(2, lambda m: {"fake": {"AP": float(sum(p.sum() for p in m.parameters()))}})
        trainer.register_hooks([evals])
        trainer.train()
        torch.save({"state": model.state_dict(), "ids": ids, "evals": evals.results}, f"{out_dir}/rank{rank}.pt")
    finally:
        cleanup_distributed()


def test_two_gloo_processes_end_with_identical_weights(tmp_path):
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=False)
    # A guard against a hang (a rendezvous that never completes), not a speed assertion: a normal
    # run takes seconds, a loaded shared machine may take minutes.
    deadline = time.monotonic() + HANG_GUARD_S
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail(f"the two DDP processes still ran after {HANG_GUARD_S} s: a hung rendezvous or collective")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), k
    torch.manual_seed(100)
    init = FakeInstanceModel().state_dict()
    assert not torch.equal(init["conv.weight"], r0["state"]["conv.weight"])  # it trained
    for a, b in zip(r0["ids"], r1["ids"], strict=True):  # each rank saw its own shard
        assert not set(a) & set(b)
    assert r0["evals"] == r1["evals"] and [e["iteration"] for e in r0["evals"]] == [2]
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 4  # rank 0 alone logged: a header and one row per iteration


def _resume_worker(rank: int, world: int, port: int, out_dir: str, data: str) -> None:
    from losslab.engine.distributed import barrier
    from losslab.engine.run import run_experiment
    from tests.engine._engine_fakes import fake_presets

    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    init_distributed("gloo")
    config = {"model": "fake_instance", "data": data, "batch_size": 2, "max_iter": 4, "ckpt_every": 2}
    config |= {"device": "cpu", "num_samples": 1, "fps_images": 1, "threads": 1, "log_every": 1}
    try:
        with fake_presets():
            run_experiment(config, out_dir, progress=False)
            last = f"{out_dir}/checkpoints/last.pt"
            if rank == 0:  # damaged after it was written: every rank must resume from previous.pt
                with open(last, "r+b") as fh:
                    fh.truncate(1000)
            barrier()
            # rank 1 reads the file rank 0 chose: the damaged one is already set aside
            run_experiment({**config, "max_iter": 6}, out_dir, progress=False)
    finally:
        cleanup_distributed()


def test_two_gloo_processes_resume_a_damaged_run_from_the_same_checkpoint(tmp_path):
    from tests.engine._engine_fakes import write_datasets

    data = write_datasets(tmp_path / "data")["instance"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "run"
    ctx = mp.spawn(_resume_worker, args=(2, port, str(out), data), nprocs=2, join=False)
    deadline = time.monotonic() + HANG_GUARD_S
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail(f"the two DDP processes still ran after {HANG_GUARD_S} s")
    rows = [int(r.split(",")[0]) for r in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert rows == [1, 2, 3, 4, 5, 6]  # from iteration 2 of previous.pt, once, on rank 0
    assert (out / "checkpoints" / "last.pt.damaged").is_file()
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["iteration"] == 6
