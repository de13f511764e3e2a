"""The survey's studies: `audit` has every row of its README and Tables II-III as run and as meant, and
the `paper-*` studies train as its code did (checked through `losslab study run NAME --dry-run`)."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from losslab.cli import app
from losslab.losses import create_loss
from losslab.report.published import load_published
from losslab.study.builtin import survey_batch
from losslab.study.dry_run import dry_run
from losslab.study.spec import load_study


def test_audit_has_every_published_row_as_run_and_as_meant():
    audit = load_study("audit")
    specs = set(audit.grid["mask_loss"].values())
    data = load_published("yolact_loss_survey")
    for table in ("README", "Table II", "Table III"):
        for row in data["tables"][table]["rows"]:
            assert row["as_run"] in specs, (table, row["row"])
    labels = audit.labels()
    for name, alpha in [("MSE + BCE", a) for a in (0.5, 1, 2, 3)] + [("HL + BCE", a) for a in (0.5, 1, 2, 3)]:
        assert f"{name} α={alpha:g} (as run)" in labels and f"{name} α={alpha:g} (in crop)" in labels
    for label in ("Dice (meant)", "LCDL (meant: log_cosh_dice)", "MSE (meant)", "Huber δ=1/2/3 (as run: 0.5·MSE)"):
        assert label in labels
    assert audit.tune is not None and audit.published == "yolact_loss_survey"


def test_every_audit_spec_builds():
    for spec in set(load_study("audit").grid["mask_loss"].values()):
        assert create_loss(spec).spec == spec  # canonical: each row names its loss once


def test_survey_batch_follows_train_py_autoscale_and_batch_norm_rule():
    assert survey_batch(2) == {"batch_size": 2, "max_iter": 16000, "freeze_bn": True}
    assert survey_batch(8) == {"batch_size": 8, "max_iter": 4000, "freeze_bn": True}  # 4 per GPU on 2 GPUs
    assert survey_batch(16) == {"batch_size": 16, "max_iter": 2000, "freeze_bn": False}
    assert survey_batch(8, gpus=1)["freeze_bn"] is False


def test_paper_batch_dry_run_prints_the_survey_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["study", "run", "paper-batch", "--dry-run"])
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.output) if d]
    assert [d["label"] for d in docs] == ["batch 2", "batch 8", "batch 16"]
    got = {
        d["label"]: (
            d["config"]["train"]["max_iter"],
            d["config"]["train"]["batch_size"],
            d["config"]["model"]["freeze_bn"],
        )
        for d in docs
    }
    assert got == {"batch 2": (16000, 2, True), "batch 8": (4000, 8, True), "batch 16": (2000, 16, False)}
    for d in docs:
        train, model = d["config"]["train"], d["config"]["model"]
        assert (train["optimizer"], train["lr"], train["momentum"], train["weight_decay"]) == ("sgd", 1e-4, 0.9, 5e-4)
        assert train["lr_steps"] == [] and train["warmup_iters"] == 0  # a constant rate, as train.py ran it
        assert train["eval_score_threshold"] == 0.15 and train["augment"] == "ssd" and train["amp"] is False
        assert model["backbone"] == "resnet101" and model["pretrained_backbone"] is True
        assert model["input_size"] == 512 and model["dcn_stages"] == [2, 3, 4] and model["use_maskiou"] is True
        assert d["seeds"] == [0, 1, 2] and len(d["run_ids"]) == 3
    assert list(tmp_path.iterdir()) == []  # nothing written
    # The reading of the paper's rate is said, with the other reading and how to run it.
    notes = [line for line in result.output.splitlines() if line.startswith("# note:")]
    assert any("--lr 1e-4" in n and "2.5e-4 / 1e-3 / 2e-3" in n for n in notes), notes


def test_dry_run_of_a_tuned_study_shows_the_tuning_grid():
    entries = dry_run(load_study("quick"))
    tune = [e for e in entries if e["stage"] == "tune"]
    verdict = [e for e in entries if e["stage"] == "verdict"]
    assert len(tune) == 9 * 3 and len(verdict) == 9
    assert verdict[0]["config"]["train"]["lr"].startswith("tuned: one of")
    assert verdict[0]["run_ids"][0] == "(after tuning)"
    assert {e["config"]["train"]["lr"] for e in tune} == {3e-4, 1e-3, 3e-3}


def test_run_without_out_or_dry_run_is_refused():
    result = CliRunner().invoke(app, ["study", "run", "paper-batch"])
    assert result.exit_code != 0 and "--out" in result.output


def test_paper_studies_read_against_the_survey_and_train_its_recipe():
    for name in ("readme", "paper-single", "paper-hybrid"):
        study = load_study(name)
        assert study.published == "yolact_loss_survey"
        assert study.config["lr"] == 1e-4 and study.config["pretrained_backbone"] is True
    assert load_study("readme").config["max_iter"] == 4000  # batch 8
    assert load_study("paper-single").config["max_iter"] == 2000  # batch 16, as the paper says
