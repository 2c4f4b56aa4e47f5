"""colorcore.registry: names, duplicate protection, config validation, clear errors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from torch import nn

import colorcore.registry as registry
from colorcore.errors import ConfigError, ModelNotFoundError
from colorcore.models.baseline import Baseline, BaselineConfig
from colorcore.registry import build_config, build_model, get_spec, list_models


@dataclass(frozen=True)
class _Cfg:
    width: int = 1


def test_list_models_is_sorted_and_contains_baseline() -> None:
    names = list_models()
    assert "baseline" in names
    assert names == sorted(names) and len(names) == len(set(names))


def test_every_spec_is_well_formed() -> None:
    for name in list_models():
        spec = get_spec(name)
        assert spec.name == name
        assert spec.task in {"regression", "classification", "gan"}
        assert spec.description, f"{name} needs a description"
        assert issubclass(spec.model_cls, nn.Module)


def test_duplicate_name_raises_and_keeps_the_original() -> None:
    class Impostor(nn.Module):
        pass

    with pytest.raises(ValueError, match="already registered"):
        registry.register_model("baseline", config=_Cfg(), task="regression")(Impostor)
    assert get_spec("baseline").model_cls is Baseline


def test_register_model_rejects_bad_declarations() -> None:
    with pytest.raises(TypeError, match="dataclass instance"):
        registry.register_model("not-registered-1", config=_Cfg, task="regression")  # a class
    with pytest.raises(TypeError, match="dataclass instance"):
        registry.register_model("not-registered-2", config={"width": 1}, task="regression")
    with pytest.raises(ValueError, match="unknown task"):
        registry.register_model("not-registered-3", config=_Cfg(), task="segmentation")
    assert not {"not-registered-1", "not-registered-2", "not-registered-3"} & set(list_models())


def test_build_config_overrides_and_unknown_options() -> None:
    assert build_config("baseline") == BaselineConfig()
    assert build_config("baseline", hidden=8).hidden == 8
    with pytest.raises(ConfigError) as info:
        build_config("baseline", hiden=8, depth=3)
    message = str(info.value)
    assert "depth, hiden" in message and "hidden" in message and "kernel" in message  # names the valid ones
    assert "\n" not in message


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        get_spec("no-such-model")
    assert isinstance(info.value, KeyError)  # callers may catch either
    message = str(info.value)
    assert message.startswith("unknown model 'no-such-model'") and "baseline" in message
    with pytest.raises(ModelNotFoundError):
        build_model("no-such-model")


def test_build_model_turns_invalid_configs_into_config_errors() -> None:
    model = build_model("baseline", hidden=4)
    assert isinstance(model, Baseline) and model.config.hidden == 4
    with pytest.raises(ConfigError, match="invalid config for model 'baseline'"):
        build_model("baseline", kernel=3)  # odd kernel: refused by the constructor
    explicit = build_model("baseline", config=BaselineConfig(hidden=2))
    assert explicit.config.hidden == 2


def test_config_to_dict_round_trips() -> None:
    cfg = BaselineConfig(hidden=5)
    assert registry.config_to_dict(cfg) == {"hidden": 5, "kernel": 4}
    assert build_config("baseline", **registry.config_to_dict(cfg)) == cfg
