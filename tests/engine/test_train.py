"""The training loop: schedule, metrics.csv, non-finite steps, exact resume, hooks."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import torch

from losslab.engine.config import TrainConfig, lr_factor, resolve_lr_steps
from losslab.engine.hooks import EvalHook, HookBase, ProgressHook
from losslab.engine.train import NonFiniteLossError, Trainer
from tests._fit import below, check, fall
from tests.engine._engine_fakes import FakeDense, FakeDenseModel, FakeInstanceModel, FakeInstances, collate


def _cfg(**kw) -> TrainConfig:
    base = dict(
        model="fake", batch_size=4, max_iter=6, lr=0.05, warmup_iters=2, lr_steps=(0.5,), ckpt_every=0,
        log_every=1, device="cpu", amp=False,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def _trainer(cfg: TrainConfig, tmp_path=None, model=None, data=None, **kw) -> Trainer:
    torch.manual_seed(0)
    model = model if model is not None else FakeInstanceModel()
    data = data if data is not None else FakeInstances(12)
    return Trainer(model, data, cfg, collate_fn=collate, run_dir=tmp_path, **kw)


def test_lr_factor_warmup_and_step_decay_values():
    cfg = _cfg(warmup_iters=10, warmup_factor=0.1, lr_steps=(0.6, 0.75), gamma=0.1)
    got = [lr_factor(i, 20, cfg) for i in (0, 5, 9, 10, 14, 15, 19)]
    want = [0.1, 0.55, 0.1 + 0.9 * 0.9, 1.0, 0.1, 0.01, 0.01]
    assert got == pytest.approx(want)
    assert resolve_lr_steps((0.35, 600.0), 800) == [280, 600]  # fractions and absolute iterations


def test_trainer_uses_the_schedule(tmp_path):
    cfg = _cfg(max_iter=8, warmup_iters=4, warmup_factor=0.5, lr_steps=(6,), gamma=0.5)
    trainer = _trainer(cfg, tmp_path)
    lrs = []
    trainer.add_callback("after_step", lambda t: lrs.append(t.last_log["lr"]))
    trainer.train()
    want = [0.05 * lr_factor(i, 8, cfg) for i in range(8)]
    assert lrs == pytest.approx(want)
    assert lrs[0] == pytest.approx(0.025) and lrs[-1] == pytest.approx(0.025)


def test_metrics_csv_has_one_row_per_logged_step(tmp_path):
    trainer = _trainer(_cfg(max_iter=7, log_every=3), tmp_path)
    trainer.train()
    with open(tmp_path / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["iteration"]) for r in rows] == [1, 3, 6, 7]
    assert list(rows[0])[:7] == ["iteration", "lr", "loss_mask", "loss_box", "total", "images_per_s", "time"]
    for r in rows:
        assert float(r["total"]) == pytest.approx(float(r["loss_mask"]) + float(r["loss_box"]), rel=1e-4)
        assert float(r["images_per_s"]) > 0 and float(r["num_pos"]) == 4
    assert float(rows[-1]["time"]) >= float(rows[0]["time"])


def test_epochs_set_the_number_of_iterations():
    trainer = _trainer(_cfg(epochs=2, batch_size=5))  # 12 images -> 2 full batches per epoch
    assert trainer.batches_per_epoch == 2 and trainer.max_iter == 4
    assert trainer.train()["iterations"] == 4 and trainer.epoch == 1


def test_too_small_dataset_is_refused():
    with pytest.raises(ValueError, match="fewer than batch_size"):
        _trainer(_cfg(batch_size=20))


def test_non_finite_steps_are_skipped_counted_and_logged(tmp_path, caplog):
    model = FakeInstanceModel(nan_ids=(3,))
    # 1 skipped step of 6 is more than the default 5 %: allow it to see it counted
    trainer = _trainer(_cfg(max_iter=6, batch_size=2, lr_steps=(), max_skipped_fraction=0.2), tmp_path, model=model)
    seen: list[list[int]] = []

    class Watch(HookBase):
        def after_step(self, t):
            seen.append(None)

    trainer.register_hooks([Watch()])
    summary = trainer.train()
    assert summary["iterations"] == 6 and len(seen) == 6
    assert summary["skipped_steps"] == 1  # image 3 appears in exactly one batch of the 6
    assert all(torch.isfinite(p).all() for p in model.parameters())
    with open(tmp_path / "skipped_steps.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and "3" in rows[0]["image_ids"].split()
    assert "non-finite loss" in caplog.text


def test_non_finite_forever_stops_with_a_clear_error():
    model = FakeInstanceModel(nan_ids=tuple(range(1, 13)))
    trainer = _trainer(_cfg(max_iter=50, max_bad_steps=3, max_skipped_fraction=1.0), model=model)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(NonFiniteLossError, match=r"4 consecutive steps.*max_bad_steps=3"):
        trainer.train()
    assert trainer.skipped_steps == 4 and trainer.iter == 3
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_a_run_that_skips_too_many_of_its_steps_fails_as_soon_as_that_is_certain():
    # The case: 20 steps, every one non-finite, too short for the consecutive rule (20).
    model = FakeInstanceModel(nan_ids=tuple(range(1, 13)))
    trainer = _trainer(_cfg(max_iter=20), model=model)
    with pytest.raises(NonFiniteLossError, match=r"2 of the run's 20 steps were skipped.*max_skipped_fraction=0.05"):
        trainer.train()
    assert trainer.iter == 1  # failed at the second step, not after twenty


def test_skipped_steps_within_the_fraction_pass():
    model = FakeInstanceModel(nan_ids=(3,))  # in one batch of the 6
    summary = _trainer(_cfg(max_iter=6, batch_size=2, max_skipped_fraction=1 / 6), model=model).train()
    assert summary["skipped_steps"] == 1 and summary["iterations"] == 6


def test_non_finite_weights_at_the_end_fail_the_run_and_are_not_checkpointed(tmp_path):
    trainer = _trainer(_cfg(max_iter=3), tmp_path)

    def poison(t):  # what an infinite update on the last step leaves, with a finite loss
        if t.iter == t.max_iter:
            t.model.head.bias.data.fill_(float("nan"))

    trainer.add_callback("after_step", poison)
    with pytest.raises(NonFiniteLossError, match=r"after 3 steps \(0 skipped\).*parameter 'head.bias'"):
        trainer.train()
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


def test_a_state_already_read_resumes_like_its_file(tmp_path):
    first = _trainer(_cfg(max_iter=4, ckpt_every=2), tmp_path)
    first.train()
    path = tmp_path / "checkpoints" / "last.pt"
    from losslab.engine.checkpoint import load_checkpoint

    again = _trainer(_cfg(max_iter=4), tmp_path / "b")
    again.train(resume_from=load_checkpoint(path))
    assert again.iter == 4 and all(
        torch.equal(a, b) for a, b in zip(first.model.parameters(), again.model.parameters(), strict=True)
    )


class _CrashError(Exception):
    pass


def _train_until_crash(trainer: Trainer, crash_at: int) -> None:
    """Train ``trainer`` until a crash right after step ``crash_at`` (its checkpoints stay behind)."""

    def crash(t):
        if t.iter == crash_at:
            raise _CrashError

    trainer.add_callback("after_step", crash)
    with pytest.raises(_CrashError):
        trainer.train()


def _record_order(trainer, order):
    trainer.add_callback("after_step", lambda t: order.append(t.iter))


@pytest.mark.parametrize("crash_at", [4, 5])
def test_resume_gives_bit_identical_weights(tmp_path, crash_at):
    """Interrupted at ``crash_at`` (last checkpoint at 3, or 4 past an epoch end) and resumed ==
    uninterrupted, bit for bit, with the same batches (random flips and dropout included)."""
    cfg = _cfg(max_iter=9, batch_size=5, ckpt_every=3 if crash_at == 4 else 2, log_every=1)
    ids_a: list[list[int]] = []
    ref = _trainer(cfg, tmp_path / "a")
    orig = ref._next_batch

    def spy_a():
        batch = orig()
        ids_a.append([t["image_id"] for t in batch[1]])
        return batch

    ref._next_batch = spy_a
    ref.train()

    _train_until_crash(_trainer(cfg, tmp_path / "b"), crash_at)
    last = tmp_path / "b" / "checkpoints" / "last.pt"
    assert last.is_file()
    with open(tmp_path / "b" / "metrics.csv", newline="") as fh:  # every step logged before the crash
        assert [int(r["iteration"]) for r in csv.DictReader(fh)] == list(range(1, crash_at + 1))

    torch.manual_seed(123)  # a differently initialised model: the checkpoint must overwrite it
    ids_b: list[list[int]] = []
    resumed = Trainer(FakeInstanceModel(), FakeInstances(12), cfg, collate_fn=collate, run_dir=tmp_path / "b")
    orig_b = resumed._next_batch

    def spy_b():
        batch = orig_b()
        ids_b.append([t["image_id"] for t in batch[1]])
        return batch

    resumed._next_batch = spy_b
    resumed.train(resume_from=last)
    start = 3 if crash_at == 4 else 4
    assert ids_b == ids_a[start:]
    for (name, a), b in zip(ref.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for a, b in zip(
        ref.optimizer.state_dict()["state"].values(), resumed.optimizer.state_dict()["state"].values(), strict=True
    ):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    # metrics.csv of the resumed run has each iteration once, as the uninterrupted one does
    with open(tmp_path / "b" / "metrics.csv", newline="") as fh:
        iters = [int(r["iteration"]) for r in csv.DictReader(fh)]
    assert iters == list(range(1, 10))


def fit_dense(run_dir: Path, seed: int = 0) -> dict[str, float]:
    """30 trainer iterations of the fake dense model; ``fall`` = the mean of the last 5 logged
    losses over the mean of the first 5 (read back from metrics.csv)."""
    torch.manual_seed(seed)
    cfg = _cfg(max_iter=30, batch_size=4, lr=0.2, warmup_iters=0, lr_steps=(), log_every=1, seed=seed)
    trainer = Trainer(FakeDenseModel(), FakeDense(8), cfg, run_dir=run_dir)
    trainer.train()
    with open(Path(run_dir) / "metrics.csv", newline="") as fh:
        losses = [float(r["loss_mask"]) for r in csv.DictReader(fh)]
    return {"fall": fall(losses, 5)}


DENSE_BOUNDS = {"fall": below(0.7)}


def test_dense_model_trains_and_loss_falls(tmp_path):
    check(fit_dense(tmp_path), DENSE_BOUNDS)


def test_deterministic_mode_is_restored_after_training():
    before = torch.are_deterministic_algorithms_enabled()
    seen = []
    trainer = _trainer(_cfg(max_iter=2, deterministic=True))
    trainer.add_callback("after_step", lambda t: seen.append(torch.are_deterministic_algorithms_enabled()))
    trainer.train()
    assert seen == [True, True]
    assert torch.are_deterministic_algorithms_enabled() == before


def test_grad_clip_bounds_the_gradient_norm():
    trainer = _trainer(_cfg(max_iter=1, grad_clip=1e-3, lr=1.0, warmup_iters=0, momentum=0.0, weight_decay=0.0))
    norms = []

    def grab(t):
        grads = [p.grad for p in t.params if p.grad is not None]
        norms.append(math.sqrt(sum(float(g.pow(2).sum()) for g in grads)))

    trainer.add_callback("after_step", grab)
    trainer.train()
    assert norms[0] <= 1e-3 * 1.0001


def test_progress_bar_shows_the_loss_terms(capsys):
    trainer = _trainer(_cfg(max_iter=2), progress=True)
    trainer.train()
    out = capsys.readouterr().out
    assert "total=" in out and "mask=" in out and "img/s" in out and "2/2" in out


def _progress_lines(trainer: Trainer, **kw) -> list[str]:
    from io import StringIO

    from rich.console import Console

    buffer = StringIO()
    trainer.register_hooks([ProgressHook(console=Console(file=buffer, force_terminal=False, width=200), **kw)])
    trainer.train()
    return buffer.getvalue().splitlines()


def test_progress_to_a_file_is_plain_lines_with_the_eta():
    """Output to a file or a pipe gets a line at most every line_seconds (here: every step), each with
    the iteration, the share done, the loss terms, the elapsed time and the ETA; no bar."""
    lines = _progress_lines(_trainer(_cfg(max_iter=4)), line_seconds=0)
    assert [line.split()[1] for line in lines] == ["1/4", "2/4", "3/4", "4/4"]
    for line in lines:
        assert line.startswith("train ") and "total=" in line and "mask=" in line and "img/s" in line
        assert re.search(r"\d+:\d\d elapsed, ETA \d+:\d\d$", line), line
    assert "(100.0 %)" in lines[-1] and lines[-1].endswith("ETA 0:00")
    assert not any("━" in line for line in lines)


def test_progress_to_a_file_waits_line_seconds_but_always_says_the_end():
    lines = _progress_lines(_trainer(_cfg(max_iter=4)), line_seconds=3600)
    assert len(lines) == 1 and lines[0].startswith("train 4/4 (100.0 %)")


def test_progress_on_a_terminal_is_a_bar():
    from io import StringIO

    from rich.console import Console

    buffer = StringIO()
    console = Console(file=buffer, force_terminal=True, width=200)
    trainer = _trainer(_cfg(max_iter=2))
    trainer.register_hooks([ProgressHook(console=console, line_seconds=0)])
    trainer.train()
    assert "━" in buffer.getvalue() and "2/2" in buffer.getvalue() and "elapsed" not in buffer.getvalue()


def test_resume_with_a_longer_schedule_switches_to_it(tmp_path):
    _trainer(_cfg(max_iter=4, lr_steps=(0.5,), ckpt_every=0), tmp_path).train()  # decays at 2
    longer = _trainer(_cfg(max_iter=10, lr_steps=(0.5,)), tmp_path)  # decays at 5
    lrs = []
    longer.add_callback("after_step", lambda t: lrs.append(t.last_log["lr"]))
    longer.train(resume_from=tmp_path / "checkpoints" / "last.pt")
    assert lrs[0] == pytest.approx(0.05) and lrs[1] == pytest.approx(0.005) and len(lrs) == 6


def test_sampler_starts_part_way_into_the_same_permutation():
    from losslab.engine.sampler import ResumableSampler

    full = ResumableSampler(range(10), num_replicas=1, rank=0, seed=3)
    full.set_epoch(2)
    order = list(full)
    part = ResumableSampler(range(10), num_replicas=1, rank=0, seed=3)
    part.set_epoch(2)
    part.start = 4
    assert list(part) == order[4:] and len(part) == 6
    assert sorted(order) == list(range(10)) and order != list(range(10))


def test_adamw_optimizer_is_chosen_by_name_and_unknown_names_are_refused():
    trainer = _trainer(_cfg(max_iter=2, optimizer="adamw", warmup_iters=0))
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    before = [p.detach().clone() for p in trainer.params]
    trainer.train()
    assert any(not torch.equal(a, p) for a, p in zip(before, trainer.params, strict=True))
    with pytest.raises(ValueError, match="optimizer must be 'sgd' or 'adamw'"):
        TrainConfig(optimizer="adam")


def test_skipped_steps_reach_the_hooks_and_every_hook_is_closed_on_failure():
    model = FakeInstanceModel(nan_ids=tuple(range(1, 13)))
    trainer = _trainer(_cfg(max_iter=10, max_bad_steps=1, max_skipped_fraction=1.0), model=model)
    skips, closed = [], []

    class Watch(HookBase):
        def after_skip(self, t):
            skips.append(dict(t.last_skip))

        def close(self):
            closed.append(True)

    trainer.register_hooks([Watch()])
    with pytest.raises(NonFiniteLossError):
        trainer.train()
    assert [s["iteration"] for s in skips] == [1, 2] and closed == [True]
    assert len(skips[0]["image_ids"]) == 4 and not math.isfinite(skips[0]["terms"]["loss_mask"])


def test_build_optimizer_follows_the_config():
    from losslab.engine.train import build_optimizer

    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = build_optimizer(params, _cfg(momentum=0.8, weight_decay=1e-3))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.8
    assert sgd.defaults["weight_decay"] == 1e-3 and sgd.defaults["lr"] == 0.05
    assert isinstance(build_optimizer(params, _cfg(optimizer="adamw")), torch.optim.AdamW)


def test_a_resumed_run_lists_each_skipped_step_once(tmp_path):
    """Steps skipped between the last checkpoint and a crash run again after the resume: the
    interrupted run's rows for them are dropped, so skipped_steps.csv equals an uninterrupted run's."""
    cfg = _cfg(max_iter=9, batch_size=2, ckpt_every=4, max_skipped_fraction=1.0, max_bad_steps=9)

    def skipped(run_dir: Path) -> list[int]:
        with open(run_dir / "skipped_steps.csv", newline="") as fh:
            return [int(r["iteration"]) for r in csv.DictReader(fh)]

    _trainer(cfg, tmp_path / "a", model=FakeInstanceModel(nan_ids=(3, 7))).train()
    want = skipped(tmp_path / "a")
    crash_at = 7
    assert any(4 < i <= crash_at for i in want), want  # a skip the crash makes the resumed run repeat

    _train_until_crash(_trainer(cfg, tmp_path / "b", model=FakeInstanceModel(nan_ids=(3, 7))), crash_at)
    assert skipped(tmp_path / "b") == [i for i in want if i <= crash_at]
    torch.manual_seed(0)
    resumed = Trainer(
        FakeInstanceModel(nan_ids=(3, 7)), FakeInstances(12), cfg, collate_fn=collate, run_dir=tmp_path / "b"
    )
    summary = resumed.train(resume_from=tmp_path / "b" / "checkpoints" / "last.pt")
    assert skipped(tmp_path / "b") == want and summary["skipped_steps"] == len(want)


def test_a_resumed_run_lists_each_evaluation_once(tmp_path):
    """Evaluations between the last checkpoint and a crash run again after the resume: the
    interrupted run's lines for them leave eval_history.jsonl first."""
    cfg = _cfg(max_iter=9, batch_size=2, ckpt_every=5)

    def evaluations(run_dir: Path) -> list[int]:
        text = (run_dir / "eval_history.jsonl").read_text(encoding="utf-8")
        return [json.loads(line)["iteration"] for line in text.splitlines()]

    def with_eval(trainer: Trainer) -> Trainer:
        history = trainer.run_dir / "eval_history.jsonl"
        trainer.register_hooks([EvalHook(3, lambda m: {"fake": {"AP": 1.0}}, history=history)])
        return trainer

    _train_until_crash(with_eval(_trainer(cfg, tmp_path / "b")), 7)
    assert evaluations(tmp_path / "b") == [3, 6]  # 6 is past the checkpoint at 5
    resumed = with_eval(
        Trainer(FakeInstanceModel(), FakeInstances(12), cfg, collate_fn=collate, run_dir=tmp_path / "b")
    )
    resumed.train(resume_from=tmp_path / "b" / "checkpoints" / "last.pt")
    assert evaluations(tmp_path / "b") == [3, 6]
