"""The review app in real headless Chromium (Debian's chromium and
chromedriver, driven by selenium): plots render, OK / Use gold / expert
annotation / JSON upload each land in the SQLite store, markup stays text.

``make install`` installs chromium and chromium-driver with apt. The test
skips only where the browser is missing and apt-get is not there to install
it; set CLINIE_REVIEW_SCREENSHOT=docs/review.png to refresh the screenshot.
"""
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from selenium import webdriver

from spacy_clinie.review.store import FeedbackStore

from .conftest import XSS_WORD, Server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)) and shutil.which("apt-get") is None:
    pytest.skip("no /usr/bin/chromium or chromedriver and no apt-get to install them (make install does it on Debian)", allow_module_level=True)



@pytest.fixture
def browser():
    from selenium.webdriver.chrome.service import Service

    assert os.path.exists(CHROMIUM), f"{CHROMIUM} missing: run `make install` (apt-get install chromium chromium-driver)"
    profile = tempfile.mkdtemp(prefix="clinie-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1400,1900", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait_rendered(driver, n_plots: int = 5, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script(
            "return document.querySelectorAll('.plot[data-rendered=\"1\"] svg.main-svg').length") >= n_plots
    )


def submit(driver, element_id: str) -> None:
    """Click a submit button and wait for the next page to render."""
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element("tag name", "html")
    driver.find_element("id", element_id).click()
    WebDriverWait(driver, 30).until(EC.staleness_of(old))
    wait_rendered(driver)


def item_number(driver) -> int:
    return int(driver.find_element("id", "item-number").text)


def test_review_in_chromium(review_env, browser, tmp_path):
    from selenium.webdriver.support.ui import Select

    store_path = tmp_path / "feedback.sqlite"
    server = Server(review_env, store_path, tmp_path / "server.log")
    try:
        d = browser
        d.get(server.url + "/")
        wait_rendered(d)
        assert item_number(d) == 1
        # every plot drew an SVG with marks in it
        for name in ("alignment", "saliency", "flow", "bar", "area"):
            marks = d.execute_script(
                f"return document.querySelectorAll('#plot-{name} .main-svg .overplot *').length")
            assert marks > 0, name
        assert "0 of 10 reviewed" in d.find_element("id", "progress-text").text

        # 1. OK on (instance 0, concepts)
        key0 = d.find_element("id", "instance-key").text
        submit(d, "btn-ok")
        assert item_number(d) == 2
        # 2. Use gold on (instance 0, aux)
        submit(d, "btn-gold")
        assert item_number(d) == 3
        key1 = d.find_element("id", "instance-key").text
        # 3. Expert annotation of one token on (instance 1, concepts)
        d.find_element("css selector", "#expert summary").click()
        Select(d.find_element("id", "label-2")).select_by_value("B-AdverseReaction")
        submit(d, "btn-expert")
        assert item_number(d) == 4
        # 4. Upload labels as JSON on (instance 1, aux)
        n = len(d.find_elements("css selector", "#expert-form select"))
        upload = tmp_path / "labels.json"
        labels = ["B-animal"] + ["O"] * (n - 1)
        upload.write_text(json.dumps({"labels": labels}))
        d.find_element("id", "upload-file").send_keys(str(upload))
        submit(d, "btn-upload")
        assert item_number(d) == 5
        assert "4 of 10 reviewed" in d.find_element("id", "progress-text").text

        # item 5 is the doc with a markup word: shown as text, never run
        assert XSS_WORD in d.find_element("id", "instance-text").text
        assert d.execute_script("return document.querySelectorAll('img[src=x], #instance-text b').length") == 0
        ticks = d.execute_script(
            "return [...document.querySelectorAll('#plot-alignment .xtick text')].map(t => t.textContent)")
        assert any(t.startswith("<img src=x") for t in ticks), ticks
        # an uploaded label with markup is refused and echoed as text
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(["<img src=x onerror=window.__xss=2>"] * 6))
        d.find_element("id", "upload-file").send_keys(str(bad))
        submit(d, "btn-upload")
        assert "<img src=x onerror=window.__xss=2>" in d.find_element("id", "error").text
        assert d.execute_script("return document.querySelectorAll('img[src=x]').length") == 0
        assert d.execute_script("return window.__xss === undefined")

        shot = os.environ.get("CLINIE_REVIEW_SCREENSHOT")
        d.get(server.url + "/item/8")  # concepts of the sentence the tagger never saw
        wait_rendered(d)
        d.save_screenshot(str(tmp_path / "review.png"))
        assert (tmp_path / "review.png").stat().st_size > 10000
        if shot:
            Path(shot).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(tmp_path / "review.png", shot)
    finally:
        server.stop()

    rows = {(r["instance"], r["task"]): r for r in FeedbackStore(store_path).feedback()}
    assert len(rows) == 4
    ok, gold = rows[(key0, "concepts")], rows[(key0, "aux")]
    assert ok["action"] == "ok" and ok["labels"] == ok["predicted"] and ok["reviewer"] == "tester"
    assert gold["action"] == "gold" and gold["labels"] == gold["gold"]
    expert = rows[(key1, "concepts")]
    assert expert["action"] == "expert" and expert["labels"][2] == "B-AdverseReaction"
    assert [a for i, a in enumerate(expert["labels"]) if i != 2] == [a for i, a in enumerate(expert["predicted"]) if i != 2]
    up = rows[(key1, "aux")]
    assert up["action"] == "upload" and up["labels"] == labels
