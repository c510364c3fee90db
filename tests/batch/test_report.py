"""``clinie report``: the numbers come from the run, every value from the
data is escaped, the page needs no network, the figures render in Debian's
real Chromium (selenium, as the review app's browser test drives it) and
``--png`` writes images through kaleido.

Set CLINIE_REPORT_SCREENSHOT=docs/report.png to refresh the screenshot.
"""

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spacy_clinie.batch import PipeSettings, run_pipe
from spacy_clinie.batch.report import load_run, reason_kind, run_stats, write_report
from spacy_clinie.cli import app

from .output_data import NOTE_FAILURES, build_notes_pipeline, nan_free, note_records, write_jsonl

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
EVIL_ID = "<img src=x onerror=alert(1)>"
N_FIGURES = 6


@pytest.fixture(scope="module")
def run_outputs(tmp_path_factory):
    """One input, three formats of the same run."""
    tmp = tmp_path_factory.mktemp("report")
    model = build_notes_pipeline(tmp / "model")
    rows = note_records() + [{"id": EVIL_ID, "text": "Started warfarin; rash."}]
    src = write_jsonl(tmp / "notes.jsonl", rows)
    outs = {}
    for fmt in ("jsonl", "table", "fhir"):
        out = tmp / ("run.jsonl" if fmt == "jsonl" else fmt)
        run_pipe(model, src, out, PipeSettings(progress=False, output_format=fmt, checkpoint_every=5))
        outs[fmt] = out
    return outs


def test_numbers_come_from_the_run(run_outputs):
    table = load_run(run_outputs["table"])
    jsonl = load_run(run_outputs["jsonl"])
    assert nan_free(table.rows) == nan_free(jsonl.rows)  # the JSONL is read through the same reaction rows
    stats = run_stats(table)
    n = len(note_records()) + 1
    assert stats["records read"] == n and stats["written"] + stats["quarantined"] == n
    assert stats["complete"] is True and stats["docs/s"] > 0 and stats["chars/s"] > 0
    assert stats["peak memory (MB)"] > 50
    assert stats["reactions"] == len(table.rows) > 60
    fhir = load_run(run_outputs["fhir"])
    assert {q["id"] for q in fhir.quarantine} == set(NOTE_FAILURES) | {EVIL_ID}
    assert any("negated reactions out" in n for n in fhir.notes)
    assert fhir.state is not None and fhir.state.rejected == len(NOTE_FAILURES) + 1


def test_reason_kinds_group_particulars():
    assert reason_kind("text has 500 characters, over the limit of 300") == "text has N characters, over the limit of N"
    assert reason_kind("no FHIR AdverseEvent: patient id (field 'patient_id') 'MRN 12/34' is not a FHIR id") == (
        "no FHIR AdverseEvent: patient id (field …) … is not a FHIR id"
    )


def test_html_is_offline_and_escaped(run_outputs, tmp_path):
    page = tmp_path / "r.html"
    write_report(run_outputs["fhir"], page)
    text = page.read_text(encoding="utf-8")
    assert len(re.findall(r'<div id="fig-', text)) == N_FIGURES  # Plotly divs
    # a run that quarantined nothing says so in a text panel, not an empty plot
    write_report(run_outputs["jsonl"], tmp_path / "j.html")
    jtext = (tmp_path / "j.html").read_text(encoding="utf-8")
    assert '<div class="panel empty" id="fig-quarantine"><h3>Quarantine</h3><p>Nothing was quarantined.</p>' in jtext
    assert len(re.findall(r'<div id="fig-', jtext)) == N_FIGURES - 1
    # no script from elsewhere (the library itself only names a map-data URL)
    assert not re.search(r"<script[^>]+src=", text) and "cdn.plot.ly/plotly" not in text
    assert "Plotly.newPlot" in text and len(text) > 3_000_000  # plotly.js inlined
    assert EVIL_ID not in text and "&lt;img src=x onerror=alert(1)&gt;" in text


def test_cli_report_and_png(run_outputs, tmp_path):
    png = tmp_path / "png"
    result = CliRunner().invoke(app, ["report", str(run_outputs["table"]), "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert (run_outputs["table"] / "report.html").exists()
    names = sorted(p.name for p in png.glob("*.png"))
    assert names == sorted(["soc.png", "top_pts.png", "confidence.png", "context.png", "breakdown.png", "quarantine.png"])
    for p in png.glob("*.png"):
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    bad = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert bad.exit_code == 1 and "error:" in bad.output


@pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                    reason="no /usr/bin/chromium + chromedriver (make install adds them with apt)")
def test_report_renders_in_chromium(run_outputs, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    page = tmp_path / "report.html"
    write_report(run_outputs["table"], page)
    profile = tempfile.mkdtemp(prefix="clinie-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1400,1700", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.get(page.as_uri())
        WebDriverWait(driver, 60).until(
            lambda d: d.execute_script("return document.querySelectorAll('.js-plotly-plot svg.main-svg').length")
            >= N_FIGURES
        )
        bars = driver.execute_script("return document.querySelectorAll('#fig-top_pts .bars path').length")
        assert bars >= 1
        cards = driver.find_element("id", "cards").text
        assert "records read" in cards and "peak memory (MB)" in cards
        assert "Nausea" in driver.find_element("id", "fig-top_pts").text
        assert "Gastrointestinal disorders" in driver.find_element("id", "fig-soc").text
        shot = os.environ.get("CLINIE_REPORT_SCREENSHOT")
        if shot:
            Path(shot).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(shot)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
