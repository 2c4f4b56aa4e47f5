"""colorcore.weights: safetensors round trips, hash checks, refused formats and the published .pth path.

The published-download path is exercised with LOCAL files (``file://`` URLs) and a temporary torch hub
cache, so nothing here needs the internet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch

import colorcore.registry as registry
from colorcore import create_model
from colorcore.errors import WeightsError
from colorcore.registry import list_models
from colorcore.weights import (
    WeightsEntry,
    available_weights,
    bundled_weights,
    load_entry,
    load_weights_file,
    model_info,
    save_weights,
    sha256_file,
)
from colorcore.weights import published_cache_path as cache_path


@pytest.fixture
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private torch hub cache, so tests neither see nor fill the real one."""
    folder = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(folder))
    return folder


def _random_state(model_name: str, seed: int = 0, **config: object) -> dict[str, torch.Tensor]:
    """A state dict with the model's own names and shapes and random values."""
    torch.manual_seed(seed)
    state = registry.build_model(model_name, **config).state_dict()
    return {k: torch.randn_like(v) if v.is_floating_point() else v.clone() for k, v in state.items()}


def _publish(state: dict[str, torch.Tensor], folder: Path, stem: str) -> tuple[Path, str]:
    """``torch.save`` ``state`` as ``stem-<8 hex of its sha256>.pth``, as published checkpoints are named."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{stem}.tmp"
    torch.save(state, tmp)
    prefix = sha256_file(tmp)[:8]
    path = tmp.rename(folder / f"{stem}-{prefix}.pth")
    return path, prefix


def _published_entry(url: str, prefix: str) -> WeightsEntry:
    return WeightsEntry(name="baseline-pub", model="baseline", config={}, sha256=prefix, input_size=128,
                        colors="regression", url=url)


def _assert_same_state(model: torch.nn.Module, state: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    got = model.state_dict()
    assert set(got) == set(state)
    for key, value in state.items():
        torch.testing.assert_close(got[key].float(), value.float(), atol=atol, rtol=0)


# -- bundled safetensors ---------------------------------------------------------------------------


def test_save_load_round_trip(
    tiny_trained_weights: WeightsEntry, tiny_baseline_state: dict, weights_dir: Path
) -> None:
    entry = tiny_trained_weights
    assert entry.file == weights_dir / "baseline-tiny.safetensors" and entry.file.is_file()
    assert entry.sha256 == hashlib.sha256(entry.file.read_bytes()).hexdigest()
    card = json.loads((weights_dir / "baseline-tiny.json").read_text())
    assert card["format"] == "colorcore-weights/1" and card["model"] == "baseline" and card["default"] is True
    assert card["config"] == {"hidden": 8, "kernel": 4} and card["input_size"] == 64

    for model in (create_model("baseline-tiny"), create_model("baseline", pretrained=True),
                  create_model("baseline", pretrained=True, hidden=8),
                  create_model("baseline", pretrained="baseline-tiny"),
                  create_model("baseline", pretrained=str(entry.file)), load_weights_file(entry.file)):
        assert model.weights_entry.name == "baseline-tiny" and not model.training
        _assert_same_state(model, tiny_baseline_state, atol=2e-3)  # stored as fp16
    assert [e.name for e in bundled_weights()] == ["baseline-tiny"]
    assert model_info("baseline")["weights"][0]["name"] == "baseline-tiny"


def test_full_precision_round_trip_is_exact(weights_dir: Path) -> None:
    state = _random_state("baseline", hidden=3)
    model = create_model("baseline", hidden=3)
    model.load_state_dict(state)
    save_weights(model, weights_dir / "exact", name="exact", model_name="baseline", config=model.config,
                 input_size=32, colors="regression", half=False)
    _assert_same_state(create_model("exact"), state)


def test_missing_weights_give_actionable_errors(tiny_trained_weights: WeightsEntry) -> None:
    with pytest.raises(WeightsError, match=r"no weights for model 'baseline' with \{'hidden': 16\}"):
        create_model("baseline", pretrained=True, hidden=16)
    with pytest.raises(WeightsError, match="no weights named 'nope'"):
        create_model("baseline", pretrained="nope")
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights_file("/no/such/file.safetensors")


def test_tampered_file_is_refused(tiny_trained_weights: WeightsEntry) -> None:
    data = bytearray(tiny_trained_weights.file.read_bytes())
    data[-1] ^= 0xFF
    tiny_trained_weights.file.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="hash check"):
        create_model("baseline-tiny")


def test_card_problems(tiny_trained_weights: WeightsEntry, weights_dir: Path) -> None:
    (weights_dir / "broken.json").write_text("{not json")
    (weights_dir / "foreign.json").write_text(json.dumps({"format": "something-else"}))
    assert [e.name for e in bundled_weights()] == ["baseline-tiny"]  # broken cards are skipped
    lone = weights_dir / "lone.safetensors"
    lone.write_bytes(tiny_trained_weights.file.read_bytes())
    with pytest.raises(WeightsError, match="has no card"):
        load_weights_file(lone)


def test_wrong_architecture_is_refused(tiny_trained_weights: WeightsEntry, weights_dir: Path) -> None:
    card = json.loads((weights_dir / "baseline-tiny.json").read_text())
    card["config"] = {"hidden": 9}  # does not match the stored tensors
    (weights_dir / "baseline-tiny.json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="do not fit the model"):
        create_model("baseline-tiny")


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="unknown weights format '.bin'"):
        load_weights_file(path)
    with pytest.raises(WeightsError, match="unknown weights format"):
        create_model("baseline", pretrained=str(path))


def test_unpublished_pth_is_never_unpickled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "random.pth"
    torch.save(_random_state("baseline"), path)
    loads: list[object] = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a))
    with pytest.raises(WeightsError, match="not one of the published checkpoints"):
        load_weights_file(path)
    assert loads == []


# -- published .pth downloads (local file:// URLs) -----------------------------------------------------


def test_published_download_into_hub_cache(tmp_path: Path, hub_dir: Path) -> None:
    state = _random_state("baseline", seed=1)
    source, prefix = _publish(state, tmp_path / "server", "baseline")
    entry = _published_entry(source.as_uri(), prefix)
    model = load_entry(entry)
    cached = hub_dir / "checkpoints" / source.name
    assert cache_path(entry) == cached and cached.is_file()
    assert sha256_file(cached) == sha256_file(source)
    assert model.weights_entry is entry and not model.training
    _assert_same_state(model, state)
    assert not list(cached.parent.glob("*.partial"))

    source.unlink()  # the second load comes from the cache, without the network
    _assert_same_state(load_entry(entry), state)

    cached.write_bytes(cached.read_bytes()[:-10])  # a corrupted cache is refused, with the fix
    with pytest.raises(WeightsError, match="fails its hash check.*delete it"):
        load_entry(entry)


def test_unreachable_url_says_offline_and_where_to_put_the_file(hub_dir: Path) -> None:
    entry = _published_entry("http://127.0.0.1:9/x-deadbeef.pth", "deadbeef")
    with pytest.raises(WeightsError) as info:
        load_entry(entry)
    message = str(info.value)
    assert "offline" in message and str(hub_dir / "checkpoints" / "x-deadbeef.pth") in message
    assert "http://127.0.0.1:9/x-deadbeef.pth" in message
    assert not (hub_dir / "checkpoints" / "x-deadbeef.pth").exists()


def test_wrong_hash_prefix_is_refused(tmp_path: Path, hub_dir: Path) -> None:
    source, prefix = _publish(_random_state("baseline"), tmp_path / "server", "baseline")
    wrong = "0" * 8 if prefix != "0" * 8 else "1" * 8
    entry = _published_entry(source.as_uri(), wrong)
    with pytest.raises(WeightsError, match="hash"):
        load_entry(entry)
    assert not any((hub_dir / "checkpoints").glob("*"))  # nothing half-downloaded is kept


def test_published_pth_is_recognised_by_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = _random_state("baseline", seed=2)
    source, prefix = _publish(state, tmp_path / "server", "baseline")
    spec = registry.get_spec("baseline")
    entry = _published_entry("https://example.invalid/" + source.name, prefix)
    monkeypatch.setitem(registry._REGISTRY, "baseline", dataclasses.replace(spec, published=(entry,)))
    assert entry in available_weights("baseline")
    model = load_weights_file(source)  # a local copy of a published file: no download, hash identifies it
    assert model.weights_entry is entry
    _assert_same_state(model, state)


def test_published_eccv16_at_official_shapes(tmp_path: Path, hub_dir: Path) -> None:
    if "eccv16" not in list_models():
        pytest.skip("eccv16 is not registered")
    published = registry.get_spec("eccv16").published
    assert published, "eccv16 declares its published weights"
    official = published[0]
    assert official.url and official.url.endswith(f"-{official.sha256}.pth")
    state = _random_state("eccv16", **official.config)
    source, prefix = _publish(state, tmp_path / "server", "colorization_release_v2")
    entry = dataclasses.replace(official, url=source.as_uri(), sha256=prefix)
    model = load_entry(entry)  # strict load into the architecture the published entry names
    assert (hub_dir / "checkpoints" / source.name).is_file()
    for key in ("model_out.weight", next(iter(state))):
        torch.testing.assert_close(model.state_dict()[key], state[key])
