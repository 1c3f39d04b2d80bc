"""The pages a person looks at, in a real headless browser (Debian's chromium + chromium-driver, driven by
selenium): the demo page of a real `nertune serve` on loopback, and report.html of a real `nertune evaluate`.

Without chromium the tests skip, naming the install command; with NERTUNE_REQUIRE_BROWSER=1 (CI) they fail.
NERTUNE_SCREENSHOT_DIR=DIR keeps a screenshot of each page there (to look at; they are not committed).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import make_sentences, running_server, subprocess_env, write_conll

INSTALL = "apt-get update && apt-get install -y chromium chromium-driver"


def _missing_browser() -> str | None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return f"chromium and chromium-driver are not installed: {INSTALL}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]'"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator:
    missing = _missing_browser()
    if missing:
        if os.environ.get("NERTUNE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"NERTUNE_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console messages, read by console_errors
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[str]:
    """The console's errors since the last call (failed loads, script errors)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait_for(driver, condition, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def screenshot(driver, path: Path) -> Path:
    """The whole page, beyond the window, as a PNG (Chrome DevTools); copied to $NERTUNE_SCREENSHOT_DIR if set."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    if os.environ.get("NERTUNE_SCREENSHOT_DIR"):
        Path(os.environ["NERTUNE_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["NERTUNE_SCREENSHOT_DIR"]) / path.name)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def highlighted(driver) -> list[tuple[str, str]]:
    """(type, text) of every entity the demo page marked, in order (the mark's text without its label)."""
    marks = driver.execute_script(
        "return [...document.querySelectorAll('#output mark.entity')].map(m => [m.dataset.type, m.firstChild.data])"
    )
    return [tuple(mark) for mark in marks]


def predict_on_page(driver, text: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "run").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "json").text != "{}" and d.find_element(By.ID, "run").is_enabled())


def test_demo_page_highlights_the_entities_of_a_prediction(browser, trained_model_dir, tmp_path):
    from selenium.webdriver.common.by import By

    with running_server(trained_model_dir, tmp_path / "server.log") as url:
        browser.get(f"{url}/")
        assert browser.title == "nertune demo"
        wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#legend span"))  # /info answered
        assert not browser.find_element(By.ID, "api-key").is_displayed()  # no key configured: no key field
        predict_on_page(browser, "John works at Google in Paris today.")
        assert highlighted(browser) == [("PER", "John"), ("ORG", "Google"), ("LOC", "Paris")]
        colours = browser.execute_script(
            "return [...document.querySelectorAll('#output mark.entity')].map(m => getComputedStyle(m).backgroundColor)"
        )
        assert len(set(colours)) == 3  # one colour per type
        rows = browser.find_elements(By.CSS_SELECTOR, "#entities tbody tr")
        assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == ["John", "Google", "Paris"]
        assert '"type": "PER"' in browser.find_element(By.ID, "json").text
        assert console_errors(browser) == []
        screenshot(browser, tmp_path / "demo-page.png")

        # A bad request shows the server's message rather than failing silently.
        predict_on_page(browser, "x" * 10_001)  # over --max-chars
        assert browser.find_element(By.ID, "error").text.startswith("413")


def test_demo_page_asks_for_the_api_key(browser, trained_model_dir, tmp_path):
    from selenium.webdriver.common.by import By

    key_file = tmp_path / "key.txt"
    key_file.write_text("s3cret-key\n")
    with running_server(trained_model_dir, tmp_path / "server.log", "--api-key-file", str(key_file)) as url:
        browser.get(f"{url}/")  # the page itself is open
        wait_for(browser, lambda d: d.find_element(By.ID, "api-key").is_displayed())  # /info answered 401
        predict_on_page(browser, "mary lives in rome .")
        assert browser.find_element(By.ID, "error").text.startswith("401") and highlighted(browser) == []
        browser.find_element(By.ID, "api-key").send_keys("s3cret-key")
        predict_on_page(browser, "mary lives in rome .")
        assert highlighted(browser) == [("PER", "mary"), ("LOC", "rome")]
        assert not browser.find_element(By.ID, "error").is_displayed()
        console_errors(browser)  # the 401s above are logged as failed loads: expected here


def _test_file_with_errors(path: Path) -> Path:
    """Synthetic sentences whose gold differs from what the model predicts: type, boundary and missed errors."""
    sentences = []
    for i, (tokens, tags) in enumerate(make_sentences(30, seed=11)):
        tags = list(tags)
        if i % 3 == 0:  # LOC written as ORG: a type error
            tags = [t.replace("LOC", "ORG") for t in tags]
        if i % 4 == 1 and tags[1] == "O":  # the person's span one word longer: a boundary error
            tags[1] = "I-PER"
        if i % 5 == 2:  # an extra gold entity on the full stop: missed
            tags[-1] = "B-ORG"
        sentences.append((tokens, tags))
    return write_conll(path, sentences)


def test_evaluation_report_has_its_tables(browser, trained_run_copy, tmp_path):
    from selenium.webdriver.common.by import By

    test_file = _test_file_with_errors(tmp_path / "noisy.conll")
    done = subprocess.run(
        [sys.executable, "-m", "nertune.cli", "evaluate", str(trained_run_copy), f"data.test_file={test_file}",
         "name=noisy", "bootstrap=200"],
        env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    report = trained_run_copy / "eval" / "noisy" / "report.html"
    browser.get(report.as_uri())
    assert console_errors(browser) == []
    types = [
        r.get_attribute("data-type") for r in browser.find_elements(By.CSS_SELECTOR, "#per-type tbody tr[data-type]")
    ]
    assert types == ["LOC", "ORG", "PER"]
    # Every per-type row has its interval; the micro row its own.
    assert all("[" in r.text for r in browser.find_elements(By.CSS_SELECTOR, "#per-type tbody tr"))
    head = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#confusion thead th")]
    assert head == ["gold \\ predicted", "LOC", "ORG", "PER", "boundary (same type)", "none (missed)"]
    rows = {r.get_attribute("data-gold"): r for r in browser.find_elements(By.CSS_SELECTOR, "#confusion tbody tr")}
    assert list(rows) == ["LOC", "ORG", "PER", "none (spurious)"]
    per_row = [c.text.split("\n")[0] for c in rows["PER"].find_elements(By.TAG_NAME, "td")]
    assert per_row[3].endswith("%") and per_row[3] != "100%"  # the lengthened persons: boundary errors
    worst = browser.find_elements(By.CSS_SELECTOR, "#worst tbody tr")
    assert 1 <= len(worst) <= 15
    first = worst[0]
    assert first.find_elements(By.CSS_SELECTOR, "td.gold mark.ent") and first.find_elements(
        By.CSS_SELECTOR, "td.pred mark.ent"
    )
    assert first.find_elements(By.CSS_SELECTOR, "mark.ent.wrong")  # the disagreeing entities are outlined
    assert browser.find_element(By.CSS_SELECTOR, "img.curves").get_attribute("naturalWidth") != "0"
    metrics = json.loads((report.parent / "metrics.json").read_text(encoding="utf-8"))
    assert f"{metrics['ece']:.4f}" in browser.find_element(By.ID, "ece").text  # calibration: ECE and its diagram
    diagram = browser.find_element(By.CSS_SELECTOR, "img[alt='reliability diagram']")
    assert diagram.get_attribute("naturalWidth") != "0"
    screenshot(browser, tmp_path / "report.png")
