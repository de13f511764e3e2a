"""Plugins: a user's file registering a loss is imported once per process with a hash of its source,
is used by `losslab train --plugin`, and is refused with its file and line when it does not import."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from typer.testing import CliRunner

from losslab import plugins
from losslab.cli import app
from losslab.losses import list_losses
from losslab.plugins import PluginError, load_plugins, plugin_entry
from tests._plugin_fixture import PLUGIN, write_plugin

runner = CliRunner()


def test_load_plugins_registers_and_records_the_source_hash(tmp_path):
    path = write_plugin(tmp_path, "plug_a")
    (entry,) = load_plugins([str(path)])
    assert "plug_a" in list_losses()
    assert entry.startswith(f"{path.resolve()}#") and entry == plugin_entry(str(path))
    assert load_plugins([entry]) == (entry,)  # an entry loads again while its source is the same
    path.write_text(path.read_text() + "\n# edited\n")
    with pytest.raises(PluginError, match="changed since this run was planned"):
        load_plugins([entry])
    with pytest.warns(UserWarning, match="changed since"):
        load_plugins([entry], strict=False)


@pytest.mark.parametrize(
    ("source", "line", "what"),
    [("x = 1\ndef broken(:\n", 2, "SyntaxError"), ("import os\nraise RuntimeError('no weights')\n", 2, "no weights")],
)
def test_a_broken_plugin_is_refused_with_file_and_line(tmp_path, source, line, what):
    path = tmp_path / "bad_plugin.py"
    path.write_text(source)
    with pytest.raises(PluginError, match=what) as info:
        load_plugins([str(path)])
    assert f"{path}:{line}" in str(info.value)
    with pytest.raises(PluginError, match="no such file"):
        load_plugins([str(tmp_path / "missing.py")])


@pytest.mark.parametrize(
    ("base", "defined", "missing"),
    [
        ("MaskLoss", "per_mask", "per_instance"),  # a misspelt method
        ("PixelLoss", "per_instance", "per_pixel"),  # the per-pixel values log_cosh(...) needs
        ("BoxLoss", "forward_box", "per_box"),
    ],
)
def test_a_loss_that_leaves_its_base_method_undefined_is_refused_on_import(tmp_path, base, defined, missing):
    module = "box" if base == "BoxLoss" else "_base"
    path = tmp_path / "undefined_plugin.py"
    path.write_text(
        textwrap.dedent(
            f"""\
            from losslab.losses.{module} import {base}
            from losslab.losses import register_loss


            @register_loss("undefined_{base.lower()}", kind="region", acts_on="probabilities", description="x")
            class Undefined({base}):
                def {defined}(self, x):
                    return x
            """
        )
    )
    with pytest.raises(PluginError, match=f"Undefined does not define {missing}") as info:
        load_plugins([str(path)])
    assert f"{path}:5" in str(info.value)
    assert f"undefined_{base.lower()}" not in list_losses()


def test_train_uses_a_plugin_loss_and_refuses_a_broken_plugin_before_training(fake_models, fake_data, tmp_path):
    path = write_plugin(tmp_path, "plug_train")
    out = tmp_path / "run"
    args = ["model=fake_instance", "batch_size=4", "max_iter=2", "device=cpu", "num_samples=0", "fps_images=1"]
    args += [f"data={fake_data['instance']}", "mask_loss=bce + plug_train", "--no-progress"]
    result = runner.invoke(app, ["train", *args, "--plugin", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    stored = yaml.safe_load((out / "config.yaml").read_text())
    assert stored["train"]["plugins"] == [plugin_entry(str(path))]
    bad = tmp_path / "bad_plugin.py"
    bad.write_text("raise ImportError('nope')\n")
    result = runner.invoke(app, ["train", *args, "--plugin", str(bad), "--out", str(tmp_path / "bad")])
    assert result.exit_code == 2 and f"{bad}:1" in result.output
    assert not (tmp_path / "bad").exists()


def test_a_finished_run_whose_plugin_moved_evaluates_with_the_plugin_given_again(
    fake_models, fake_data, tmp_path, monkeypatch
):
    """A run copied to another machine records its plugin's old path: `eval --plugin NEW` takes the
    file with the same source instead (with a warning); without it, the error says what to pass.
    Training (strict) never substitutes: a run trains with the plugin file it was planned with."""
    home = tmp_path / "home"
    home.mkdir()
    path = write_plugin(home, "plug_moved")
    out = tmp_path / "run"
    args = ["model=fake_instance", "batch_size=4", "max_iter=2", "device=cpu", "num_samples=0", "fps_images=1"]
    args += [f"data={fake_data['instance']}", "mask_loss=bce + plug_moved", "--no-progress"]
    assert runner.invoke(app, ["train", *args, "--plugin", str(path), "--out", str(out)]).exit_code == 0
    (entry,) = yaml.safe_load((out / "config.yaml").read_text())["train"]["plugins"]
    moved = tmp_path / "elsewhere" / path.name
    moved.parent.mkdir()
    path.rename(moved)
    monkeypatch.setattr(plugins, "_LOADED", {})  # a fresh process: nothing imported yet
    checkpoint = str(out / "checkpoints" / "last.pt")
    result = runner.invoke(app, ["eval", checkpoint])
    assert result.exit_code == 2 and f"{str(path)!r}: no such file" in result.output and "--plugin" in result.output
    with pytest.warns(UserWarning, match=f"using {moved}, which has its source"):
        result = runner.invoke(app, ["eval", checkpoint, "--plugin", str(moved)])
    assert result.exit_code == 0, result.output
    with pytest.raises(PluginError, match="put that file back at that path"):
        load_plugins([entry])


def test_plugin_as_an_importable_module(tmp_path, monkeypatch):
    (tmp_path / "plug_module_pkg").mkdir()
    (tmp_path / "plug_module_pkg" / "__init__.py").write_text(textwrap.dedent(PLUGIN.format(name="plug_mod", smooth=1)))
    monkeypatch.syspath_prepend(str(tmp_path))
    (entry,) = load_plugins(["plug_module_pkg"])
    assert "plug_mod" in list_losses() and entry.endswith(plugin_entry("plug_module_pkg").rpartition("#")[2])
