"""The tuning stage: the ``tune`` section, tune runs on the tuning split, the choice per configuration
on that split only, verdict runs at the chosen value with other seeds, resume mid-tuning, and the
report's tuning section and columns."""

from __future__ import annotations

import csv

import pytest
from studyfake import fake_run

from losslab.report.write import write_report
from losslab.study.runner import run_dir_of, run_study
from losslab.study.spec import parse_study
from losslab.study.store import StudyStore
from losslab.study.tuning import TUNE_SEED_BASE, TuneSpec, choose

LRS = [1e-4, 1e-3, 1e-2]


@pytest.fixture
def tuned_spec(tiny_spec, tmp_path):
    """``tiny_spec`` with lr tuned over three values on a tuning folder of its own; the fake's best lr
    is 1e-2 on the tuning split and 1e-4 on the verdict data."""
    tune_data = tmp_path / "data-tune"
    tune_data.mkdir()
    tiny_spec["config"] = {**tiny_spec["config"], "fake_lr_peak": 1e-4, "fake_lr_peak_tune": 1e-2}
    tiny_spec["tune"] = {"grid": {"lr": LRS}, "seeds": 1, "dataset": {"path": str(tune_data)}}
    return tiny_spec


def test_tune_runs_use_the_tuning_split_and_their_own_seeds(tuned_spec):
    study = parse_study(tuned_spec)
    tune = study.tune_runs()
    assert len(tune) == 2 * 3 and {r.stage for r in tune} == {"tune"}
    assert {r.seed for r in tune} == {TUNE_SEED_BASE} and not {r.seed for r in tune} & set(study.seeds)
    assert {r.config["data"] for r in tune} == {tuned_spec["tune"]["dataset"]["path"]}
    assert sorted(r.config["lr"] for r in tune if r.label == "BCE") == LRS
    assert all(r.config["num_samples"] == 0 and r.tuned == {"lr": r.config["lr"]} for r in tune)
    assert study.runs() == []  # no verdict run before a choice
    verdict = study.runs({"BCE": {"lr": 1e-3}})
    assert [r.label for r in verdict] == ["BCE", "BCE"] and {r.config["lr"] for r in verdict} == {1e-3}
    assert {r.config["data"] for r in verdict} == {tuned_spec["dataset"]["path"]}
    assert study.run_count() == 6 + 4
    assert parse_study(study.to_dict()).tune == study.tune  # the spec's round trip keeps the section


def test_a_synthetic_study_tunes_on_another_synthetic_draw(tiny_spec):
    tiny_spec["dataset"] = {"synthetic": {"train": 10, "val": 4, "size": 64, "seed": 3}}
    tiny_spec["tune"] = {"grid": {"lr": LRS}}
    study = parse_study(tiny_spec)
    tune, verdict = study.tune_runs()[0], study.runs({"BCE": {"lr": 1e-3}})[0]
    assert verdict.config["synth_seed"] == 3 and tune.config["synth_seed"] == 4
    assert tune.config["synth_train"] == verdict.config["synth_train"] == 10


@pytest.mark.parametrize(
    ("tune", "message"),
    [
        ({"grid": {"lr": LRS}, "seeds": [0]}, "also verdict seeds"),
        ({"grid": {"lr": LRS}, "seed": 1}, "unknown key tune.seed"),
        ({"grid": {"mask_loss": ["bce"]}}, "also a grid axis"),
        ({"grid": {"lr": []}}, "non-empty list"),
        ({"grid": {"lr": [1e-3, 1e-3]}}, "repeats a value"),
        ({"grid": {"seed": [1, 2]}}, "cannot tune 'seed'"),
        ({"grid": {"lr": LRS}}, "needs tune.dataset"),
        ({"grid": {"lr": LRS}, "dataset": {"path": "elsewhere"}, "tolerance": -1}, "tune.tolerance must be"),
        ({"grid": {"lr": LRS}, "dataset": {"path": "elsewhere"}, "tolerance": "2"}, "tune.tolerance must be"),
        ({"grid": {"lr": [-1.0]}, "dataset": {"path": "elsewhere"}}, None),
    ],
)
def test_bad_tune_sections_are_refused_with_the_reason(tiny_spec, tune, message):
    tiny_spec["tune"] = tune
    if message is None:  # values are checked by the trainer's own checks with the default run_fn
        from losslab.study.spec import validate_keys

        with pytest.raises(ValueError, match=r"tune run.*lr"):
            validate_keys(parse_study(tiny_spec))
        return
    with pytest.raises(ValueError, match=message):
        parse_study(tiny_spec)


def test_the_tuning_split_cannot_be_the_verdicts(tiny_spec):
    tiny_spec["tune"] = {"grid": {"lr": LRS}, "dataset": dict(tiny_spec["dataset"])}
    with pytest.raises(ValueError, match="never sees"):
        parse_study(tiny_spec)
    tiny_spec["dataset"] = {"synthetic": {"seed": 0}}
    tiny_spec["tune"] = {"grid": {"lr": LRS}, "dataset": {"synthetic": {"seed": 0}}}
    with pytest.raises(ValueError, match="another seed"):
        parse_study(tiny_spec)


def _tune() -> TuneSpec:
    return TuneSpec({"lr": LRS}, [1000, 1001], {"synthetic": {}})


def _never(_metrics) -> bool:
    return False


def test_choose_takes_the_best_mean_and_flags_the_edge():
    done = [("done", {"segm.AP": 30.0}), ("done", {"segm.AP": 34.0})]  # mean 32
    outcomes = {0: [("done", {"segm.AP": 20.0})] * 2, 1: [("done", {"segm.AP": 31.0})] * 2, 2: done}
    choice = choose("X", _tune(), outcomes, _never)
    assert choice.chosen == {"lr": 1e-2} and choice.edge == ["lr"]
    assert [s for _, s, *_ in choice.scores] == [20.0, 31.0, 32.0]
    middle = choose("X", _tune(), {**outcomes, 2: [("done", {"segm.AP": 1.0})] * 2}, _never)
    assert middle.chosen == {"lr": 1e-3} and middle.edge == []


def test_choose_waits_for_every_tuning_run_and_ranks_failures_last():
    half = {0: [("done", {"segm.AP": 20.0})] * 2, 1: [("done", {"segm.AP": 31.0}), ("running", {})]}
    assert choose("X", _tune(), half, _never).chosen is None
    failed = {0: [("done", {"segm.AP": 20.0})] * 2, 1: [("done", {"segm.AP": 90.0}), ("failed", {})],
              2: [("failed", {})] * 2}  # fmt: skip
    choice = choose("X", _tune(), failed, _never)
    assert choice.chosen == {"lr": 1e-4}  # a point with a failed run (a diverged lr) never wins
    assert choose("X", _tune(), {i: [("failed", {})] * 2 for i in range(3)}, _never).chosen is None
    tie = choose("X", _tune(), {i: [("done", {"segm.AP": 5.0})] * 2 for i in range(3)}, _never)
    assert tie.chosen == {"lr": 1e-4}  # ties go to the first value in grid order


def test_a_tolerance_takes_the_first_value_within_it_of_the_best():
    outcomes = {0: [("done", {"segm.AP": 29.0})] * 2, 1: [("done", {"segm.AP": 38.0})] * 2,
                2: [("done", {"segm.AP": 38.6})] * 2}  # fmt: skip
    tune = TuneSpec({"lr": LRS}, [1000, 1001], {"synthetic": {}}, tolerance=2.0)
    choice = choose("X", tune, outcomes, _never)
    assert choice.chosen == {"lr": 1e-3} and choice.edge == []  # 38.0 is within 2 of 38.6; 29.0 is not
    assert choose("X", _tune(), outcomes, _never).chosen == {"lr": 1e-2}  # tolerance 0: the best itself
    failed_best = {**outcomes, 1: [("done", {"segm.AP": 39.0}), ("failed", {})]}
    assert choose("X", tune, failed_best, _never).chosen == {"lr": 1e-2}  # a failed point stays out
    wide = TuneSpec({"lr": LRS}, [1000, 1001], {"synthetic": {}}, tolerance=10.0)
    assert choose("X", wide, outcomes, _never).chosen == {"lr": 1e-4}
    assert wide.to_dict()["tolerance"] == 10.0


def test_collapsed_everywhere_only_when_every_value_collapsed():
    def collapsed(metrics):
        return metrics["segm.AP"] < 1

    some = {
        0: [("done", {"segm.AP": 20.0})] * 2,
        1: [("done", {"segm.AP": 0.1})] * 2,
        2: [("done", {"segm.AP": 0.0})] * 2,
    }
    choice = choose("Dice", _tune(), some, collapsed)
    assert choice.collapsed_points() == [{"lr": 1e-3}, {"lr": 1e-2}] and not choice.collapsed_everywhere()
    every = {i: [("done", {"segm.AP": 0.0})] * 2 for i in range(3)}
    assert choose("Dice", _tune(), every, collapsed).collapsed_everywhere()


def _stored_runs(out) -> list[dict]:
    with StudyStore(out / "study.db") as store:
        return store.runs()


def test_the_choice_is_made_on_the_tuning_split_only(tmp_path, tuned_spec):
    out = tmp_path / "study"
    assert run_study(parse_study(tuned_spec), out, run_fn=fake_run, progress=False)["done"] == 10
    runs = _stored_runs(out)
    verdict = [r for r in runs if r["stage"] == "verdict"]
    # The verdict data's best lr (1e-4) is never seen by the choice: the tuning split's (1e-2) is.
    assert len(verdict) == 4 and {r["config"]["lr"] for r in verdict} == {1e-2}
    assert {r["seed"] for r in verdict} == {0, 1}
    assert [r["stage"] for r in runs[:6]] == ["tune"] * 6
    files = write_report(out)
    rows = list(csv.DictReader(files["results.csv"].open()))
    assert {(r["stage"], r["lr"]) for r in rows} >= {("tune", "0.0001"), ("tune", "0.01"), ("verdict", "0.01")}
    md = files["report.md"].read_text()
    assert "## Tuning" in md and EDGE in md
    assert "plots/tuning.png" in files and files["plots/tuning.png"].stat().st_size > 0
    verdicts = list(csv.DictReader(files["verdicts.csv"].open()))
    assert {r["config"] for r in verdicts} == {"Dice"}  # verdict runs only; BCE is the baseline


EDGE = "best value at the edge of the grid"


def test_a_study_killed_mid_tuning_resumes_there(tmp_path, tuned_spec):
    study = parse_study(tuned_spec)
    out = tmp_path / "study"
    calls = []

    def dies_after_three(config, run_dir, progress=True):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(config["lr"])
        return fake_run(config, run_dir, progress)

    with pytest.raises(KeyboardInterrupt):
        run_study(study, out, run_fn=dies_after_three, progress=False)
    runs = _stored_runs(out)
    assert [r["status"] for r in runs].count("done") == 3
    assert {r["stage"] for r in runs} == {"tune"}  # no verdict run before tuning ends
    summary = run_study(study, out, run_fn=fake_run, progress=False)
    assert summary == {"total": 10, "skipped": 3, "done": 7, "failed": 0}
    for run in study.tune_runs():
        log = run_dir_of(out, run.run_id) / "calls.log"
        assert log.read_text().count("complete") == 1  # no tuning run trained twice


def _results_with(choice):
    from losslab.report.tables import ConfigResults, StudyResults
    from losslab.study.flags import RunHealth

    study = parse_study({**_SPEC, "tune": {"grid": {"lr": LRS}, "dataset": {"path": "tune"}}})
    cfg = ConfigResults("Dice", {"mask_loss": "Dice"}, {}, {0: "r0", 1: "r1"}, tuning=choice)
    cfg.metrics = {0: {"segm.AP": 0.1, "bbox.AP": 30.0}, 1: {"segm.AP": 0.2, "bbox.AP": 31.0}}
    health = {r: RunHealth(r, s, None, 10, 0, cfg.metrics[s]["segm.AP"], cfg.metrics[s]["bbox.AP"])
              for s, r in cfg.run_ids.items()}  # fmt: skip
    return StudyResults(study, [cfg], runs=[], store=None, health=health), cfg  # type: ignore[arg-type]


_SPEC = {"name": "t", "dataset": {"path": "data"}, "model": "yolact_tiny", "grid": {"mask_loss": ["bce", "dice"]}}


def test_collapsed_is_said_only_of_a_loss_that_collapsed_at_every_value():
    from losslab.study.flags import COLLAPSED, MASKS_FAILED

    def collapsed(metrics):
        return metrics["segm.AP"] < 1

    tune = TuneSpec({"lr": LRS}, [1000], {"path": "tune"})
    everywhere = choose("Dice", tune, {i: [("done", {"segm.AP": 0.0})] for i in range(3)}, collapsed)
    results, cfg = _results_with(everywhere)
    assert [f.name for f in results.flags_of(cfg)][:1] == [COLLAPSED]
    somewhere = choose("Dice", tune, {0: [("done", {"segm.AP": 0.5})], 1: [("done", {"segm.AP": 0.9})],
                                      2: [("done", {"segm.AP": 20.0})]}, collapsed)  # fmt: skip
    somewhere.chosen = {"lr": 1e-4}  # its verdict runs collapsed at a value where tuning did too
    results, cfg = _results_with(somewhere)
    names = [f.name for f in results.flags_of(cfg)]
    assert COLLAPSED not in names and MASKS_FAILED in names
    failed = next(f for f in results.flags_of(cfg) if f.name == MASKS_FAILED)
    assert "not at every value tried: 1 of 3 trained masks" in str(failed)
