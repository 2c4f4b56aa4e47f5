"""How long the Streamlit twin takes to answer each kind of click, in headless Chromium.

Starts ``demo/streamlit_app.py`` with the bundled weights (or ``--weights``), uploads a colour photo of
about ``--megapixels`` and times, from the click until the page shows the answer: a comparison of the
default models (Colourise, until the metrics table is in), a rerun that only redraws it (the "compare
with the ground truth" toggle), a pixel click in the Classroom (until that pixel's distribution is
shown) and the temperature sweep. A redraw and a pixel click must not cost a comparison: the last
comparison lives in ``st.session_state`` and the Classroom is a fragment. Not a test: it prints.

    python -m scripts.bench_streamlit --threads 2 --repeat 3
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import tempfile
from pathlib import Path

try:
    from scripts.bench_studio import make_photos, wait
    from tests.browser_util import REPO, chrome, chromium_missing, free_port, serve_streamlit
except ModuleNotFoundError as exc:  # started as a file: the repository root is not on the import path
    if exc.name not in {"scripts", "tests"}:
        raise
    raise SystemExit("run it from the repository root as `python -m scripts.bench_streamlit`") from exc

MAIN = "[data-testid=stMain]"


# The time of the page's last DOM change: a rerun is over when the page has been still for a while.
OBSERVE = """
if (!window.__ccObserver) {
  window.__ccLast = performance.now();
  window.__ccObserver = new MutationObserver(() => { window.__ccLast = performance.now(); });
  window.__ccObserver.observe(document.body, {subtree: true, childList: true, attributes: true,
                                              characterData: true});
}
return performance.now();
"""
STILL_MS = 600


def timed(driver, action, done=None) -> tuple[float, float]:
    """Seconds from ``action`` until ``done()`` first holds (the answer is on the page; NaN without
    ``done``), and until the page's last change once Streamlit is idle (its fades included)."""
    start = driver.execute_script(OBSERVE)
    action()
    answer = math.nan
    if done is not None:
        answer = wait(lambda: done() and driver.execute_script("return performance.now()"), timeout=180)

    def over() -> bool:
        last, now = driver.execute_script("return [window.__ccLast, performance.now()]")
        return last > start and now - last > STILL_MS and idle(driver)

    wait(over, timeout=180)
    return (answer - start) / 1000, (driver.execute_script("return window.__ccLast") - start) / 1000


def text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, MAIN).text


def idle(driver) -> bool:
    """Streamlit shows "Running..." / a Stop button in its header while a rerun is in flight."""
    from selenium.webdriver.common.by import By

    return "Stop" not in driver.find_element(By.CSS_SELECTOR, "header").text


def slider_left(driver) -> str:
    from selenium.webdriver.common.by import By

    pages = [f.get_attribute("srcdoc") or "" for f in driver.find_elements(By.CSS_SELECTOR, "iframe")]
    return next((page for page in pages if "cc-ba" in page), "")


def click_picture(driver, dx: int, dy: int) -> None:
    """Click the Classroom's clickable photo (dx, dy) px from its centre."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    frames = driver.find_elements(By.CSS_SELECTOR, "iframe[title*=streamlit_image_coordinates]")
    frame = next(f for f in frames if f.is_displayed())
    driver.switch_to.frame(frame)
    try:
        ActionChains(driver).move_to_element_with_offset(driver.find_element(By.TAG_NAME, "img"), dx, dy) \
            .click().perform()
    finally:
        driver.switch_to.default_content()


def js_click(driver, element) -> None:
    """A DOM click: a native one right after a widget is often swallowed by its focus handling."""
    driver.execute_script("arguments[0].click()", element)


def shown_pixel(driver) -> tuple[int, int] | None:
    found = re.search(r"pixel \((\d+), (\d+)\) of", text(driver))
    return (int(found.group(1)), int(found.group(2))) if found else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    parser.add_argument("--weights", type=Path, default=REPO / "assets" / "weights")
    args = parser.parse_args()
    if (why := chromium_missing()) is not None:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    from PIL import Image
    from selenium.webdriver.common.by import By

    from colorcore.studio import BASELINE_LABEL

    times: dict[str, list[tuple[float, float]]] = {"Colourise (2 models, to the metrics)": [],
                                     "redraw (truth toggle)": [], "Classroom pixel click": [],
                                     "temperature sweep": []}
    with tempfile.TemporaryDirectory() as tmp:
        photo = make_photos(Path(tmp), args.megapixels)[0]
        driver = chrome(Path(tmp) / "profile", width=1600, height=1400)
        try:
            with serve_streamlit(free_port(), args.weights, threads=args.threads, timeout=180) as url:
                driver.get(url)
                upload = wait(lambda: driver.find_elements(
                    By.CSS_SELECTOR, "[data-testid=stFileUploader] input[type=file]"), timeout=120)
                upload[0].send_keys(str(photo))
                with Image.open(photo) as im:
                    caption = f"Input the models see ({im.width}x{im.height})"
                wait(lambda: caption in text(driver), timeout=120)  # the upload, not an example
                wait(lambda: idle(driver))

                def button(label: str):
                    return next(b for b in driver.find_elements(By.CSS_SELECTOR, "button") if b.text == label)

                for i in range(args.repeat + 1):
                    note = re.search(r"models in [0-9.]+ s", text(driver))
                    colourise = timed(driver, lambda: js_click(driver, button("Colourise")),
                                      lambda note=note and note.group(0): BASELINE_LABEL in text(driver)
                                      and re.search(r"models in [0-9.]+ s", text(driver)).group(0) != note)
                    toggle = driver.find_element(By.CSS_SELECTOR,
                                                 "input[role=switch][aria-label^='Compare with']")
                    before = slider_left(driver)
                    redraw = timed(driver, lambda toggle=toggle: js_click(driver, toggle),
                                   lambda before=before: slider_left(driver) not in ("", before))
                    if i:  # the first round loads the models
                        times["Colourise (2 models, to the metrics)"].append(colourise)
                        times["redraw (truth toggle)"].append(redraw)
                tabs = driver.find_elements(By.CSS_SELECTOR, "[data-testid=stTab]")
                js_click(driver, next(t for t in tabs if "Classroom" in t.get_attribute("textContent")))
                wait(lambda: shown_pixel(driver), timeout=120)
                wait(lambda: idle(driver))
                for i in range(args.repeat + 1):
                    before = shown_pixel(driver)
                    click = timed(driver, lambda i=i: click_picture(driver, 30 + 10 * i, -30 - 5 * i),
                                  lambda before=before: shown_pixel(driver) not in (None, before))
                    # Its frames are the same each time: only the page's last change tells the end.
                    sweep = timed(driver, lambda: js_click(driver, button("Temperature sweep (T = 1 … 0)")))
                    if i:
                        times["Classroom pixel click"].append(click)
                        times["temperature sweep"].append(sweep)
        finally:
            driver.quit()
    print(f"photo {args.megapixels:g} MP, server torch threads {args.threads}, {args.repeat} runs each "
          "after one warm-up; seconds from the click until the answer shows / until the page is still")
    for name, values in times.items():
        answer, still = (statistics.median(v[k] for v in values) for k in (0, 1))
        shown = "     —  " if math.isnan(answer) else f"{answer:6.2f} s"
        runs = ", ".join(f"{v[1]:.2f}" for v in values)
        print(f"  {name:<38} {shown} / {still:5.2f} s   (still: {runs})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
