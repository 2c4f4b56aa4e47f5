"""How long a studio comparison takes as the user sees it: headless Chromium, click to last result.

Starts ``app.py`` with the bundled weights (or ``--weights``), uploads a photo of about ``--megapixels``,
and for each model set presses Colourise ``--repeat`` times (after one warm-up run), each time on a freshly
uploaded photo so the results start empty. It prints, per run, the seconds from the click until every
result slider shows both its pictures, until the metrics table is in and until the downloads are listed,
the studio's own wall-time note, and the summed per-model inference time read from the tiles. ``--profile``
adds the server's own milliseconds per handler and phase (Gradio's profiler). Not a test: it measures,
it does not judge.

Run it from the repository root as a module, so that it can import the browser tests' helpers:

    python -m scripts.bench_studio --threads 2 --repeat 3
    python -m scripts.bench_studio --models resnet-regression,eccv16-w25 --screenshot /tmp/studio.png
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

try:
    from tests.browser_util import REPO, chrome, chromium_missing, free_port, serve_gradio
except ModuleNotFoundError as exc:  # started as a file: the repository root is not on the import path
    if exc.name != "tests":
        raise
    raise SystemExit("run it from the repository root as `python -m scripts.bench_studio`") from exc

SIX = "resnet-regression,eccv16-w25,siggraph17-w25,unet-palette,pix2pix,autoencoder"


def make_photos(folder: Path, megapixels: float) -> list[Path]:
    """Two different colour photos of ``megapixels`` (upscaled examples; the pixels count, not detail)."""
    from PIL import Image

    out = []
    for name in ("coffee.jpg", "rocket.jpg"):
        with Image.open(REPO / "assets" / "examples" / name) as im:
            scale = (megapixels * 1e6 / (im.width * im.height)) ** 0.5
            big = im.convert("RGB").resize((round(im.width * scale), round(im.height * scale)),
                                           Image.Resampling.BICUBIC)
        path = folder / f"bench-{Path(name).stem}.jpg"
        big.save(path, quality=92)
        out.append(path)
    return out


def wait(predicate, timeout: float = 120.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # the page re-renders under us
            value = None
        if value:
            return value
        time.sleep(step)
    raise TimeoutError("the page did not get there in time")


# Clicks Colourise and times, in the page, when every slider shows both pictures, when the metrics
# table has its gray row and when the downloads are listed. It watches DOM changes and image loads
# instead of being polled: on a 2-core box, polling every 10 ms cost the server a third of its speed.
TIME_RUN = """
const [n, baseline, done] = arguments;
const t0 = performance.now(), out = {};
const sliders = () => {
  const shown = [...document.querySelectorAll('[id^=cc-slider-]')].filter(e => e.offsetParent !== null);
  return shown.length === n && shown.every(s => {
    const imgs = [...s.querySelectorAll('img')];
    return imgs.length >= 2 && imgs.every(i => i.complete && i.naturalWidth > 0);
  });
};
const table = () => [...document.querySelectorAll('#cc-metrics [role=gridcell]')]
  .some(c => c.textContent.includes(baseline));
const files = () => document.querySelectorAll('#cc-downloads a[download]').length >= n;
const check = () => {
  for (const [key, ready] of [['results', sliders], ['table', table], ['downloads', files]]) {
    if (out[key] === undefined && ready()) out[key] = (performance.now() - t0) / 1000;
  }
  if (Object.keys(out).length === 3) {
    observer.disconnect();
    document.removeEventListener('load', check, true);
    done(out);
  }
};
const observer = new MutationObserver(check);
observer.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
document.addEventListener('load', check, true);
document.getElementById('cc-run').click();
"""


def pick_models(driver, keys: list[str]) -> None:
    from selenium.webdriver.common.by import By

    for label in driver.find_elements(By.CSS_SELECTOR, "#cc-models label"):
        box = label.find_element(By.TAG_NAME, "input")
        if (box.get_attribute("name") in keys) != box.is_selected():
            label.click()
            time.sleep(0.3)  # let the knob-visibility round trip finish


def upload(driver, photo: Path) -> None:
    from selenium.webdriver.common.by import By

    for clear in driver.find_elements(By.CSS_SELECTOR, "#cc-photo button[aria-label='Clear']"):
        clear.click()
    field = wait(lambda: driver.find_element(By.CSS_SELECTOR, "#cc-photo input[type=file]"))
    field.send_keys(str(photo))
    wait(lambda: driver.find_element(By.ID, "cc-empty").is_displayed())  # old results cleared
    wait(lambda: driver.find_element(By.CSS_SELECTOR, "#cc-truth img").get_attribute("src"))
    time.sleep(1.5)  # the gray write-back and its echo


def one_run(driver, n: int) -> dict[str, float]:
    from selenium.webdriver.common.by import By

    from colorcore.studio import BASELINE_LABEL

    driver.set_script_timeout(120)
    run = dict(driver.execute_async_script(TIME_RUN, n, BASELINE_LABEL))
    captions = " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "[id^=cc-caption-]"))
    run["inference"] = sum(float(t) for t in re.findall(r"· (\d+\.\d+) s", captions))
    note = driver.find_element(By.ID, "cc-timing").text
    run["server"] = float(re.search(r"in (\d+\.\d+) s", note).group(1))
    return run


PHASES = ("queue_wait", "preprocess", "fn_call", "postprocess", "total")


def server_phases(url: str, since: int) -> list[str]:
    """Median milliseconds per phase of each event handler, from Gradio's profiler (``--profile``)."""
    with urllib.request.urlopen(f"{url}/gradio_api/profiling/traces", timeout=10) as resp:
        traces = json.load(resp)[since:]
    lines = []
    for name in dict.fromkeys(t["fn_name"] for t in traces):
        mine = [t for t in traces if t["fn_name"] == name]
        cells = "  ".join(f"{p} {statistics.median(t[p + '_ms'] for t in mine):6.0f}" for p in PHASES)
        lines.append(f"        {name:>18} ×{len(mine):<2} {cells}  ms")
    return lines


def trace_count(url: str) -> int:
    with urllib.request.urlopen(f"{url}/gradio_api/profiling/traces", timeout=10) as resp:
        return len(json.load(resp))


def main() -> int:
    from selenium.common.exceptions import TimeoutException

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", action="append",
                        help="comma-separated picker keys; repeatable (default: the default pick, then six)")
    parser.add_argument("--megapixels", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    parser.add_argument("--weights", type=Path, default=REPO / "assets" / "weights")
    parser.add_argument("--screenshot", type=Path, help="save the page after the last run here")
    parser.add_argument("--profile", action="store_true",
                        help="also print the server's own time per handler and phase (GRADIO_PROFILING)")
    args = parser.parse_args()
    if args.profile:
        os.environ["GRADIO_PROFILING"] = "1"  # the served app inherits it
    if (why := chromium_missing()) is not None:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    if not args.models:
        os.environ["COLORCORE_WEIGHTS_DIR"] = str(args.weights)
        from colorcore import studio

        args.models = [",".join(studio.default_selection(studio.list_choices())), SIX]
    with tempfile.TemporaryDirectory() as tmp:
        photos = make_photos(Path(tmp), args.megapixels)
        driver = chrome(Path(tmp) / "profile", width=1600, height=1400)
        try:
            with serve_gradio(free_port(), args.weights, threads=args.threads, timeout=180) as url:
                driver.get(url)
                wait(lambda: driver.find_element("css selector", "#cc-photo input[type=file]"))
                print(f"photo {args.megapixels:g} MP, server torch threads {args.threads}, "
                      f"{args.repeat} warm runs each (after one warm-up)")
                print(f"{'models':>6}  {'click→results':>13}  {'click→metrics':>13}  "
                      f"{'click→downloads':>15}  {'server wall':>11}  {'Σ inference':>11}")
                for spec in args.models:
                    keys = spec.split(",")
                    pick_models(driver, keys)
                    runs, since = [], 0
                    for i in range(args.repeat + 1):
                        if args.profile and i == 1:  # the warm-up's handlers do not count
                            since = trace_count(url)
                        upload(driver, photos[i % 2])
                        try:
                            run = one_run(driver, len(keys))
                        except (TimeoutError, TimeoutException):
                            driver.save_screenshot(str(Path(tmp).parent / "bench_studio_timeout.png"))
                            raise
                        if i:
                            runs.append(run)
                    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                    print(f"{len(keys):>6}  {med['results']:>12.2f}s  {med['table']:>12.2f}s  "
                          f"{med['downloads']:>14.2f}s  {med['server']:>10.2f}s  "
                          f"{med['inference']:>10.2f}s   ({spec}; runs: "
                          + ", ".join(f"{r['results']:.2f}" for r in runs) + ")")
                    if args.profile:
                        print("\n".join(server_phases(url, since)))
                if args.screenshot:
                    driver.execute_script("window.scrollTo(0, 0)")
                    driver.save_screenshot(str(args.screenshot))
        finally:
            driver.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
