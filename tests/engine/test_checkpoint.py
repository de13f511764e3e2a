"""Checkpoints: atomic writes, plain data only, weights_only loading, random states."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from losslab.engine import checkpoint as ckpt


class Arbitrary:
    """Not plain data: unpickling it means importing and calling code."""

    def __init__(self):
        self.x = 1


def _state(value: float) -> dict:
    return {"model": {"w": torch.full((3,), value)}, "iteration": int(value), "config": {"lr": 0.1}}


def test_roundtrip_keeps_tensors_and_plain_data(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "c" / "last.pt", _state(2.0))
    state = ckpt.load_checkpoint(path)
    assert state["format"] == ckpt.CHECKPOINT_FORMAT
    assert torch.equal(state["model"]["w"], torch.full((3,), 2.0))
    assert state["iteration"] == 2 and state["config"] == {"lr": 0.1}
    assert not list((tmp_path / "c").glob(".*.tmp"))  # no temporary file left behind


def test_crash_between_write_and_rename_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(path, _state(1.0))

    def crash(src, dst):
        assert os.path.getsize(src) > 0  # the new file was fully written before the rename
        raise KeyboardInterrupt("killed between write and rename")

    monkeypatch.setattr(ckpt.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(path, _state(5.0))
    monkeypatch.undo()
    state = ckpt.load_checkpoint(path)
    assert state["iteration"] == 1 and torch.equal(state["model"]["w"], torch.ones(3))


def test_a_checkpoint_with_an_arbitrary_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": Arbitrary()}, path)  # written by someone else, with pickle
    with pytest.raises(ValueError, match=r"refused to load .*evil\.pt"):
        ckpt.load_checkpoint(path)


def test_saving_non_plain_data_is_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match=r"checkpoint\['extra'\]\['obj'\] is a .*Arbitrary"):
        ckpt.save_checkpoint(tmp_path / "x.pt", {"model": {}, "extra": {"obj": Arbitrary()}})
    assert not (tmp_path / "x.pt").exists()


def test_not_a_checkpoint_and_missing_file(tmp_path):
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not a losslab checkpoint"):
        ckpt.load_checkpoint(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError):
        ckpt.load_checkpoint(tmp_path / "missing.pt")


def test_rng_states_survive_a_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leaves a cached gaussian in NumPy's state
    state = ckpt.capture_rng_state()
    want = (random.random(), np.random.randn(), torch.rand(2))
    ckpt.save_checkpoint(tmp_path / "rng.pt", {"model": {}, "rng": state})
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    ckpt.restore_rng_state(ckpt.load_checkpoint(tmp_path / "rng.pt")["rng"])
    got = (random.random(), np.random.randn(), torch.rand(2))
    assert got[0] == want[0] and got[1] == want[1] and torch.equal(got[2], want[2])


def test_atomic_json(tmp_path):
    ckpt.atomic_write_json(tmp_path / "r.json", {"a": [1, 2]})
    assert (tmp_path / "r.json").read_text().startswith("{")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.98])
def test_a_damaged_file_is_named_with_its_size(tmp_path, keep):
    path = ckpt.save_checkpoint(tmp_path / "last.pt", _state(1.0))
    _truncate(path, keep)
    with pytest.raises(ckpt.CheckpointError, match=str(path).replace(".", r"\.")) as err:
        ckpt.load_checkpoint(path)
    assert "PytorchStreamReader" not in str(err.value).split("(")[0]
    assert ("empty" if keep == 0 else "truncated or corrupt") in str(err.value)


def test_the_previous_checkpoint_is_kept_and_used_when_the_last_is_damaged(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(path, _state(1.0))
    ckpt.save_checkpoint(path, _state(2.0))
    assert ckpt.load_checkpoint(ckpt.previous_of(path))["iteration"] == 1
    state, note = ckpt.load_resumable(path)
    assert state["iteration"] == 2 and "resuming from" in note
    _truncate(path)
    state, note = ckpt.load_resumable(path)
    assert state["iteration"] == 1
    assert "truncated or corrupt" in note and "previous checkpoint" in note and str(path) in note


def test_nothing_usable_means_starting_again_and_saying_so(tmp_path):
    path = tmp_path / "last.pt"
    assert ckpt.load_resumable(path) == (None, f"no checkpoint at {path}: starting from iteration 0")
    ckpt.save_checkpoint(path, _state(1.0))
    ckpt.save_checkpoint(path, _state(2.0))
    _truncate(path)
    _truncate(ckpt.previous_of(path), 0.0)
    state, note = ckpt.load_resumable(path)
    assert state is None and "starts again from iteration 0" in note and "empty" in note


def test_stale_temporaries_are_cleaned(tmp_path):
    (tmp_path / ".last.pt.tmp").write_bytes(b"x" * 100)
    (tmp_path / "last.pt").write_bytes(b"keep")
    assert [p.name for p in ckpt.clean_stale_temporaries(tmp_path)] == [".last.pt.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    assert ckpt.clean_stale_temporaries(tmp_path / "missing") == []
