"""The torch-free snapshot of the registries: current, and the same check as the live one."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest

from losslab import catalogue
from losslab.catalogue import check_with_snapshot, precheck_losses, read_catalogue
from tests._torchless import run_without_torch

BAD_SPECS = [
    ("mask_loss", "bogus"),
    ("mask_loss", "0.5*mse + dicee"),
    ("mask_loss", "log_cosh(dice)"),
    ("mask_loss", "huber(delt=2)"),
    ("mask_loss", "uncropped(uncropped(mse))"),
    ("mask_loss", "bce + rampp(0, 1)*boundary"),
    ("mask_loss", "ciou"),
    ("box_loss", "dice"),
]


def test_the_shipped_snapshot_is_the_registries():
    # in a fresh process: this one may hold test plugins' losses and models, which the snapshot lacks
    proc = subprocess.run([sys.executable, "-m", "losslab.catalogue"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        f"{proc.stdout}{proc.stderr}: src/losslab/catalogue.json is stale, run `make catalogue`"
    )
    shipped = json.loads(catalogue.CATALOGUE.read_text(encoding="utf-8"))
    assert {"bce", "dice", "ohem_ce", "giou"} <= set(shipped["losses"]) and "yolact_tiny" in shipped["models"]
    assert shipped["source"] == catalogue.source_digest()


@pytest.mark.parametrize(("key", "spec"), BAD_SPECS)
def test_the_snapshot_refuses_what_the_model_config_refuses_with_the_same_message(key, spec):
    from losslab.models import model_config

    with pytest.raises(ValueError) as fast:
        check_with_snapshot("yolact_tiny", {key: spec})
    with warnings.catch_warnings(), pytest.raises(ValueError) as full:
        warnings.simplefilter("ignore")
        model_config("yolact_tiny", **{key: spec})
    full_message = str(full.value)
    from losslab.losses import list_losses

    shipped = json.loads(catalogue.CATALOGUE.read_text(encoding="utf-8"))["losses"]
    for name in set(list_losses()) - set(shipped):  # losses a test's plugin registered in this process
        full_message = full_message.replace(f"{name}, ", "").replace(f", {name}", "")
    assert str(fast.value) == full_message
    assert str(fast.value).startswith(f"{key}={spec!r}: ") and "at position" in str(fast.value)


def test_the_snapshot_passes_good_specs_and_leaves_unknown_models_and_keys_alone():
    check_with_snapshot("yolact_tiny", {"mask_loss": "bce + 0.5*uncropped(mse)", "box_loss": "giou", "lr": "x"})
    check_with_snapshot("unet_tiny", {"mask_loss": "ramp(1, 0.1)*bce + dice"})
    check_with_snapshot("depthmask_tiny", {"depth_loss": "berhu(c=0.3)", "mask_loss": "dice"})
    with pytest.raises(ValueError, match=r"depth_loss='bce': loss 'bce' does not take the 'regression' contract"):
        check_with_snapshot("depthmask_tiny", {"depth_loss": "bce"})
    check_with_snapshot("a_plugin_model", {"mask_loss": "bogus"})  # the full check decides
    check_with_snapshot("yolact_tiny", {"mask_loss": 3})  # a type the config's own check refuses


def test_a_stale_snapshot_is_not_used(monkeypatch):
    read_catalogue.cache_clear()
    monkeypatch.setattr(catalogue, "source_digest", lambda: "changed sources")
    try:
        assert read_catalogue() is None
        check_with_snapshot("yolact_tiny", {"mask_loss": "bogus"})  # no snapshot: the full check decides
    finally:
        monkeypatch.undo()
        read_catalogue.cache_clear()


CLI = """
sys.argv = ["losslab", *sys.argv[1:]]
from losslab.cli import main
main()
"""


@pytest.mark.parametrize(
    "args",
    [
        ["train", "mask_loss=bogus"],
        ["train", "model=unet_tiny", "mask_loss=0.5*mse + dicee"],
        ["train", "--config", "CONFIG"],
    ],
)
def test_train_refuses_a_bad_spec_before_torch_loads_and_writes_nothing(tmp_path, args):
    config = tmp_path / "run.yaml"
    config.write_text("model: yolact_tiny\nmask_loss: log_cosh(dice)\n")
    out = tmp_path / "out"
    argv = [str(config) if a == "CONFIG" else a for a in args]
    proc = run_without_torch(CLI, *argv, "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert "mask_loss=" in proc.stderr and "at position" in proc.stderr, proc.stderr
    assert "Did you mean" in proc.stderr or "Losses for 'mask'" in proc.stderr or "Pixel losses" in proc.stderr
    assert not out.exists()


def test_once_the_live_registry_is_loaded_it_alone_decides():
    from losslab.losses.registry import list_losses

    assert "bce" in list_losses()  # loaded: a script's own register_loss would be in it, not in the snapshot
    precheck_losses("yolact_tiny", {"mask_loss": "a_loss_this_process_registered"})
    code = "from losslab.catalogue import precheck_losses\n"
    code += "try:\n    precheck_losses('yolact_tiny', {'mask_loss': 'bogus'})\nexcept ValueError as e:\n    print(e)\n"
    proc = run_without_torch(code)  # a fresh process: the snapshot answers
    assert proc.returncode == 0 and "unknown loss 'bogus'" in proc.stdout, proc.stderr
