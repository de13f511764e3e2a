"""The flags (collapsed, still falling, 1 seed, steps skipped) and the plateau measurement, on
hand-made curves and on a stored fake study where each configuration earns one flag."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
from reportfake import flagged_study
from rich.console import Console
from scipy import stats as sst

from losslab.report.summary import warnings_of
from losslab.report.tables import collect
from losslab.report.write import print_tables, write_report
from losslab.study.flags import (
    COLLAPSED,
    EMPTY_MASKS,
    FILLED_BOXES,
    LOSS_RISING,
    ONE_SEED,
    STEPS_SKIPPED,
    STILL_FALLING,
    Flag,
    RunHealth,
    collapse_mode,
    config_flags,
    count_skipped_rows,
    is_collapsed,
    plateau,
    run_health,
)
from losslab.study.status import status_table
from losslab.study.store import StudyStore


def _curve(fn, steps: int = 500, every: int = 10, noise: float = 0.0, seed: int = 0) -> list[tuple[int, float]]:
    rng = np.random.default_rng(seed)
    return [(s, fn(s) + rng.normal(0, noise)) for s in range(every, steps + 1, every)]


def test_plateau_slope_is_the_least_squares_fit_over_the_last_fifth():
    curve = _curve(lambda s: 2.0 - s / 500, noise=0.01)
    p = plateau(curve)
    window = [(s, v) for s, v in curve if s > 400]
    fit = sst.linregress(*zip(*window, strict=True))
    mean = np.mean([v for _, v in window])
    assert (p.start, p.end, p.points) == (410, 500, 10)
    assert p.slope == pytest.approx(fit.slope * 1000 / mean)
    assert p.fall == pytest.approx(-fit.slope * 100 / mean)  # across the window: 100 of 500 iterations
    assert p.low < p.slope < p.high and p.state == "still falling" and p.converged is False


def test_a_flat_end_converges_and_a_falling_end_does_not():
    flat = plateau(_curve(lambda s: 1.0 + 3.0 * math.exp(-s / 30), noise=0.02))
    assert flat.state == "converged" and flat.converged is True and abs(flat.fall) < 0.05
    falling = plateau(_curve(lambda s: 3.0 - 0.004 * s, noise=0.02))
    assert falling.state == "still falling" and falling.fall > 0.2 and falling.high < 0
    rising = plateau(_curve(lambda s: 1.0 + 0.004 * s, noise=0.02))
    assert rising.state == "rising" and rising.converged is False and rising.low > 0


def test_noise_without_a_trend_is_converged_and_too_few_points_are_undecided():
    # a slope whose interval covers zero counts as converged, however noisy the curve
    noisy = plateau(_curve(lambda s: 2.0, noise=0.5, seed=3))
    assert noisy.low <= 0 <= noisy.high and noisy.state == "converged"
    short = plateau([(1, 3.0), (2, 2.0), (3, 1.0)])
    assert short.state == "too short" and short.converged is None and math.isnan(short.slope)
    assert plateau([]).converged is None
    assert plateau([(s, None) for s in range(1, 50)]).converged is None


def test_collapsed_means_mask_ap_near_zero_with_working_boxes():
    assert is_collapsed(0.0, 11.3) and is_collapsed(0.5, 5.0)
    assert not is_collapsed(8.8, 10.2)  # a weak mask, not a collapsed one
    assert not is_collapsed(0.0, 0.5)  # nothing trains: not a mask failure
    assert not is_collapsed(None, 10.0) and not is_collapsed(float("nan"), 10.0)


def test_a_collapse_says_whether_the_masks_fill_their_boxes_or_are_empty():
    assert (
        collapse_mode(FILLED_BOXES) == "masks fill their boxes"
        and collapse_mode(EMPTY_MASKS - 0.1) == "masks are empty"
    )
    assert collapse_mode(40.0) == "" and collapse_mode(None) == "" and collapse_mode(float("nan")) == ""
    filled = RunHealth("a", 0, None, 500, 0, 0.0, 34.1, mask_fill=96.2, gt_fill=51.1).flags()
    assert filled == [
        Flag(COLLAPSED, "mask AP 0.00, box AP 34.10; masks fill their boxes: 96 % of each box, the ground truth's 51 %",
             "masks fill their boxes")
    ]  # fmt: skip
    empty = [
        RunHealth(r, i, None, 500, 0, 0.0, 31.0, mask_fill=f, gt_fill=51.0)
        for i, (r, f) in enumerate([("a", 0.0), ("b", 2.0)])
    ]
    (flag,) = config_flags(empty)
    assert flag.mode == "masks are empty" and "1 % of each box" in flag.detail  # the mean of 0 and 2
    unknown = RunHealth("c", 0, None, 500, 0, 0.0, 31.0).flags()[0]  # a run evaluated before mask_fill existed
    assert unknown.mode == "" and unknown.detail == "mask AP 0.00, box AP 31.00"


def test_config_flags_gather_the_runs():
    falling = plateau(_curve(lambda s: 3.0 - 0.004 * s, noise=0.01))
    flat = plateau(_curve(lambda s: 1.0 + math.exp(-s / 20), noise=0.01))
    runs = [RunHealth("a", 0, falling, 500, 0, 0.1, 12.0), RunHealth("b", 1, flat, 500, 3, 0.3, 11.0)]
    flags = {f.name: f for f in config_flags(runs)}
    assert set(flags) == {COLLAPSED, STILL_FALLING, STEPS_SKIPPED}
    assert flags[STILL_FALLING].detail == "1 of 2 runs" and "up to 3 of 500" in flags[STEPS_SKIPPED].detail
    one = config_flags([RunHealth("c", 0, flat, 500, 0, 40.0, 45.0)])
    assert one == [Flag(ONE_SEED)] and str(one[0]) == "1 seed"
    assert config_flags([]) == []
    rising = plateau(_curve(lambda s: 1.0 + 0.004 * s, noise=0.01))
    assert RunHealth("d", 0, rising, 500, 0).flags()[0].name == LOSS_RISING


def test_run_health_reads_the_skipped_steps_record(tmp_path):
    assert count_skipped_rows(tmp_path) is None and count_skipped_rows(None) is None
    (tmp_path / "skipped_steps.csv").write_text("iteration,image_ids,terms\n3,1 2,{}\n9,4,{}\n")
    assert count_skipped_rows(tmp_path) == 2
    losses = {"total": _curve(lambda s: 1.0, steps=100)}
    health = run_health("r", 0, losses, {"skipped_steps": 1.0, "iterations": 100.0}, tmp_path)
    assert health.skipped_steps == 2 and health.iterations == 100  # the file has the longer record
    assert [f.name for f in health.flags()] == [STEPS_SKIPPED] and str(health.flags()[0]) == "steps skipped (2 of 100)"


@pytest.fixture
def flagged(tmp_path):
    return flagged_study(tmp_path)


def test_each_configuration_earns_its_flag(flagged):
    with StudyStore(flagged / "study.db") as store:
        results = collect(store)
        flags = {c.label: {f.name for f in results.flags_of(c)} for c in results.configs}
    assert flags == {"BCE": set(), "Falling": {STILL_FALLING}, "Collapsed": {COLLAPSED}, "Skipping": {STEPS_SKIPPED}}
    (collapsed,) = [w for w in warnings_of(results) if w.startswith("Collapsed")]
    assert collapsed.endswith("Collapsed: the boxes train, the masks do not (masks fill their boxes: Collapsed).")


def test_flags_reach_results_csv_every_table_and_the_printed_table(flagged):
    write_report(flagged)
    with (flagged / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    by_config = {r["config"]: r for r in rows if r["seed"] == "0"}
    assert by_config["BCE"]["converged"] == "true" and by_config["Falling"]["converged"] == "false"
    assert float(by_config["Falling"]["loss_slope"]) < 0 < float(by_config["Falling"]["loss_fall"])
    assert by_config["Skipping"]["skipped_steps"] == "7" and by_config["Skipping"]["flags"] == STEPS_SKIPPED
    assert by_config["Collapsed"]["flags"] == COLLAPSED and by_config["BCE"]["flags"] == ""
    md = (flagged / "report.md").read_text()
    sections = {part.splitlines()[0]: part for part in md.split("\n## ")}
    for title in ("Mask AP (COCO segm)", "Box AP (COCO bbox)", "Boundary AP (Boundary IoU)", "Runs"):
        assert "| flags |" in sections[title] and "steps skipped" in sections[title], title
    summary = md.split("## Summary")[1].split("\n## ")[0]
    assert "Still falling over the last 20 % of iterations: Falling" in summary
    assert "Collapsed (mask AP below 1 while box AP is at least 5): Collapsed" in summary
    assert "Steps skipped for a non-finite loss: Skipping" in summary
    console = Console(file=io.StringIO(), width=250)
    print_tables(flagged, console)
    printed = console.file.getvalue()
    for name in (COLLAPSED, STILL_FALLING, STEPS_SKIPPED):
        assert name in printed
    assert "pooled t-test over the config × seed layout (2 seeds, df=2)" in printed and "Holm" in printed
    assert "paired t-test for Collapsed" in printed  # a collapsed configuration stays out of the pool


def test_status_table_flags_the_done_runs(flagged):
    table, _ = status_table(flagged)
    console = Console(width=250, record=True)
    console.print(table)
    text = console.export_text()
    assert text.count("steps skipped (7 of 50)") == 2 and text.count("still falling") == 2
    assert "collapsed (mask AP 0.00" in text
