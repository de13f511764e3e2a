"""Study specs: expansion into runs, stable run ids, validation errors, the built-in studies."""

from __future__ import annotations

import pytest
import yaml

from losslab.study.builtin import BUILTIN_STUDIES, README_LOSSES
from losslab.study.spec import config_hash, load_study, parse_study, validate_keys


def test_tiny_spec_expands_seed_by_seed(tiny_spec):
    study = parse_study(tiny_spec)
    runs = study.runs()
    assert [(r.label, r.seed) for r in runs] == [("BCE", 0), ("Dice", 0), ("BCE", 1), ("Dice", 1)]
    assert runs[0].config == {
        "model": "yolact_tiny",
        "data": tiny_spec["dataset"]["path"],
        "max_iter": 3,
        "batch_size": 2,
        "mask_loss": "bce",
        "threads": 1,  # fixed in the spec at load time: part of the run id, whatever --workers is
        "seed": 0,
    }
    assert len({r.run_id for r in runs}) == 4
    assert study.baseline == "BCE" and study.baseline_of({"mask_loss": "Dice"}) == "BCE"


def test_run_id_is_stable_and_canonical(tiny_spec):
    ids = [r.run_id for r in parse_study(tiny_spec).runs()]
    assert ids == [r.run_id for r in parse_study(tiny_spec).runs()]
    assert config_hash({"a": 1, "lr": "1e-4"}) == config_hash({"lr": 0.0001, "a": 1.0})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_synthetic_dataset_becomes_trainer_keys(tiny_spec):
    tiny_spec["dataset"] = {"synthetic": {"train": 8, "val": 4, "size": 64, "seed": 1}}
    cfg = parse_study(tiny_spec).runs()[0].config
    assert cfg["data"] == "synthetic"
    assert (cfg["synth_train"], cfg["synth_val"], cfg["synth_size"], cfg["synth_seed"]) == (8, 4, 64, 1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gird": {}}, "Did you mean 'grid'"),
        ({"grid": {"mask_loss": {"BCE": "bcee"}}}, "bcee"),
        ({"grid": {"mask_loss": {"BCE": "bce", "X": "0.5*mse +"}}}, "position"),
        ({"grid": {"mask_loss": []}}, "has no values"),
        ({"baseline": "BCF"}, "Did you mean 'BCE'"),
        ({"seeds": 0}, "at least 1"),
        ({"seeds": [1, 1]}, "repeat"),
        ({"config": {"seed": 3}}, "set by the study"),
        ({"dataset": {"synthetic": {"trian": 3}}}, "Did you mean 'train'"),
        ({"dataset": {"path": "a", "synthetic": {}}}, "exactly one"),
        ({"model": None}, "no model"),
        ({"grid": {"variants": {"a": 3}}}, "mapping of keys"),
        ({"grid": {"depth_loss": ["bce"]}, "baseline": None}, "regression"),
        ({"seeds": 10_001}, "seeds: 10,001 would make at least 10,001 runs; a study makes at most 10,000"),
        ({"seeds": 100_000_000_000}, "a study makes at most 10,000"),  # no MemoryError first
        ({"seeds": 5001}, "the grid makes 10,002 runs"),
    ],
)
def test_spec_errors_name_the_problem(tiny_spec, change, message):
    spec = {**tiny_spec, **change}
    spec = {k: v for k, v in spec.items() if v is not None or k == "model"}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("*", r"\*").replace("+", r"\+")):
        parse_study(spec, where="tiny.yaml")


def test_model_axis_pairs_each_model_with_its_own_baseline(tiny_spec):
    tiny_spec["grid"] = {"model": ["yolact_tiny", "maskrcnn_tiny"], "mask_loss": {"BCE": "bce", "Dice": "dice"}}
    study = parse_study(tiny_spec)
    assert study.labels() == ["yolact_tiny / BCE", "yolact_tiny / Dice", "maskrcnn_tiny / BCE", "maskrcnn_tiny / Dice"]
    assert study.baseline_of({"model": "maskrcnn_tiny", "mask_loss": "Dice"}) == "maskrcnn_tiny / BCE"
    assert {r.config["model"] for r in study.runs()} == {"yolact_tiny", "maskrcnn_tiny"}


def test_variants_vary_keys_together_and_duplicates_alias(tiny_spec):
    tiny_spec["grid"] = {
        "variants": {
            "BCE": {"mask_loss": "bce"},
            "MSE (as run)": {"mask_loss": "bce"},
            "Both": {"mask_loss": "bce", "batch_size": 4},
        }
    }
    study = parse_study(tiny_spec)
    assert study.aliases() == {"MSE (as run)": "BCE"}
    assert len(study.runs()) == 6 and len(study.unique_runs()) == 4
    both = next(r for r in study.runs() if r.label == "Both")
    assert both.config["batch_size"] == 4


def test_equivalent_losses_are_noted(tiny_spec):
    tiny_spec["grid"] = {"mask_loss": {"BCE": "bce", "HL2": "huber(delta=2)"}}
    study = parse_study(tiny_spec)
    assert any("0.5*mse" in w for w in study.warnings)


def test_yaml_round_trip(tmp_path, tiny_spec):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_spec))
    study = load_study(path)
    again = tmp_path / "again.yaml"
    again.write_text(study.to_yaml())
    assert [r.run_id for r in load_study(again).runs()] == [r.run_id for r in study.runs()]
    assert len(load_study(path, seeds=3).runs()) == 6


def test_unknown_study_name_suggests():
    with pytest.raises(ValueError, match="Did you mean 'quick'"):
        load_study("quik")


@pytest.mark.parametrize("name", list(BUILTIN_STUDIES))
def test_builtin_studies_load(name):
    study = load_study(name)
    assert study.run_count() > 0 and study.baseline in {v for values in study.grid.values() for v in values}
    if study.tune is not None:  # verdict runs exist once a choice is made, at the chosen value
        first = {label: study.tune.points()[0] for label in study.labels()}
        assert study.tune_runs() and study.runs(first)
        assert not {r.seed for r in study.tune_runs()} & set(study.seeds)
    else:
        assert study.runs()


def test_builtin_studies_follow_the_survey():
    quick = load_study("quick")
    assert quick.labels() == list(README_LOSSES) and quick.model == "yolact_lite"
    hybrid = load_study("paper-hybrid")
    assert len(hybrid.labels()) == 13 and "MSE + BCE (α=0.5, β=1)" in hybrid.labels()
    assert hybrid.grid["mask_loss"]["MSE + BCE (α=0.5, β=1)"] == "0.5*mse + bce"
    batch = load_study("paper-batch")
    assert sorted(r.config["batch_size"] for r in batch.runs() if r.seed == 0) == [2, 8, 16]
    audit = load_study("audit")
    assert audit.aliases()["MSE (as run: BCE)"] == "BCE"
    # The survey ran HL + BCE at α and MSE + BCE at α/2 as one loss (Huber on probabilities is 0.5*mse).
    assert audit.aliases()["MSE + BCE α=0.5 (as run)"] == "HL + BCE α=1 (as run)"
    assert audit.grid["mask_loss"]["MSE + BCE α=0.5 (as run)"] == "bce + 0.5*uncropped(mse)"
    assert audit.grid["mask_loss"]["LCDL (as run: log_cosh(pixel_dice))"] == "log_cosh(pixel_dice(smooth=0.1))"


@pytest.mark.slow
def test_validate_keys_rejects_unknown_keys(tiny_spec):
    tiny_spec["config"] = {"max_iter": 3, "fpn_chanels": 64}
    with pytest.raises(ValueError, match="fpn_channels"):
        validate_keys(parse_study(tiny_spec))
    tiny_spec["config"] = {"max_iter": 3, "fpn_channels": 64}
    validate_keys(parse_study(tiny_spec))


def test_builtin_quick_is_valid_for_the_trainer():
    study = load_study("quick")
    validate_keys(study)
    assert all(r.config["model"] == "yolact_lite" for r in study.runs())


@pytest.mark.slow
def test_every_builtin_study_is_valid_for_the_trainer_and_models():
    for name in BUILTIN_STUDIES:
        validate_keys(load_study(name))  # raises on an unknown model or key


def test_threads_set_by_the_spec_are_kept_and_an_axis_may_vary_them(tiny_spec):
    tiny_spec["config"]["threads"] = 2
    assert {r.config["threads"] for r in parse_study(tiny_spec).runs()} == {2}
    tiny_spec["grid"]["threads"] = [1, 4]
    assert sorted({r.config["threads"] for r in parse_study(tiny_spec).runs()}) == [1, 4]


def test_a_too_large_grid_is_refused_before_anything_is_expanded(tiny_spec):
    tiny_spec["grid"] = {f"axis{i}": list(range(10)) for i in range(5)}  # 100,000 configurations
    with pytest.raises(ValueError, match=r"the grid makes 100,000 runs \(10 axis0 x .* x 1 seeds\), more than the"):
        parse_study(tiny_spec, seeds=1)
    tiny_spec["grid"] = {"mask_loss": ["bce", "dice"]}
    with pytest.raises(ValueError, match=r"10,002 runs \(2 mask_loss x 5001 seeds\)"):
        parse_study(tiny_spec, seeds=5001)


def test_a_non_utf8_or_malformed_yaml_spec_names_the_file(tmp_path):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"name: caf\xe9\nmodel: yolact_tiny\n")
    with pytest.raises(ValueError, match=rf"{latin1} is not UTF-8 text \(byte 0xe9 at offset 9\)"):
        load_study(latin1)
    broken = tmp_path / "broken.yaml"
    broken.write_text("grid: [bce\n")
    with pytest.raises(ValueError, match=rf"{broken}: not valid YAML"):
        load_study(broken)


def test_exactly_the_run_limit_is_accepted(tiny_spec):
    """10,000 runs is allowed, 10,001 is not (the limit is inclusive)."""
    tiny_spec["grid"] = {"mask_loss": {f"L{i}": "bce" for i in range(100)}, "lr": [1e-3 * (1 + i) for i in range(50)]}
    tiny_spec["baseline"] = "L0"
    tiny_spec["seeds"] = 2  # 100 x 50 x 2 = 10,000
    assert len(parse_study(tiny_spec).labels()) * 2 == 10_000
    tiny_spec["grid"]["lr"].append(1.0)  # 100 x 51 x 2 = 10,200
    with pytest.raises(ValueError, match="10,200 runs"):
        parse_study(tiny_spec)
