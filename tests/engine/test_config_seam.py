"""The run-config seam: a flat or nested run config plus overrides, split and checked in one place."""

from __future__ import annotations

import pytest

from losslab.engine.config import SYNTH_KEYS, TrainConfig, resolve_run_config, synthetic_args


def test_a_key_both_know_goes_to_both_when_given_flat():
    run = resolve_run_config({"model": "yolact_tiny", "amp": "false", "mask_loss": "dice"})
    assert run.train.amp is False and run.model.amp is False and run.model.mask_loss == "dice"
    assert set(run.model_keys_given) == {"amp", "mask_loss"}


def test_nested_sections_stay_apart_and_overrides_are_routed():
    nested = resolve_run_config({"model": "yolact_tiny", "amp": False}).to_dict()
    nested["model"]["amp"] = True  # the sections of a config.yaml may differ: each is kept
    run = resolve_run_config(nested, {"max_iter": "9", "conf_thresh": "0.2"})
    assert run.train.amp is False and run.model.amp is True
    assert run.train.max_iter == 9 and run.model.conf_thresh == pytest.approx(0.2)
    both = resolve_run_config(nested, {"amp": "true"})  # a flat override of a shared key: both
    assert both.train.amp is True and both.model.amp is True


def test_a_new_preset_drops_the_old_model_section():
    nested = resolve_run_config({"model": "yolact_tiny", "fpn_channels": 64}).to_dict()
    run = resolve_run_config(nested, {"model": "unet_tiny", "mask_loss": "dice"})
    assert run.train.model == "unet_tiny" and run.task == "dense" and run.model.mask_loss == "dice"
    assert run.model_keys_given == ("mask_loss",)


def test_bad_configs_name_the_problem():
    with pytest.raises(ValueError, match=r"only 'train' and 'model' sections; remove \['classes'\]"):
        resolve_run_config({"train": {}, "model": {}, "classes": []})
    with pytest.raises(ValueError, match=r"unknown key 'fpn_chanels'.*Did you mean 'fpn_channels'"):
        resolve_run_config({"model": "yolact_tiny"}, {"fpn_chanels": 3})
    with pytest.raises(ValueError, match="augment must be"):
        resolve_run_config({"model": "yolact_tiny", "augment": "heavy"})
    with pytest.raises(ValueError, match="unknown key 'max_iters' for train"):
        resolve_run_config({"train": {"max_iters": 3}, "model": {}})


def test_synthetic_args_are_the_synth_keys():
    cfg = TrainConfig(synth_train=5, synth_val=2, synth_size=64, synth_seed=3)
    assert synthetic_args(cfg) == {"train": 5, "val": 2, "size": 64, "seed": 3}
    assert set(SYNTH_KEYS.values()) <= set(TrainConfig.field_names())


FLOAT_KEYS = ("lr", "momentum", "weight_decay", "warmup_factor", "gamma", "grad_clip", "max_skipped_fraction")


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_non_finite_floats_are_refused_with_the_key_and_value(key, value):
    # NaN passes every comparison (nan <= 0 is False): each float key needs its own finiteness check
    with pytest.raises(ValueError, match=rf"train config: {key} must be a finite number, got -?(nan|inf)"):
        resolve_run_config({"model": "yolact_tiny"}, {key: value})


def test_non_finite_lr_steps_and_yaml_nan_are_refused():
    with pytest.raises(ValueError, match=r"lr_steps must be a finite number, got \(0.5, nan\)"):
        resolve_run_config({"model": "yolact_tiny", "lr_steps": [0.5, float("nan")]})
    with pytest.raises(ValueError, match="lr must be a finite number, got nan"):  # YAML's .nan
        resolve_run_config({"train": {"lr": float("nan")}, "model": {}})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_size": "0"}, "batch_size must be >= 1, got 0"),
        ({"batch_size": "-2"}, "batch_size must be >= 1, got -2"),
        ({"batch_size": "2.5"}, "batch_size: expected an integer, got '2.5'"),
        ({"batch_size": "four"}, "batch_size: expected an integer, got 'four'"),
        ({"max_iter": "-5"}, "max_iter must be >= 0, got -5"),
        ({"threads": "-1"}, "threads must be >= 0, got -1"),
        ({"momentum": "1.5"}, r"momentum must lie in \[0, 1\), got 1.5"),
        ({"weight_decay": "-1e-4"}, "weight_decay must be >= 0, got -0.0001"),
        ({"max_skipped_fraction": "2"}, r"max_skipped_fraction must lie in \[0, 1\], got 2.0"),
    ],
)
def test_bad_values_name_the_key_and_the_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_run_config({"model": "yolact_tiny"}, overrides)


def test_threads_and_skip_bad_are_trainer_keys_recorded_in_the_run_config():
    run = resolve_run_config({"model": "yolact_tiny", "threads": 2, "skip_bad": "true"})
    assert run.train.threads == 2 and run.train.skip_bad is True
    assert run.to_dict()["train"]["threads"] == 2  # what config.yaml and checkpoints hold
    assert TrainConfig().threads == 0 and TrainConfig().max_skipped_fraction == 0.05
