"""The label-noise studies and the report's noise section: the built-in grids, the per-seed ratios and
the per-level Holm verdicts on hand-computable numbers, and a cut-down `noise` run end to end."""

from __future__ import annotations

import copy
import math

import pytest
import yaml
from PIL import Image
from rich.console import Console
from studyfake import TINY_REAL_CONFIG
from typer.testing import CliRunner

from losslab.cli import app
from losslab.data.noise_spec import parse_label_noise
from losslab.report.noise_report import (
    level_tables,
    noise_findings,
    noise_grid,
    ratio_of,
    relative_drop,
    seed_ratios,
)
from losslab.report.stats import BETTER
from losslab.report.summary import main_table
from losslab.report.tables import ConfigResults, StudyResults, build_tables
from losslab.report.write import print_tables, write_report
from losslab.study.builtin import BUILTIN_STUDIES
from losslab.study.runner import run_study
from losslab.study.spec import load_study, parse_study, validate_keys
from losslab.study.store import StudyStore

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---- the built-in studies


def test_noise_is_a_grid_over_label_noise_and_mask_loss():
    shown = CliRunner().invoke(app, ["study", "show", "noise"])
    assert shown.exit_code == 0, shown.output
    spec = yaml.safe_load(shown.output)
    levels, losses = spec["grid"]["label_noise"], spec["grid"]["mask_loss"]
    clean = [label for label, value in levels.items() if not parse_label_noise(value)]
    assert clean == ["clean"] and len(levels) - len(clean) >= 4
    assert len(losses) >= 6 and losses["BCE"] == "bce" and spec["baseline"] == "BCE"
    study = load_study("noise")
    assert len(study.seeds) == 2 and study.run_count() == len(levels) * len(losses) * (2 + 3)  # 3 tuning runs
    from losslab.study.builtin import AUDIT_RUNS, AUDIT_WALL_SECONDS

    per_run = AUDIT_WALL_SECONDS / 60 / AUDIT_RUNS  # the estimate is audit's measured minutes per run
    assert "noise-full" in study.description and f"about {150 * per_run:.0f} min for its 150 runs" in study.description
    assert "an estimate" in study.description and f"audit's {AUDIT_RUNS} runs" in study.description
    full = load_study("noise-full")
    assert f"about {180 * per_run:.0f} min for its 180 runs" in full.description
    # Each loss is compared with BCE at its own noise level.
    for _, axes, _ in study.configurations():
        base = study.baseline_of(axes)
        assert base == f"{axes['label_noise']} / BCE", (axes, base)


def test_noise_full_and_maskrcnn_noise_load():
    full = load_study("noise-full")
    assert len(full.seeds) == 3 and full.grid == load_study("noise").grid
    mrcnn = load_study("maskrcnn-noise")
    validate_keys(mrcnn)
    assert mrcnn.model == "maskrcnn_tiny" and len(mrcnn.seeds) == 2
    assert list(mrcnn.grid["label_noise"].values()) == ["none", "boundary(px=2)", "boundary(px=4)"]


# ---- ratios and per-level verdicts on hand-computable numbers


def test_seed_ratios_pair_by_seed_and_skip_a_zero_clean_ap():
    assert seed_ratios({0: 40.0, 1: 45.0, 2: 5.0}, {0: 50.0, 1: 50.0, 2: 0.0, 3: 9.0}) == {0: 0.8, 1: 0.9}
    iv = relative_drop({0: 40.0, 1: 45.0}, {0: 50.0, 1: 50.0})
    # Two ratios 0.8 and 0.9: sd 0.0707, sem 0.05, t(0.975, 1) = 12.706.
    assert iv.n == 2 and iv.mean == pytest.approx(0.85)
    assert iv.high - iv.mean == pytest.approx(12.706 * 0.05, rel=1e-3)
    one = relative_drop({0: 30.0}, {0: 60.0})
    assert one.mean == pytest.approx(0.5) and math.isnan(one.low) and math.isnan(one.high)
    # A collapsed clean AP (at most the floor) gives no ratio: 0.02 / 0.01 is not "kept 200 %".
    assert seed_ratios({0: 0.02, 1: 40.0}, {0: 0.01, 1: 50.0}, floor=1.0) == {1: 0.8}
    assert relative_drop({0: 0.02, 1: 0.03}, {0: 0.01, 1: 0.01}, floor=1.0).n == 0


# seed -> mask AP. Clean: X and Z are BCE + (1, 2, 1.5). Noisy: X is BCE + 5 on every seed, Z is
# BCE + (1, 2, 1.5).
_AP = {
    ("clean", "BCE"): [20.0, 20.0, 20.0],
    ("clean", "X"): [21.0, 22.0, 21.5],
    ("clean", "Z"): [21.0, 22.0, 21.5],
    ("noisy", "BCE"): [10.0, 10.0, 10.0],
    ("noisy", "X"): [15.0, 15.0, 15.0],
    ("noisy", "Z"): [11.0, 12.0, 11.5],
}


def _synthetic_results(ap: dict[tuple[str, str], list[float]] | None = None) -> StudyResults:
    spec = parse_study(
        {
            "name": "synthetic-noise",
            "dataset": {"path": "nowhere"},
            "model": "yolact_tiny",
            "grid": {
                "label_noise": {"clean": "none", "noisy": "boundary(px=2)"},
                "mask_loss": {"BCE": "bce", "X": "dice", "Z": "focal"},
            },
            "seeds": 3,
            "baseline": "BCE",
        }
    )
    configs = []
    for label, axes, overrides in spec.configurations():
        cfg = ConfigResults(label, axes, overrides, {s: f"{label}-{s}" for s in spec.seeds})
        values = {**_AP, **(ap or {})}[(axes["label_noise"], axes["mask_loss"])]
        cfg.metrics = {s: {"segm.AP": v} for s, v in zip(spec.seeds, values, strict=True)}
        base = spec.baseline_of(axes)
        cfg.baseline = base if base != label else None
        configs.append(cfg)
    return StudyResults(spec, configs, runs=[], store=None)  # type: ignore[arg-type]


def test_relative_ap_per_loss_and_level():
    results = _synthetic_results()
    grid = noise_grid(results, build_tables(results))
    assert grid is not None and grid.clean == "clean" and grid.noisy == ["noisy"]
    assert grid.losses == ["BCE", "X", "Z"] and grid.baseline == "BCE" and grid.metric == "segm.AP"
    bce = ratio_of(grid, "BCE", "noisy")
    assert bce.mean == pytest.approx(0.5) and bce.low == pytest.approx(0.5) and bce.n == 3
    x = ratio_of(grid, "X", "noisy")
    assert x.mean == pytest.approx((15 / 21 + 15 / 22 + 15 / 21.5) / 3) and x.low < x.mean < x.high


def test_verdicts_are_holm_corrected_per_level_not_across_the_grid():
    from statsmodels.stats.multitest import multipletests

    results = _synthetic_results()
    grid = noise_grid(results, build_tables(results))
    per_level = level_tables(results, grid)
    clean, noisy = per_level["clean"].comparisons, per_level["noisy"].comparisons
    assert clean["BCE"] is None and noisy["BCE"] is None
    # One family per level: each level's raw p-values, Holm-corrected as statsmodels does, two at a time.
    for level in (clean, noisy):
        raw = [level[loss].p_value for loss in ("X", "Z")]
        adjusted = multipletests(raw, method="holm")[1]
        assert [level[loss].p_adjusted for loss in ("X", "Z")] == pytest.approx(list(adjusted), rel=1e-9)
    assert noisy["X"].verdict == BETTER  # +5 on every seed
    # The ordinary table corrects across all four comparisons at once.
    whole = main_table(build_tables(results)).comparisons
    raw = [whole[label].p_value for label in ("clean / X", "clean / Z", "noisy / X", "noisy / Z")]
    adjusted = multipletests(raw, method="holm")[1]
    assert whole["noisy / Z"].p_adjusted == pytest.approx(adjusted[3], rel=1e-9)
    text = " ".join(noise_findings(grid, per_level))
    assert "Lost least under label noise: X" in text and "lost most: BCE (0.50 [0.50, 0.50])" in text
    assert "Better than BCE at the same noise level: " in text and "X at noisy" in text and "Z at noisy" in text
    assert "t-test over" in text and "validation masks are clean" in text


def test_a_collapsed_loss_is_not_ranked_and_overlapping_intervals_are_no_finding():
    # Z collapsed (clean mask AP near 0): its noisy / clean ratios of about 2 would have "lost least".
    # X's noisy AP spreads over (10, 14, 10): its ratio interval overlaps BCE's 0.5.
    collapsed = {
        ("clean", "Z"): [0.01, 0.02, 0.01],
        ("noisy", "Z"): [0.02, 0.03, 0.02],
        ("noisy", "X"): [10.0, 14.0, 10.0],
    }
    results = _synthetic_results(collapsed)
    grid = noise_grid(results, build_tables(results))
    assert math.isnan(ratio_of(grid, "Z", "noisy").mean) and ratio_of(grid, "X", "noisy").n == 3
    findings = noise_findings(grid, level_tables(results, grid))
    ranking = next(line for line in findings if line.startswith("Lost least"))
    assert ranking.startswith("Lost least under label noise: X") and "Z" not in ranking
    assert "X's interval overlaps the next one's (BCE), so the order is not a finding" in ranking
    assert any(line.startswith("No relative mask AP for Z: no seed with a clean mask AP above 1") for line in findings)
    # Without the spread and the collapse, the order stands: X's ratios (about 0.70) lie clear of BCE's 0.5.
    results = _synthetic_results()
    grid = noise_grid(results, build_tables(results))
    assert not any("not a finding" in line for line in noise_findings(grid, level_tables(results, grid)))


def test_a_loss_that_collapses_at_one_level_is_named_beside_the_pooled_tests():
    # Z collapses only under noise: there its comparison is paired, the others are pooled.
    results = _synthetic_results({("noisy", "Z"): [0.0, 0.0, 0.0]})
    grid = noise_grid(results, build_tables(results))
    per_level = level_tables(results, grid)
    methods = {c.method.split()[0] for table in per_level.values() for c in table.compared}
    assert methods == {"pooled", "paired"}, methods
    text = " ".join(noise_findings(grid, per_level))
    paired = text.split("paired t-test for ")[1].split(" (not pooled")[0]  # named, not numbered
    assert "Z at 'noisy'" in paired and "pooled t-test over the config × seed layout" in text


def test_no_section_without_a_noise_axis():
    results = _synthetic_results()
    results.spec.grid = {"mask_loss": results.spec.grid["mask_loss"]}
    assert noise_grid(results, build_tables(results)) is None


# ---- a cut-down `noise` through the real runner and trainer

TINY_CONFIG = TINY_REAL_CONFIG


@pytest.mark.slow
def test_a_cut_down_noise_study_reports_its_noise_section(tmp_path):
    raw = copy.deepcopy(BUILTIN_STUDIES["noise"])
    raw["dataset"] = {"synthetic": {"train": 4, "val": 2, "size": 64, "seed": 0}}
    raw["config"] = {**raw["config"], **TINY_CONFIG}
    raw["grid"] = {
        "label_noise": {"clean": "none", "boundary 2 px": "boundary(px=2)"},
        "mask_loss": {"BCE": "bce", "Dice": "dice"},
    }
    study = parse_study(raw)
    validate_keys(study)
    out = tmp_path / "noise"
    summary = run_study(study, out, progress=False)
    assert summary["failed"] == 0 and summary["done"] == summary["total"] == 4 * (2 + 3), summary
    with StudyStore(out / "study.db") as store:
        results = [store.result(run["run_id"]) for run in store.runs()]
    # float32, under the trainer's own rule on skipped steps: every run learned from all its steps
    assert len(results) == 4 * (2 + 3), len(results)
    assert {(r["precision"], r["skipped_steps"]) for r in results} == {("fp32", 0)}
    files = write_report(out)
    png = out / "plots" / "noise_robustness.png"
    assert files["plots/noise_robustness.png"] == png and png.read_bytes().startswith(PNG_MAGIC)
    with Image.open(png) as picture:
        assert picture.width > 200 and picture.height > 200
    report = (out / "report.md").read_text()
    assert "## Label noise" in report and "plots/noise_robustness.png" in report
    assert "validation masks are clean" in report and "t-test over" in report and "## Tuning" in report
    assert "at label noise 'boundary 2 px'" in report and "mean over noisy levels" in report
    html = (out / "report.html").read_text()
    assert "id='noise'" in html and "Relative mask AP" in html
    console = Console(record=True, width=200)
    print_tables(out, console)
    printed = console.export_text()
    assert "label noise: relative mask AP" in printed and "boundary 2 px / Dice" in printed
