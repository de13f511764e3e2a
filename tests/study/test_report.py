"""The report of a stored fake study: its files, its tables (means, intervals, verdicts, bold best),
results.csv's columns."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from studyfake import fake_metrics, fake_run

from losslab.study.report import CSV_COLUMNS, format_cell, write_report
from losslab.study.runner import run_study
from losslab.study.spec import parse_study
from losslab.study.stats import NO_EVIDENCE, WORSE
from losslab.study.store import StudyStore
from losslab.study.tables import Cell, build_tables, collect, mark_best


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
    for plot in ("loss_curves", "ap_vs_iou", "pr_curves", "samples"):
        assert (stored_study / "plots" / f"{plot}.png").stat().st_size > 1000
    page = (stored_study / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 4 and "src='plots/" not in page
    md = (stored_study / "report.md").read_text()
    assert "## Mask AP (COCO segm)" in md and "## Box AP (COCO bbox)" in md and "## Boundary AP" in md
    assert "## Failed runs" in md and "fake failure of mse" in md
    assert "'BCE again' is the same configuration as 'BCE'" in md
    tex = (stored_study / "table.tex").read_text()
    assert "\\toprule" in tex and "\\textbf{" in tex


def test_results_csv_has_one_row_per_run(stored_study):
    write_report(stored_study)
    with (stored_study / "results.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == CSV_COLUMNS
    assert CSV_COLUMNS[:6] == ["run_id", "config", "loss", "seed", "batch_size", "fps"]
    assert CSV_COLUMNS[-5:] == ["AP95", "box_AP", "boundary_AP", "train_seconds", "status"]
    body = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert len(body) == 9  # 3 unique configurations x 3 seeds ("BCE again" shares the BCE runs)
    bce0 = next(r for r in body if r["config"] == "BCE" and r["seed"] == "0")
    assert float(bce0["AP"]) == pytest.approx(fake_metrics("bce", 0)["segm"]["AP"], abs=1e-3)
    assert float(bce0["box_AP"]) == pytest.approx(fake_metrics("bce", 0)["bbox"]["AP"], abs=1e-3)
    assert bce0["batch_size"] == "2" and bce0["loss"] == "bce" and bce0["status"] == "done"
    broken = [r for r in body if r["config"] == "Broken"]
    assert {r["status"] for r in broken} == {"failed"} and broken[0]["AP"] == ""


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
    assert format_cell(Cell(80.0, float("nan"), 1, NO_EVIDENCE, False)) == "80.00"
    assert format_cell(None) == "–"


def test_report_without_a_study_fails_clearly(tmp_path):
    with pytest.raises(ValueError, match="study run"):
        write_report(tmp_path)


def test_mark_best_bolds_the_best_and_leaves_ties_plain():
    rows = [[Cell(13.1), Cell(0.0), Cell(2.0)], [Cell(9.0), Cell(0.0), Cell(1.0)], [None, Cell(0.0), Cell(1.0)]]
    mark_best(rows, ["AP", "AP95", "RMSE"])
    assert [r[0].bold for r in rows[:2]] == [True, False]
    assert not any(r[1].bold for r in rows)  # every configuration at 0.00: no best
    assert [r[2].bold for r in rows] == [False, True, True]  # lower is better, a tie for best
