"""Checked key=value overrides on config dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from losslab.config import apply_overrides, config_to_dict, lookup, parse_kv, suggest


@dataclass
class Cfg:
    lr: float = 0.1
    max_iter: int = 10
    amp: bool = False
    mask_loss: str = "bce"
    lr_steps: tuple[float, ...] = (0.5, 0.8)
    width: int | None = None
    extra: dict = field(default_factory=dict)


def test_strings_are_coerced_to_field_types():
    cfg = apply_overrides(
        Cfg(), {"lr": "1e-3", "max_iter": "20", "amp": "true", "lr_steps": "0.3,0.9", "width": "none"}
    )
    assert cfg.lr == pytest.approx(1e-3)
    assert cfg.max_iter == 20
    assert cfg.amp is True
    assert cfg.lr_steps == (0.3, 0.9)
    assert cfg.width is None
    assert apply_overrides(Cfg(), {"width": "8"}).width == 8


def test_original_is_not_modified():
    base = Cfg()
    apply_overrides(base, {"lr": 2.0})
    assert base.lr == 0.1


def test_unknown_key_names_the_closest():
    with pytest.raises(ValueError, match=r"unknown key 'mask_los'.*'mask_loss'"):
        apply_overrides(Cfg(), {"mask_los": "dice"}, where="yolact_tiny")


@pytest.mark.parametrize(("key", "value"), [("max_iter", "ten"), ("amp", "maybe"), ("lr", "fast"), ("max_iter", 1.5)])
def test_bad_values_are_rejected(key, value):
    with pytest.raises(ValueError, match=key):
        apply_overrides(Cfg(), {key: value})


def test_parse_kv_and_suggest():
    assert parse_kv(["a=1", "mask_loss=0.5*mse + bce"]) == {"a": "1", "mask_loss": "0.5*mse + bce"}
    with pytest.raises(ValueError, match="key=value"):
        parse_kv(["oops"])
    assert "'dice'" in suggest("dise", ["dice", "bce"])
    assert suggest("zzz", ["dice"]) == ""


def test_config_to_dict_is_plain():
    d = config_to_dict(Cfg())
    assert d["lr_steps"] == [0.5, 0.8]
    assert d["extra"] == {}


def test_lookup_names_the_closest_entries():
    table = {"yolact_tiny": 1, "unet": 2}
    assert lookup(table, "unet", "model", "Presets: ...") == 2
    with pytest.raises(ValueError, match=r"unknown model 'yolact_tin'\. Did you mean 'yolact_tiny'\? Presets: \.\.\."):
        lookup(table, "yolact_tin", "model", "Presets: ...")
