"""The preset registry: registering a preset with its config, the config factory, removal."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from torch import nn

from losslab.models import create_model, get_model_info, list_models, model_config, register_model, unregister_model


@dataclass
class ToyConfig:
    width: int = 4
    mask_loss: str = "bce"

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")


class Toy(nn.Module):
    task = "dense"

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.conv = nn.Conv2d(3, config.width, 1)


@pytest.fixture
def toy():
    info = register_model("toy_net", ToyConfig(), Toy, family="toy", task="dense", description="a test preset")
    yield info
    if "toy_net" in list_models():
        unregister_model("toy_net")


def test_a_preset_is_its_config_and_its_builder(toy):
    assert toy.family == "toy" and get_model_info("toy_net") is toy and "toy_net" in list_models(family="toy")
    assert model_config("toy_net", width="8") == ToyConfig(width=8)  # strings coerced, checked
    model = create_model("toy_net", width=8)
    assert isinstance(model, Toy) and model.config == ToyConfig(width=8) and model.conv.out_channels == 8
    assert model_config("toy_net") == ToyConfig() and toy.defaults == ToyConfig()  # defaults untouched


def test_config_factory_checks_keys_and_values(toy):
    with pytest.raises(ValueError, match="Did you mean 'width'"):
        model_config("toy_net", widht=3)
    with pytest.raises(ValueError, match="width must be >= 1"):
        model_config("toy_net", width=0)


def test_registering_again_warns_and_unregistering_removes(toy):
    with pytest.warns(UserWarning, match="registered again"):
        register_model("toy_net", ToyConfig(width=2), Toy, family="toy", task="dense", description="again")
    assert model_config("toy_net").width == 2
    assert unregister_model("toy_net").description == "again"
    with pytest.raises(ValueError, match="unknown model 'toy_net'"):
        get_model_info("toy_net")


def test_bad_registrations_are_refused():
    with pytest.raises(ValueError, match="task must be"):
        register_model("bad", ToyConfig(), Toy, family="toy", task="semantic", description="")
    with pytest.raises(TypeError, match="config dataclass instance"):
        register_model("bad", ToyConfig, Toy, family="toy", task="dense", description="")
    with pytest.raises(TypeError, match="callable"):
        register_model("bad", ToyConfig(), None, family="toy", task="dense", description="")
    assert "bad" not in list_models()
