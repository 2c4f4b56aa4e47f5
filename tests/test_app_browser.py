"""Both apps in a real headless chromium: upload a photo, pick two models, run, read the metrics table.

Each app runs as a subprocess on a free port with tiny random weights; screenshots go to
tests/artifacts/. Skipped, with the reason, when Debian chromium and chromedriver are missing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from browser_util import (
    artifacts_dir,
    chrome,
    chromium_missing,
    copy_example,
    free_port,
    make_tiny_weights,
    serve_gradio,
    serve_streamlit,
)

from colorcore.studio import BASELINE_LABEL

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or "")]

BASELINE_ROW = BASELINE_LABEL


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("browser-weights")
    make_tiny_weights(folder)
    return folder


@pytest.fixture
def driver(tmp_path: Path):
    d = chrome(tmp_path / "profile")
    yield d
    d.quit()


def wait_for(predicate: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> object:
    """Poll ``predicate`` until it returns something truthy (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # stale or missing elements while the page re-renders
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last})")


def numbers(cells: list[str]) -> list[float]:
    return [float(c) for c in cells if c.strip() not in {"", "—", "None"}]


def test_gradio_studio(weights: Path, driver, tmp_path: Path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    photo = copy_example("dog.jpg", tmp_path)
    css = driver.find_element
    with serve_gradio(free_port(), weights) as url:
        driver.get(url)
        upload = wait_for(lambda: css(By.CSS_SELECTOR, "#cc-photo input[type=file]"), what="photo upload")
        upload.send_keys(str(photo))
        # A colour photo becomes the gray input; the colour original becomes the ground truth.
        wait_for(lambda: css(By.CSS_SELECTOR, "#cc-photo img"), what="uploaded photo")
        wait_for(lambda: css(By.CSS_SELECTOR, "#cc-truth img").get_attribute("src"), what="ground truth")

        # Pick exactly two models: drop the default regression, add the palette group.
        for label in driver.find_elements(By.CSS_SELECTOR, "#cc-models label"):
            name = label.find_element(By.TAG_NAME, "input").get_attribute("name")
            if name in {"baseline-tiny", "unet-palette"}:
                label.click()
        wait_for(lambda: css(By.ID, "cc-bins").is_displayed(), what="palette-size knob")
        assert css(By.ID, "cc-temperature").is_displayed()  # eccv16-tiny is a 313-bin model
        assert not driver.find_elements(By.CSS_SELECTOR, "#cc-hints canvas")  # no hinted model chosen

        css(By.ID, "cc-run").click()

        def table_rows() -> list[list[str]]:
            # Gradio 6 renders table bodies as virtual rows of grid cells.
            rows = driver.find_elements(By.CSS_SELECTOR, "#cc-metrics [role=row].virtual-row")
            cells = [[c.text.strip() for c in r.find_elements(By.CSS_SELECTOR, "[role=gridcell]")]
                     for r in rows]
            return cells if any(row and row[0] == BASELINE_ROW for row in cells) else []

        rows = wait_for(table_rows, timeout=90, what="metrics table")
        headers = [th.text.strip()
                   for th in driver.find_elements(By.CSS_SELECTOR, "#cc-metrics th[role=columnheader]")]
        assert headers[:2] == ["Model", "Time (s)"] and "PSNR ↑" in headers and "ΔE2000 ↓" in headers
        assert [r[0] for r in rows] == ["eccv16-tiny", "unet-palette-24", BASELINE_ROW]
        psnr = headers.index("PSNR ↑")
        assert all(5 < float(r[psnr]) < 60 for r in rows)
        assert all(float(r[1]) > 0 for r in rows[:2])  # inference time per model
        assert len(numbers(rows[0][2:])) == len(headers) - 2

        # Hidden slots are not rendered at all; the two results fill the first row.
        shown = [i for i in range(6)
                 if any(e.is_displayed() for e in driver.find_elements(By.ID, f"cc-slider-{i}"))]
        assert shown == [0, 1]
        assert "eccv16-tiny" in css(By.ID, "cc-slider-0").text
        assert len(driver.find_elements(By.CSS_SELECTOR, "#cc-slider-0 img")) >= 2  # before and after
        downloads = css(By.ID, "cc-downloads").text.replace("\n", "")
        assert "photo_eccv16-tiny.png" in downloads and "photo_unet-palette-24.png" in downloads
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(artifacts_dir() / "gradio_studio.png"))

        # Several photos at once: both are colourised by both models into PNG files.
        second = copy_example("car.jpg", tmp_path)
        next(e for e in driver.find_elements(By.CSS_SELECTOR, "button, span")
             if e.text.strip().startswith("Several photos at once")).click()
        files = wait_for(lambda: css(By.CSS_SELECTOR, "#cc-files input[type=file]"), what="batch upload")
        files.send_keys(f"{photo}\n{second}")
        batch = wait_for(lambda: next(b for b in driver.find_elements(By.TAG_NAME, "button")
                                      if b.text.startswith("Colourise all")), what="batch button")
        batch.click()
        names = [f"{stem}_{model}.png" for stem in ("dog", "car")
                 for model in ("eccv16-tiny", "unet-palette-24")]
        wait_for(lambda: all(n in css(By.ID, "cc-downloads").text.replace("\n", "") for n in names),
                 timeout=60, what="batch downloads")

        # Classroom: clicking a pixel draws that pixel's distribution over the 313 bins.
        tabs = driver.find_elements(By.CSS_SELECTOR, "button[role=tab]")
        next(t for t in tabs if t.text == "Classroom").click()
        image = wait_for(lambda: css(By.CSS_SELECTOR, "#cc-cls-image img"), what="classroom photo")
        wait_for(lambda: image.is_displayed() and image.size["width"] > 50, what="classroom photo layout")
        ActionChains(driver).move_to_element_with_offset(image, 10, -20).click().perform()
        summary = wait_for(lambda: "entropy" in (text := css(By.ID, "cc-cls-summary").text) and text,
                           timeout=60, what="distribution summary")
        assert "313 bins" in summary
        # The 128 px photo is shown enlarged; the click 10 px right of and 20 px above the centre of the
        # displayed image must land on the matching pixel of the photo itself.
        x, y = (int(v) for v in re.search(r"pixel \((\d+), (\d+)\) of 128x128", summary).groups())
        scale = image.size["width"] / 128
        assert abs(x - (64 + 10 / scale)) <= 2 and abs(y - (64 - 20 / scale)) <= 2, (x, y, scale)
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#cc-plot img, #cc-plot svg"), what="plot")
        driver.save_screenshot(str(artifacts_dir() / "gradio_classroom.png"))

        # A decompression bomb dropped on the photo is refused by colorcore.io, in words, before decoding.
        from hostile import _png_header_only

        bomb = tmp_path / "bomb.png"
        bomb.write_bytes(_png_header_only(20000, 20000))
        tabs = driver.find_elements(By.CSS_SELECTOR, "button[role=tab]")
        next(t for t in tabs if t.text == "Studio").click()
        driver.execute_script("window.scrollTo(0, 0)")
        for clear in driver.find_elements(By.CSS_SELECTOR, "#cc-photo button[aria-label='Clear']"):
            clear.click()
        upload = wait_for(lambda: css(By.CSS_SELECTOR, "#cc-photo input[type=file]"), what="empty photo")
        upload.send_keys(str(bomb))
        wait_for(lambda: "above the 40 MP limit" in css(By.TAG_NAME, "body").text, timeout=60,
                 what="bomb refusal message")


def test_streamlit_twin(weights: Path, driver, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    photo = copy_example("flowers.jpg", tmp_path)
    with serve_streamlit(free_port(), weights) as url:
        driver.get(url)
        uploads = wait_for(lambda: driver.find_elements(
            By.CSS_SELECTOR, "[data-testid=stFileUploader] input[type=file]"), what="uploaders")
        uploads[0].send_keys(str(photo))
        uploader = "[data-testid=stFileUploader]"
        wait_for(lambda: "flowers.jpg" in driver.find_element(By.CSS_SELECTOR, uploader).text
                 and "No upload yet" not in driver.page_source, what="uploaded photo in use")

        # Two models: remove the default regression, type the palette group into the multiselect.
        remove_baseline = "button[aria-label^='Remove baseline-tiny']"
        driver.find_element(By.CSS_SELECTOR, remove_baseline).click()
        wait_for(lambda: not driver.find_elements(By.CSS_SELECTOR, remove_baseline), what="baseline removed")
        box = driver.find_element(By.CSS_SELECTOR, "[data-testid=stMultiSelect] input")
        box.click()
        box.send_keys("unet-palette")
        box.send_keys(Keys.ENTER)
        box.send_keys(Keys.ESCAPE)  # close the options list, or the next click only closes it
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "button[aria-label^='Remove unet-palette']"),
                 what="palette model added")
        sidebar = "[data-testid=stSidebar]"
        wait_for(lambda: "Palette colours" in driver.find_element(By.CSS_SELECTOR, sidebar).text,
                 what="palette knob")

        run = next(b for b in driver.find_elements(By.CSS_SELECTOR, "button") if b.text == "Colourise")
        # A native click right after the multiselect is swallowed by its focus handling; a DOM click is not.
        driver.execute_script("arguments[0].click()", run)

        def table_rows() -> list[list[str]]:
            rows = driver.find_elements(By.CSS_SELECTOR, "[data-testid=stTable] tbody tr")
            cells = [[c.text.strip() for c in r.find_elements(By.CSS_SELECTOR, "th, td")] for r in rows]
            return cells if any(BASELINE_ROW in row for row in cells) else []

        rows = wait_for(table_rows, timeout=90, what="metrics table")
        headers = [h.text.strip()
                   for h in driver.find_elements(By.CSS_SELECTOR, "[data-testid=stTable] thead th")]
        names = [next(c for c in r if c in {"eccv16-tiny", "unet-palette-24", BASELINE_ROW}) for r in rows]
        assert names == ["eccv16-tiny", "unet-palette-24", BASELINE_ROW]
        psnr = headers.index("PSNR ↑") - (len(headers) - len(rows[0]))
        assert all(5 < float(r[psnr]) < 60 for r in rows)
        captions = driver.find_element(By.CSS_SELECTOR, "section.main, [data-testid=stMain]").text
        assert "eccv16-tiny ·" in captions and "unet-palette-24 ·" in captions
        wait_for(lambda: "Stop" not in driver.find_element(By.CSS_SELECTOR, "header").text,
                 what="run finished")
        driver.save_screenshot(str(artifacts_dir() / "streamlit_studio.png"))

        def click_image(frame, dx: int, dy: int) -> None:
            """Click the picture inside a click-coordinates component, (dx, dy) px from its centre."""
            from selenium.webdriver.common.action_chains import ActionChains

            driver.switch_to.frame(frame)
            try:
                img = wait_for(lambda: driver.find_element(By.TAG_NAME, "img"), what="clickable picture")
                wait_for(lambda: img.size["width"] > 50, what="picture layout")
                ActionChains(driver).move_to_element_with_offset(img, dx, dy).click().perform()
            finally:
                driver.switch_to.default_content()

        def click_frames():
            frames = driver.find_elements(By.CSS_SELECTOR, "iframe[title*=streamlit_image_coordinates]")
            return [f for f in frames if f.is_displayed()]

        # Hints: adding the user-guided model shows the photo; each click drops one hint in the chosen colour.
        box = driver.find_element(By.CSS_SELECTOR, "[data-testid=stMultiSelect] input")
        box.click()
        box.send_keys("siggraph17-tiny")
        box.send_keys(Keys.ENTER)
        box.send_keys(Keys.ESCAPE)
        main = "section.main, [data-testid=stMain]"
        wait_for(lambda: "0 hint(s)" in driver.find_element(By.CSS_SELECTOR, main).text, what="hint picker")
        click_image(wait_for(click_frames, what="hint picture")[0], -30, -20)
        wait_for(lambda: "1 hint(s)" in driver.find_element(By.CSS_SELECTOR, main).text, what="first hint")
        click_image(wait_for(click_frames, what="hint picture")[0], 25, 30)
        wait_for(lambda: "2 hint(s)" in driver.find_element(By.CSS_SELECTOR, main).text, what="second hint")
        run = next(b for b in driver.find_elements(By.CSS_SELECTOR, "button") if b.text == "Colourise")
        driver.execute_script("arguments[0].click()", run)
        try:
            wait_for(lambda: any("siggraph17-tiny" in row for row in table_rows()), timeout=90,
                     what="hinted model's row")
        finally:
            driver.save_screenshot(str(artifacts_dir() / "streamlit_hints.png"))

        # Classroom: clicking a pixel of the input shows that pixel's distribution.
        tabs = driver.find_elements(By.CSS_SELECTOR, "[data-testid=stTab]")
        classroom = next(t for t in tabs if "Classroom" in t.get_attribute("textContent"))
        driver.execute_script("arguments[0].click()", classroom)  # the tab bar may be scrolled out of view
        def shown_pixel() -> tuple[int, ...] | None:
            found = re.search(r"pixel \((\d+), (\d+)\) of (\d+)x(\d+)",
                              driver.find_element(By.CSS_SELECTOR, main).text)
            return tuple(int(v) for v in found.groups()) if found else None

        assert wait_for(shown_pixel, what="centre pixel") == (64, 64, 128, 128)  # before any click
        click_image(wait_for(click_frames, what="classroom picture")[0], 40, -40)
        x, y, w, h = wait_for(lambda: (p := shown_pixel()) != (64, 64, 128, 128) and p, timeout=60,
                              what="distribution of the clicked pixel")
        assert x > w // 2 and y < h // 2, (x, y)  # right of and above the centre, as clicked
        driver.save_screenshot(str(artifacts_dir() / "streamlit_classroom.png"))
