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
    DEFAULT_TINY,
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
    make_tiny_weights(folder, (*DEFAULT_TINY, "baseline-tiny2"))
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


@pytest.fixture(scope="module")
def gradio_url(weights: Path, tmp_path_factory: pytest.TempPathFactory):
    # An empty torch hub folder: the published weights are not there and cannot be downloaded offline.
    torch_home = tmp_path_factory.mktemp("torch-home")
    with serve_gradio(free_port(), weights, env={"TORCH_HOME": str(torch_home)}) as url:
        yield url


def pick(driver, keys: set[str]) -> None:
    """Tick exactly ``keys`` in the studio's model picker (unticking first, so six are never exceeded)."""
    from selenium.webdriver.common.by import By

    for _ in range(20):
        boxes = [(label, label.find_element(By.TAG_NAME, "input"))
                 for label in driver.find_elements(By.CSS_SELECTOR, "#cc-models label")]
        wrong = [(box.is_selected(), label) for label, box in boxes
                 if (box.get_attribute("name") in keys) != box.is_selected()]
        if not wrong:
            return
        max(wrong, key=lambda w: w[0])[1].click()  # an unwanted ticked one first
        time.sleep(0.5)  # the knob-visibility round trip
    raise AssertionError(f"could not pick {keys}")


def ticked(driver) -> set[str]:
    from selenium.webdriver.common.by import By

    return {b.get_attribute("name") for b in driver.find_elements(By.CSS_SELECTOR, "#cc-models input")
            if b.is_selected()}


def toasts(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [t.text for t in driver.find_elements(By.CSS_SELECTOR, "[data-testid=toast-body]")]


def upload_photo(driver, path: Path) -> None:
    from selenium.webdriver.common.by import By

    for clear in driver.find_elements(By.CSS_SELECTOR, "#cc-photo button[aria-label='Clear']"):
        clear.click()
    field = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#cc-photo input[type=file]"),
                     what="photo upload")
    field.send_keys(str(path))


def metrics_rows(driver) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    # Gradio 6 renders table bodies as virtual rows of grid cells.
    rows = driver.find_elements(By.CSS_SELECTOR, "#cc-metrics [role=row].virtual-row")
    cells = [[c.text.strip() for c in r.find_elements(By.CSS_SELECTOR, "[role=gridcell]")] for r in rows]
    return cells if any(row and row[0] == BASELINE_ROW for row in cells) else []


def shown_slots(driver) -> list[int]:
    from selenium.webdriver.common.by import By

    return [i for i in range(6)
            if any(e.is_displayed() for e in driver.find_elements(By.ID, f"cc-slider-{i}"))]


def test_gradio_studio(gradio_url: str, driver, tmp_path: Path):
    from selenium.webdriver.common.by import By

    photo = copy_example("coffee.jpg", tmp_path)
    css = driver.find_element
    driver.get(gradio_url)
    upload_photo(driver, photo)
    # A colour photo becomes the gray input; the colour original becomes the ground truth, said once.
    wait_for(lambda: css(By.CSS_SELECTOR, "#cc-photo img"), what="uploaded photo")
    wait_for(lambda: css(By.CSS_SELECTOR, "#cc-truth img").get_attribute("src"), what="ground truth")
    time.sleep(2)  # the gray write-back and its echo
    assert sum("Colour photo" in t for t in toasts(driver)) == 1, toasts(driver)

    pick(driver, {"eccv16-tiny", "unet-palette"})
    wait_for(lambda: css(By.ID, "cc-bins").is_displayed(), what="palette-size knob")
    assert css(By.ID, "cc-temperature").is_displayed()  # eccv16-tiny is a 313-bin model
    assert not driver.find_elements(By.CSS_SELECTOR, "#cc-hints canvas")  # no hinted model chosen
    css(By.ID, "cc-run").click()

    rows = wait_for(lambda: metrics_rows(driver), timeout=90, what="metrics table")
    headers = [th.text.strip()
               for th in driver.find_elements(By.CSS_SELECTOR, "#cc-metrics th[role=columnheader]")]
    assert headers[:3] == ["Model", "Weights", "Time (s)"] and "PSNR ↑" in headers and "ΔE2000 ↓" in headers
    assert sorted(r[1] for r in rows[:2]) == ["eccv16-tiny", "unet-palette-24"] and rows[2][1] == ""
    psnr = headers.index("PSNR ↑")
    assert all(5 < float(r[psnr]) < 60 for r in rows)
    assert all(float(r[2]) > 0 for r in rows[:2])  # inference time per model
    assert len(numbers(rows[0][3:])) == len(headers) - 3
    # The wait for the whole comparison is stated, not only each model's time.
    assert re.fullmatch(r"2 models in \d+\.\d\d s \(the models themselves: \d+\.\d\d s\)",
                        css(By.ID, "cc-timing").text)

    # Hidden slots are not rendered at all; the two results fill the first row, captions above them.
    assert shown_slots(driver) == [0, 1]
    captions = sorted(css(By.ID, f"cc-caption-{i}").text for i in (0, 1))
    # Plain names where the studio has one ("Poster colours"), else the weights name.
    assert captions[0].startswith("Poster colours (24) · ") and captions[1].startswith("eccv16-tiny · ")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#cc-slider-0 img")) >= 2  # before and after
    # Downloads are named after the uploaded file.
    downloads = wait_for(lambda: css(By.ID, "cc-downloads").text.replace("\n", ""), what="downloads")
    assert "coffee_eccv16-tiny.png" in downloads and "coffee_unet-palette-24.png" in downloads

    # The slider compares with the ground truth as well as with the gray input.
    def left_src() -> str:
        return css(By.CSS_SELECTOR, "#cc-slider-0 img").get_attribute("src")

    gray_src = left_src()
    assert "gray" in gray_src
    next(e for e in driver.find_elements(By.CSS_SELECTOR, "#cc-against label") if "truth" in e.text).click()
    wait_for(lambda: "truth" in left_src(), what="truth on the left of the slider")
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(artifacts_dir() / "gradio_studio.png"))

    # A seventh model cannot be ticked: the pick is undone with a message, the six stay.
    six = {"baseline-tiny", "eccv16-tiny", "unet-palette", "siggraph17-tiny", "eccv16-published",
           "siggraph17-published"}
    pick(driver, six)
    assert ticked(driver) == six
    for label in driver.find_elements(By.CSS_SELECTOR, "#cc-models label"):
        if label.find_element(By.TAG_NAME, "input").get_attribute("name") not in six:
            label.click()
            break
    wait_for(lambda: any("At most 6 models" in t for t in toasts(driver)), what="seven-model message")
    wait_for(lambda: ticked(driver) == six, what="seventh pick undone")

    # A new photo clears the old results, their metrics and downloads.
    upload_photo(driver, copy_example("rocket.jpg", tmp_path))
    wait_for(lambda: css(By.ID, "cc-empty").is_displayed() and not shown_slots(driver),
             what="results cleared")
    # Hidden components leave the page altogether.
    for gone in ("cc-metrics", "cc-downloads", "cc-timing", "cc-against"):
        assert not any(e.is_displayed() for e in driver.find_elements(By.ID, gone)), gone

    # At 820 px the results column stays beside the settings instead of dropping below them.
    driver.set_window_size(820, 1200)
    time.sleep(1)
    sidebar, results = css(By.ID, "cc-models"), css(By.ID, "cc-empty")
    assert results.location["x"] > sidebar.location["x"] + sidebar.size["width"] - 5
    assert results.location["y"] < sidebar.location["y"] + sidebar.size["height"]


def test_gradio_hint_colours_stay_off_the_photo(gradio_url: str, driver, tmp_path: Path):
    """The hint editor's colour swatches open as a column over its toolbar, left of the photo."""
    from selenium.webdriver.common.by import By

    driver.set_window_size(1024, 1200)  # narrow: the photo fills the editor's width
    driver.get(gradio_url)
    upload_photo(driver, copy_example("rocket.jpg", tmp_path))
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#cc-truth img").get_attribute("src"), what="truth")
    pick(driver, {"baseline-tiny", "siggraph17-tiny"})
    editor = wait_for(lambda: (e := driver.find_element(By.ID, "cc-hints")).find_element(
        By.TAG_NAME, "canvas").is_displayed() and e, what="hint editor")
    driver.execute_script("arguments[0].scrollIntoView()", editor)
    editor.find_element(By.CSS_SELECTOR, "button[aria-label=Color]").click()
    popup = wait_for(lambda: next((e for e in editor.find_elements(By.CSS_SELECTOR, ".wrap.padded")
                                   if e.is_displayed()), None), what="colour swatches")
    rect = "const b = arguments[0].getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom];"
    left, top, right, bottom = driver.execute_script(rect, popup)
    toolbar = driver.execute_script(rect, popup.find_element(By.XPATH, ".."))
    box = driver.execute_script(rect, editor)
    # The photo is drawn right of the toolbar: the swatches must not reach past it, nor leave the editor.
    assert right <= toolbar[2] + 6 and left >= box[0] and top >= box[1] and bottom <= box[3], (
        (left, top, right, bottom), toolbar, box)
    swatches = popup.find_elements(By.CSS_SELECTOR, "menu button.color")
    assert len(swatches) == 11
    assert not any(e.is_displayed() for e in editor.find_elements(By.CSS_SELECTOR, ".colorpicker"))
    swatches[4].click()  # wood brown: still a working choice
    wait_for(lambda: "selected" in (popup.find_elements(By.CSS_SELECTOR, "menu button.color")[4]
                                    .get_attribute("class")), what="a picked swatch")
    driver.save_screenshot(str(artifacts_dir() / "gradio_hint_colours.png"))


def test_gradio_offline_message_is_whole(gradio_url: str, driver, tmp_path: Path):
    """Published weights on an offline machine: the toast says what to download and where to put it."""
    from selenium.webdriver.common.by import By

    from colorcore.weights import available_weights

    entry = next(e for e in available_weights() if e.name == "eccv16-published")
    driver.get(gradio_url)
    upload_photo(driver, copy_example("astronaut.jpg", tmp_path))
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#cc-truth img").get_attribute("src"), what="truth")
    pick(driver, {"eccv16-published"})
    driver.find_element(By.ID, "cc-run").click()
    message = wait_for(lambda: next((t for t in toasts(driver) if "cannot download" in t), None),
                       timeout=60, what="offline message")
    flat = " ".join(message.split())
    assert entry.url in flat, flat
    # TORCH_HOME of the server: the folder the user must put the file in, named in full.
    file_name = re.escape(entry.url.rsplit("/", 1)[1])
    assert re.search(r"place it at /\S+/torch-home\d*/hub/checkpoints/" + file_name, flat), flat
    assert "urlopen error" in flat


def test_gradio_classroom_api_and_bad_files(gradio_url: str, driver, tmp_path: Path):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    css = driver.find_element
    driver.get(gradio_url)
    upload_photo(driver, copy_example("astronaut.jpg", tmp_path))  # 512 x 512
    wait_for(lambda: css(By.CSS_SELECTOR, "#cc-truth img").get_attribute("src"), what="truth")

    # Classroom: clicking a pixel draws that pixel's distribution and marks the pixel on the photo.
    tabs = driver.find_elements(By.CSS_SELECTOR, "button[role=tab]")
    next(t for t in tabs if t.text == "Classroom").click()
    assert css(By.CSS_SELECTOR, "#cc-cls-model input").get_attribute("value").startswith("eccv16-tiny")
    image = wait_for(lambda: css(By.CSS_SELECTOR, "#cc-cls-image img"), what="classroom photo")
    wait_for(lambda: image.is_displayed() and image.size["width"] > 50, what="classroom photo layout")
    before = image.get_attribute("src")
    width = image.size["width"]
    ActionChains(driver).move_to_element_with_offset(image, 10, -20).click().perform()
    summary = wait_for(lambda: "entropy" in (text := css(By.ID, "cc-cls-summary").text) and text,
                       timeout=60, what="distribution summary")
    assert "313 bins" in summary
    # The click 10 px right of and 20 px above the centre of the displayed photo lands on that pixel.
    x, y = (int(v) for v in re.search(r"pixel \((\d+), (\d+)\) of 512x512", summary).groups())
    scale = width / 512
    assert abs(x - (256 + 10 / scale)) <= 2 and abs(y - (256 - 20 / scale)) <= 2, (x, y, scale)
    wait_for(lambda: css(By.CSS_SELECTOR, "#cc-cls-image img").get_attribute("src") != before,
             what="the clicked pixel marked on the photo")
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#cc-plot img, #cc-plot svg"), what="plot")
    driver.save_screenshot(str(artifacts_dir() / "gradio_classroom.png"))

    # The API tab names the port this page came from, and Gradio's "Use via API" link is there.
    next(t for t in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if t.text == "API").click()
    port = gradio_url.rsplit(":", 1)[1]
    wait_for(lambda: f"127.0.0.1:{port}" in css(By.ID, "cc-api-help").text, what="API help with the port")
    assert any("API" in a.text for a in driver.find_elements(By.CSS_SELECTOR, "footer a, footer button"))

    # A decompression bomb dropped on the photo is refused in words, and leaves no broken picture behind.
    from hostile import _png_header_only

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(20000, 20000))
    next(t for t in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if t.text == "Studio").click()
    driver.execute_script("window.scrollTo(0, 0)")
    upload_photo(driver, bomb)
    wait_for(lambda: "above the 40 MP limit" in css(By.TAG_NAME, "body").text, timeout=60,
             what="bomb refusal message")
    wait_for(lambda: not driver.find_elements(By.CSS_SELECTOR, "#cc-photo img"), what="photo box emptied")
    assert css(By.CSS_SELECTOR, "#cc-photo input[type=file]")  # ready for the next photo

    # Other bad files: each gets its own message, and the photo box never shows a broken picture.
    for name, content, says in bad_files():
        path = tmp_path / name
        path.write_bytes(content)
        for close in driver.find_elements(By.CSS_SELECTOR, "[data-testid=toast-close]"):
            try:
                close.click()
            except StaleElementReferenceException:
                pass  # the toast timed out between finding and clicking it
        upload_photo(driver, path)
        wait_for(lambda says=says: any(says in t for t in toasts(driver)), timeout=60, what=f"{name}: {says}")
        assert no_broken_photo(driver), name
        assert css(By.CSS_SELECTOR, "#cc-photo input[type=file]"), name


def bad_files() -> list[tuple[str, bytes, str]]:
    """(file name, content, what the message must say) of files the photo box must refuse in words."""
    import io

    from PIL import Image

    jpeg = io.BytesIO()
    Image.new("RGB", (600, 400), (200, 100, 50)).save(jpeg, "JPEG")
    huge = io.BytesIO()
    Image.new("L", (9000, 9000), 128).save(huge, "JPEG", quality=50)  # 81 MP in a few hundred KB
    return [("notes.png", b"some text, renamed to .png\n", "notes.png: not a recognised image file"),
            ("empty.png", b"", "empty.png: the file is empty"),
            ("cut.jpg", jpeg.getvalue()[:len(jpeg.getvalue()) // 2],
             "cut.jpg: cannot decode the JPEG image (the file is truncated)"),
            ("huge.jpg", huge.getvalue(), "huge.jpg: image is 9000x9000 = 81 MP, above the 40 MP limit"),
            ("doc.pdf", b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "Invalid file type: doc.pdf")]


def no_broken_photo(driver, seconds: float = 2.0) -> bool:
    """True when, watched for ``seconds``, the photo box shows no picture that failed to load."""
    from selenium.webdriver.common.by import By

    broken = "return [...arguments[0]].some(i => i.complete && i.naturalWidth === 0)"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if driver.execute_script(broken, driver.find_elements(By.CSS_SELECTOR, "#cc-photo img")):
            return False
        time.sleep(0.05)
    return not driver.find_elements(By.CSS_SELECTOR, "#cc-photo img")


def test_streamlit_twin(weights: Path, driver, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    photo = copy_example("coffee.jpg", tmp_path)
    main = "section.main, [data-testid=stMain]"
    with serve_streamlit(free_port(), weights) as url:
        driver.get(url)
        uploads = wait_for(lambda: driver.find_elements(
            By.CSS_SELECTOR, "[data-testid=stFileUploader] input[type=file]"), timeout=120, what="uploaders")
        uploads[0].send_keys(str(photo))
        uploader = "[data-testid=stFileUploader]"
        wait_for(lambda: "coffee.jpg" in driver.find_element(By.CSS_SELECTOR, uploader).text
                 and "No upload yet" not in driver.page_source, what="uploaded photo in use")

        # The recommended model is picked, its chip shows the plain name in full; add a 313-bin one.
        chip = wait_for(lambda: driver.find_element(
            By.CSS_SELECTOR, "[data-testid=stMultiSelect] button[aria-label^='Remove ']"), what="model chip")
        assert chip.get_attribute("aria-label") == "Remove ★ Poster colours"
        # Not cut off: the chip's text fits in the chip.
        fits = "const t = arguments[0].parentElement; return t.scrollWidth <= t.clientWidth"
        assert driver.execute_script(fits, chip)
        box = driver.find_element(By.CSS_SELECTOR, "[data-testid=stMultiSelect] input")
        box.click()
        box.send_keys("eccv16-tiny")
        box.send_keys(Keys.ENTER)
        box.send_keys(Keys.ESCAPE)  # close the options list, or the next click only closes it
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "button[aria-label^='Remove eccv16-tiny']"),
                 what="313-bin model added")
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

        rows = wait_for(table_rows, timeout=120, what="metrics table")
        headers = [h.text.strip()
                   for h in driver.find_elements(By.CSS_SELECTOR, "[data-testid=stTable] thead th")]
        names = [next(c for c in r if c in {"eccv16-tiny", "unet-palette-24", BASELINE_ROW}) for r in rows]
        assert names == ["unet-palette-24", "eccv16-tiny", BASELINE_ROW]
        psnr = headers.index("PSNR ↑") - (len(headers) - len(rows[0]))
        assert all(5 < float(r[psnr]) < 60 for r in rows)
        text = driver.find_element(By.CSS_SELECTOR, main).text
        assert "eccv16-tiny · " in text and "Poster colours (24) · " in text
        assert re.search(r"2 models in \d+\.\d\d s \(the models themselves", text)
        wait_for(lambda: "Stop" not in driver.find_element(By.CSS_SELECTOR, "header").text,
                 what="run finished")

        # Each result has a before/after slider: two pictures under a range control.
        def slider_frames():
            return [f for f in driver.find_elements(By.CSS_SELECTOR, "iframe")
                    if "cc-ba" in (f.get_attribute("srcdoc") or "")]

        frames = wait_for(lambda: len(slider_frames()) == 2 and slider_frames(), what="two sliders")
        assert "gray input" in frames[0].get_attribute("srcdoc")
        driver.switch_to.frame(frames[0])
        try:
            def pictures_loaded() -> bool:
                imgs = driver.find_elements(By.CSS_SELECTOR, ".cc-ba img")
                return len(imgs) == 2 and all(driver.execute_script("return arguments[0].naturalWidth", i) > 0
                                              for i in imgs)

            wait_for(pictures_loaded, what="slider pictures")
            assert driver.find_elements(By.CSS_SELECTOR, ".cc-ba input[type=range]")
        finally:
            driver.switch_to.default_content()
        # ... and compares with the ground truth on request.
        toggle = driver.find_element(By.CSS_SELECTOR, "input[role=switch][aria-label^='Compare with']")
        driver.execute_script("arguments[0].click()", toggle)
        wait_for(lambda: slider_frames() and "ground truth" in slider_frames()[0].get_attribute("srcdoc"),
                 what="slider against the truth")
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
        wait_for(lambda: "0 hint(s)" in driver.find_element(By.CSS_SELECTOR, main).text, what="hint picker")
        click_image(wait_for(click_frames, what="hint picture")[0], -30, -20)
        wait_for(lambda: "1 hint(s)" in driver.find_element(By.CSS_SELECTOR, main).text, what="first hint")
        click_image(wait_for(click_frames, what="hint picture")[0], 25, 30)
        wait_for(lambda: "2 hint(s)" in driver.find_element(By.CSS_SELECTOR, main).text, what="second hint")
        run = next(b for b in driver.find_elements(By.CSS_SELECTOR, "button") if b.text == "Colourise")
        driver.execute_script("arguments[0].click()", run)
        try:
            wait_for(lambda: any("siggraph17-tiny" in row for row in table_rows()), timeout=120,
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

        assert wait_for(shown_pixel, what="centre pixel") == (300, 200, 600, 400)  # before any click
        click_image(wait_for(click_frames, what="classroom picture")[0], 40, -40)
        x, y, w, h = wait_for(lambda: (p := shown_pixel()) != (300, 200, 600, 400) and p, timeout=120,
                              what="distribution of the clicked pixel")
        assert x > w // 2 and y < h // 2, (x, y)  # right of and above the centre, as clicked
        driver.save_screenshot(str(artifacts_dir() / "streamlit_classroom.png"))

        # A second upload becomes the photo to colourise (the selector used to stay on the first): the
        # classroom then shows the 512x512 astronaut instead of the 600x400 coffee.
        second = copy_example("astronaut.jpg", tmp_path)
        driver.find_elements(By.CSS_SELECTOR, UPLOADER)[0].send_keys(str(second))
        wait_for(lambda: (p := shown_pixel()) is not None and p[2:] == (512, 512), timeout=120,
                 what="the new upload selected")


UPLOADER = "[data-testid=stFileUploader] input[type=file]"


def test_streamlit_bad_files(weights: Path, driver, tmp_path: Path):
    """Each bad photo gets a message naming the file and what is wrong, and no broken picture."""
    from selenium.webdriver.common.by import By

    # Bytes, not a file: colorcore words an empty upload differently; Streamlit refuses a PDF itself.
    own_words = {"empty.png": "empty.png: the image data is empty",
                 "doc.pdf": "application/pdf files are not allowed"}
    with serve_streamlit(free_port(), weights) as url:
        for name, content, says in bad_files():
            path = tmp_path / name
            path.write_bytes(content)
            driver.get(url)  # a fresh session: one upload, and it is the photo in use
            # The first run drawn in full (an example in use), or a file sent earlier can be dropped.
            wait_for(lambda: "No upload yet" in driver.find_element(By.TAG_NAME, "body").text
                     and "Input the models see" in driver.find_element(By.TAG_NAME, "body").text,
                     timeout=120, what="first run")
            driver.find_element(By.CSS_SELECTOR, UPLOADER).send_keys(str(path))
            says = own_words.get(name, says)
            wait_for(lambda says=says: says in driver.find_element(By.TAG_NAME, "body").text, timeout=60,
                     what=f"{name}: {says}")
            broken = "return [...document.images].some(i => i.complete && i.naturalWidth === 0)"
            assert not driver.execute_script(broken), name
            if name != "doc.pdf":  # refused before the app sees it
                assert "<" not in driver.find_element(By.CSS_SELECTOR, "[data-testid=stAlert]").text, name
