"""A study's plugins: named in its YAML (relative to it) or with `study run --plugin`, imported in every
worker, part of every run id through the hash of their source."""

from __future__ import annotations

import yaml
from studyfake import fake_run
from typer.testing import CliRunner

from losslab.cli import app
from losslab.plugins import plugin_entry
from losslab.study.runner import run_study
from losslab.study.spec import load_study
from tests._plugin_fixture import write_plugin

runner = CliRunner()


def _study_yaml(tmp_path, plugin_name):
    spec = {
        "name": "plugin-study",
        "dataset": {"synthetic": {"train": 4, "val": 2, "size": 64, "seed": 0}},
        "model": "fake_instance",
        "config": {"max_iter": 2, "batch_size": 2},
        "grid": {"mask_loss": {"BCE": "bce", "Mine": f"bce + {plugin_name}"}},
        "seeds": 1,
        "plugins": [f"{plugin_name}_plugin.py"],  # relative to the YAML's folder
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_study_plugins_change_the_run_ids_when_their_source_changes(tmp_path):
    write_plugin(tmp_path, "plug_ids")
    path = _study_yaml(tmp_path, "plug_ids")
    first = load_study(path)
    ids = {r.run_id for r in first.runs()}
    assert all(r.config["plugins"] == [plugin_entry(str(tmp_path / "plug_ids_plugin.py"))] for r in first.runs())
    assert {r.run_id for r in load_study(path).runs()} == ids  # stable while the source is
    write_plugin(tmp_path, "plug_ids", smooth=2)
    assert not ids & {r.run_id for r in load_study(path).runs()}


def check_plugin_loss_in_worker(config, run_dir, progress=True):
    """A run function that fails unless the plugin's loss is registered in the process running it."""
    from losslab.losses import list_losses as names

    wanted = config["mask_loss"].split("+")[-1].strip()
    if wanted not in names():
        raise RuntimeError(f"{wanted} is not registered in worker process")
    return fake_run(config, run_dir, progress)


def test_study_plugins_are_imported_in_every_worker(tmp_path):
    write_plugin(tmp_path, "plug_workers")
    study = load_study(_study_yaml(tmp_path, "plug_workers"))
    summary = run_study(study, tmp_path / "out", run_fn=check_plugin_loss_in_worker, workers=2, progress=False)
    assert summary["failed"] == 0 and summary["done"] == 2


def test_study_run_takes_plugin_on_the_command_line(tmp_path):
    path = write_plugin(tmp_path, "plug_cli")
    spec = yaml.safe_load(_study_yaml(tmp_path, "plug_cli").read_text())
    del spec["plugins"]
    spec["model"] = "yolact_tiny"  # --dry-run resolves every run config against a real preset
    (tmp_path / "noplug.yaml").write_text(yaml.safe_dump(spec))
    result = runner.invoke(app, ["study", "run", str(tmp_path / "noplug.yaml"), "--plugin", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.output) if d]
    assert all(d["config"]["train"]["plugins"] == [plugin_entry(str(path))] for d in docs)
