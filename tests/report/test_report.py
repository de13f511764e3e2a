"""The report of a stored fake study: its files, its tables (means, intervals, verdicts, bold best),
results.csv's columns, the summary on top, the reproduce block, the single-seed fallback."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np
import pytest
from studyfake import fake_metrics, fake_run

from losslab.report.reproduce import command
from losslab.report.stats import UNDECIDED, WORSE
from losslab.report.tables import Cell, build_tables, collect, mark_best
from losslab.report.write import CSV_COLUMNS, format_cell, write_report
from losslab.study.runner import run_study
from losslab.study.spec import load_study, parse_study
from losslab.study.store import StudyStore


@pytest.fixture
def stored_study(tmp_path, tiny_spec):
    tiny_spec["seeds"] = 3
    tiny_spec["grid"] = {
        "variants": {
            "BCE": {"mask_loss": "bce"},
            "Dice": {"mask_loss": "dice"},
            "BCE again": {"mask_loss": "bce"},
            "Broken": {"mask_loss": "mse", "fake_fail": 1},
        }
    }
    out = tmp_path / "study"
    run_study(parse_study(tiny_spec), out, run_fn=fake_run, progress=False)
    return out


def test_report_files_are_written(stored_study):
    files = write_report(stored_study)
    for name in ("report.md", "report.html", "table.tex", "results.csv"):
        assert (stored_study / name).is_file() and files[name] == stored_study / name
    for plot in ("loss_curves.png", "ap_vs_iou.png", "pr_curves.png", "samples.jpg"):
        assert (stored_study / "plots" / plot).stat().st_size > 1000
    assert (stored_study / "plots" / "samples.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG
    page = (stored_study / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 and page.count("data:image/jpeg;base64,") == 1
    assert "src='plots/" not in page and "<meta name='viewport' content='width=device-width" in page
    assert page.count("<div class='scroll'><table") >= 4 and page.count("<figcaption>") >= 4
    md = (stored_study / "report.md").read_text()
    assert "## Mask AP (COCO segm)" in md and "## Box AP (COCO bbox)" in md and "## Boundary AP" in md
    assert md.index("## Summary") < md.index("## Mask AP") < md.index("## Runs") < md.index("## Reproduce")
    assert "## Failed runs" in md and "fake failure of mse" in md
    assert "'BCE again' is the same configuration as 'BCE'" in md
    tex = (stored_study / "table.tex").read_text()
    assert "\\toprule" in tex and "\\textbf{" in tex


def test_results_csv_has_one_row_per_run(stored_study):
    write_report(stored_study)
    with (stored_study / "results.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == CSV_COLUMNS
    assert CSV_COLUMNS[:8] == ["run_id", "config", "loss", "seed", "stage", "lr", "batch_size", "fps"]
    assert CSV_COLUMNS[18:23] == ["AP95", "box_AP", "boundary_AP", "train_seconds", "status"]  # DESIGN.md's
    assert CSV_COLUMNS[23:] == ["iterations", "skipped_steps", "loss_slope", "loss_slope_low", "loss_slope_high",
                                "loss_fall", "converged", "flags", "wall_seconds", "precision", "mask_fill",
                                "gt_fill"]  # fmt: skip
    body = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert len(body) == 9  # 3 unique configurations x 3 seeds ("BCE again" shares the BCE runs)
    bce0 = next(r for r in body if r["config"] == "BCE" and r["seed"] == "0")
    assert float(bce0["AP"]) == pytest.approx(fake_metrics("bce", 0)["segm"]["AP"], abs=1e-3)
    assert float(bce0["box_AP"]) == pytest.approx(fake_metrics("bce", 0)["bbox"]["AP"], abs=1e-3)
    assert bce0["batch_size"] == "2" and bce0["loss"] == "bce" and bce0["status"] == "done"
    assert bce0["stage"] == "verdict" and bce0["lr"] == "0.001"  # an untuned study: the trainer's default lr
    assert bce0["iterations"] == "3" and bce0["skipped_steps"] == "0" and bce0["converged"] == ""  # 3 points: undecided
    assert float(bce0["wall_seconds"]) >= 0 and bce0["precision"] == "fp32"
    broken = [r for r in body if r["config"] == "Broken"]
    assert {r["status"] for r in broken} == {"failed"} and broken[0]["AP"] == "" and broken[0]["precision"] == ""


def test_tables_hold_means_intervals_verdicts_and_bold_best(stored_study):
    with StudyStore(stored_study / "study.db") as store:
        tables = {t.key: t for t in build_tables(collect(store))}
    mask = tables["segm"]
    assert mask.columns == ["FPS", "all", *[f"AP{50 + 5 * i}" for i in range(10)]]
    rows = dict(mask.rows)
    ap = [fake_metrics("bce", s)["segm"]["AP"] for s in range(3)]
    all_col = mask.columns.index("all")
    bce = rows["BCE"][all_col]
    assert bce.mean == pytest.approx(np.mean(ap)) and bce.n == 3 and bce.half > 0 and bce.bold
    assert bce.verdict is None and mask.comparisons["BCE"] is None
    dice = rows["Dice"][all_col]
    assert dice.verdict == WORSE and not dice.bold and mask.comparisons["Dice"].verdict == WORSE
    again = rows["BCE again"][all_col]
    assert again.mean == bce.mean and again.verdict is None  # an alias is the baseline itself
    assert rows["Broken"][all_col] is None
    assert "bbox" in tables and "boundary" in tables and "dense" not in tables


def test_format_cell():
    assert format_cell(Cell(83.654, 1.2, 3, WORSE, True)) == "**83.65** ±1.20 ▼"
    assert format_cell(Cell(80.0, float("nan"), 1, UNDECIDED, False)) == "80.00"
    assert format_cell(None) == "–"


def test_report_without_a_study_fails_clearly(tmp_path):
    with pytest.raises(ValueError, match="study run"):
        write_report(tmp_path)


def _section(md: str, title: str) -> str:
    """The text of the report's ``## title`` section, up to the next section."""
    return md.split(f"## {title}")[1].split("\n## ")[0]


def test_mark_best_bolds_the_best_and_leaves_ties_plain():
    rows = [[Cell(13.1), Cell(0.0), Cell(2.0)], [Cell(9.0), Cell(0.0), Cell(1.0)], [None, Cell(0.0), Cell(1.0)]]
    mark_best(rows, ["AP", "AP95", "RMSE"])
    assert [r[0].bold for r in rows[:2]] == [True, False]
    assert not any(r[1].bold for r in rows)  # every configuration at 0.00: no best
    assert [r[2].bold for r in rows] == [False, True, True]  # lower is better, a tie for best


def test_summary_says_the_verdict_the_budget_and_the_test(stored_study):
    write_report(stored_study)
    md = (stored_study / "report.md").read_text()
    summary = _section(md, "Summary")
    assert "No configuration beat BCE on mask AP; worse: Dice" in summary
    assert "paired t-test over 3 seeds (not pooled: " in summary and "Holm-corrected across 1 comparison" in summary
    assert "Budget: yolact_tiny · data " in summary and "3 iterations at batch 2 · 3 seeds · 9 runs" in summary
    assert "Not all runs are done: 3 failed." in summary
    assert "- Dice: mask AP " in summary and "worse than BCE (Δ -" in summary and "Holm p" in summary
    assert "- BCE again: the same runs as BCE." in summary
    mask = _section(md, "Mask AP (COCO segm)")
    assert "AP@[.50:.95]" in mask and "mean over 3 seeds ± the half-width of its 95 % t-interval" in mask
    assert "| vs BCE |" in mask and "worse: " in mask


def test_reproduce_block_and_runs_table(stored_study):
    write_report(stored_study)
    md = (stored_study / "report.md").read_text()
    reproduce = _section(md, "Reproduce")
    assert f"| command | losslab study run {stored_study / 'study.yaml'} --out {stored_study} |" in reproduce
    assert (stored_study / "study.yaml").is_file()
    assert "| losslab commit | " in reproduce and "| versions | losslab " in reproduce and "torch " in reproduce
    assert (
        "| machine | " in reproduce and "| FPS | batch 1 at " in reproduce and "| dates | study created " in reproduce
    )
    assert "| max_iter | 3 |" in reproduce and "| batch_size | 2 |" in reproduce  # the config as a table
    assert "| Dice | mask_loss=dice |" in reproduce
    runs = _section(md, "Runs")
    with StudyStore(stored_study / "study.db") as store:
        first = store.runs()[0]
    assert (
        f"[{first['run_id']}](runs/{first['run_id']}/)" in runs
        and runs.count("| done |") == 6
        and runs.count("| failed |") == 3
    )


def test_command_names_a_builtin_study_when_the_spec_is_one(tmp_path):
    quick = SimpleNamespace(spec=load_study("quick"))
    assert command(quick, tmp_path) == f"losslab study run quick --out {tmp_path}"
    five = SimpleNamespace(spec=load_study("quick", seeds=5))
    assert command(five, tmp_path) == f"losslab study run quick --out {tmp_path} --seeds 5"
    changed = load_study("quick")
    changed.config["max_iter"] = 7
    assert (
        command(SimpleNamespace(spec=changed), tmp_path)
        == f"losslab study run {tmp_path / 'study.yaml'} --out {tmp_path}"
    )


def test_one_seed_falls_back_to_a_labelled_bootstrap_and_drops_empty_columns(tmp_path, tiny_spec):
    tiny_spec["seeds"] = 1
    out = tmp_path / "one"
    run_study(parse_study(tiny_spec), out, run_fn=fake_run, progress=False)
    write_report(out)
    md = (out / "report.md").read_text()
    mask = _section(md, "Mask AP (COCO segm)")
    assert "1 seed: the interval covers image sampling, not training noise" in mask
    assert "over the 6 validation images that hold an object" in mask and "not the difference of the 'all'" in mask
    assert "| vs BCE |" in mask and "One seed: the numbers have no interval." in mask
    box = _section(md, "Box AP (COCO bbox)")
    assert "vs BCE" not in box.splitlines()[2]  # no empty comparison column
    assert "No 'vs' column" in box
    summary = _section(md, "Summary")
    assert "1 seed: bootstrap over 6 images" in summary and "1 seed: intervals cover image sampling" in summary
    assert "| flags |" in mask and "1 seed" in mask


def test_mark_best_compares_what_the_table_shows():
    rows = [[Cell(0.004)], [Cell(0.0)], [Cell(12.344)], [Cell(12.341)], [Cell(10.0)]]
    mark_best(rows[:2], ["AP"])
    assert not rows[0][0].bold and not rows[1][0].bold  # 0.00 and 0.00: no best
    mark_best(rows[2:], ["AP"])
    assert rows[2][0].bold and rows[3][0].bold and not rows[4][0].bold  # both show 12.34


def test_report_reads_a_study_against_published_numbers_and_states_its_score_threshold(tmp_path, tiny_spec):
    tiny_spec["published"] = "yolact_loss_survey"
    tiny_spec["config"] = {**tiny_spec.get("config", {}), "eval_score_threshold": 0.15}
    out = tmp_path / "study"
    run_study(parse_study(tiny_spec), out, run_fn=fake_run, progress=False)
    write_report(out)
    md = (out / "report.md").read_text()
    assert "## What the published numbers say" in md
    assert "| `bce + 0.5*uncropped(mse)` | 8 |" in md and "+0.78" in md
    assert "detections scoring below 0.15 are left out" in md


def test_report_says_every_detection_is_evaluated_by_default(stored_study):
    write_report(stored_study)
    md = (stored_study / "report.md").read_text()
    assert "every detection the model returns enters the COCO evaluation" in md
    assert "What the published numbers say" not in md


def test_unknown_published_table_is_refused(tiny_spec):
    tiny_spec["published"] = "yolact_survey"
    with pytest.raises(ValueError, match="published 'yolact_survey' is no shipped result table"):
        parse_study(tiny_spec)
