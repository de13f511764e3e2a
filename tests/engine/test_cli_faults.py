"""`losslab train / eval / predict` on bad values, diverging runs, damaged checkpoints, unreadable
YAML and splits without annotations: one message naming the file, key or value, never a traceback."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from losslab.cli import app
from losslab.models import register_model, unregister_model
from tests.engine._engine_fakes import FakeConfig, FakeInstanceModel

runner = CliRunner()
TRAIN = ["batch_size=4", "max_iter=3", "device=cpu", "num_samples=1", "fps_images=2", "--no-progress"]


def _clean(res) -> str:
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.output


@pytest.fixture
def trained(fake_models, fake_data, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(
        app, ["train", "model=fake_instance", f"data={fake_data['instance']}", *TRAIN, "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    return out / "checkpoints" / "last.pt"


@pytest.mark.parametrize("setting", ["lr=nan", "lr=inf", "momentum=nan", "grad_clip=inf", "lr=1e400"])
def test_train_refuses_a_non_finite_value_naming_the_key(fake_models, tmp_path, setting):
    res = runner.invoke(app, ["train", "model=fake_dense", setting, *TRAIN, "--out", str(tmp_path / "x")])
    key = setting.split("=")[0]
    assert res.exit_code == 2 and f"{key} must be a finite number" in _clean(res)
    assert not (tmp_path / "x").exists()


def test_a_diverging_run_ends_with_a_message_and_exit_1(fake_data, tmp_path):
    build = lambda c: FakeInstanceModel(c, nan_ids=tuple(range(100)))  # noqa: E731
    register_model("fake_nan", FakeConfig(), build, family="fake", task="instance", description="diverges")
    try:
        res = runner.invoke(app, ["train", "model=fake_nan", f"data={fake_data['instance']}", *TRAIN, "max_iter=20",
                                  "--out", str(tmp_path / "x")])  # fmt: skip
    finally:
        unregister_model("fake_nan")
    assert res.exit_code == 1 and "failed" in _clean(res) and "max_skipped_fraction" in res.output
    assert not (tmp_path / "x" / "result.json").exists()


@pytest.mark.parametrize("content", [b"max_iter: 3\nname: caf\xe9\n", b"max_iter: [3\n"])
def test_train_config_that_is_not_utf8_or_not_yaml_is_named(tmp_path, content):
    cfg = tmp_path / "bad.yaml"
    cfg.write_bytes(content)
    res = runner.invoke(app, ["train", "--config", str(cfg), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and str(cfg) in _clean(res).replace("\n", "")
    assert ("not UTF-8" if b"\xe9" in content else "not valid YAML") in res.output


@pytest.mark.parametrize("keep", [0, 1000])
@pytest.mark.parametrize("command", ["eval", "predict"])
def test_eval_and_predict_on_a_damaged_checkpoint_name_the_file(trained, tmp_path, keep, command):
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(trained.read_bytes()[:keep])
    extra = [str(tmp_path / "img.png"), "--out", str(tmp_path / "p")] if command == "predict" else []
    res = runner.invoke(app, [command, str(damaged), *extra])
    text = _clean(res).replace("\n", "")
    assert res.exit_code == 2 and str(damaged) in text and "Aborted" not in text
    assert ("empty (0 bytes)" if keep == 0 else "1,000 bytes) is truncated or corrupt") in text
    assert "internal miniz error" not in text  # torch's paragraph of advice is cut to its first sentence


def test_eval_shows_undefined_metrics_as_undefined(trained, fake_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(fake_data["instance"], data)
    ann = data / "annotations" / "instances_val.json"
    ann.write_text(json.dumps({**json.loads(ann.read_text()), "annotations": []}))
    out = tmp_path / "e.json"
    res = runner.invoke(app, ["eval", str(trained), "--data", str(data), "--out", str(out)])
    text = _clean(res)
    assert res.exit_code == 0 and "—" in text and "undefined" in text
    assert "-1.00" not in text and "0.00" not in text
    assert json.loads(out.read_text())["segm"]["AP"] != json.loads(out.read_text())["segm"]["AP"]  # NaN


def test_eval_has_the_skip_bad_option_the_data_error_names(trained, fake_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(fake_data["instance"], data)
    ann = data / "annotations" / "instances_val.json"
    content = json.loads(ann.read_text())
    content["annotations"].append({**content["annotations"][0], "id": 999, "image_id": 12345})
    ann.write_text(json.dumps(content))
    res = runner.invoke(app, ["eval", str(trained), "--data", str(data), "--out", str(tmp_path / "e.json")])
    assert res.exit_code == 2 and "unknown image id 12345" in _clean(res) and "--skip-bad" in res.output
    res = runner.invoke(
        app, ["eval", str(trained), "--data", str(data), "--skip-bad", "--out", str(tmp_path / "e.json")]
    )
    assert res.exit_code == 0, res.output
