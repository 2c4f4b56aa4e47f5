"""The Streamlit twin without a browser (streamlit.testing): a rerun redoes only what changed."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_util import REPO, make_tiny_weights

from colorcore import studio

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("st-weights")
    make_tiny_weights(folder)
    return folder


@pytest.fixture
def calls(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of the costly studio calls the script makes (the script shares this process's modules)."""
    monkeypatch.setenv("COLORCORE_WEIGHTS_DIR", str(tiny_dir))
    studio.load_model.cache_clear()
    counts = {"run_comparison": 0, "score": 0, "temperature_sweep": 0}
    for name in counts:
        original = getattr(studio, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(studio, name, counted)
    yield counts
    studio.load_model.cache_clear()


def page_text(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


def test_reruns_reuse_the_comparison_and_its_metrics(calls: dict[str, int]):
    at = AppTest.from_file(str(REPO / "demo" / "streamlit_app.py"), default_timeout=300)
    at.run()
    assert not at.exception, at.exception
    # The picker shows plain names, the recommended one starred, with a line on each picked model.
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "(unet-palette): bright, flat colour" in captions
    at.button(key="run").click().run()
    assert not at.exception, at.exception
    assert calls == {"run_comparison": 1, "score": 1, "temperature_sweep": 0}
    assert "models in **" in page_text(at) or "model in **" in page_text(at)
    assert len(at.table) == 1
    # Any other click (here: a plain rerun, then another classifier in the classroom) redraws the stored
    # comparison without running a model or scoring again.
    at.run()
    at.selectbox(key="cls_model").select("unet-palette").run()
    assert not at.exception, at.exception
    assert calls["run_comparison"] == 1 and calls["score"] == 1
    assert len(at.table) == 1 and ("models in **" in page_text(at) or "model in **" in page_text(at))
    # The sweep runs on its button and is kept for the next rerun.
    at.button(key="sweep").click().run()
    at.run()
    assert calls["temperature_sweep"] == 1
