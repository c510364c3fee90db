import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from spacy_clinie.cli import app
from spacy_clinie.readers import load_docs

from ..conftest import shared

runner = CliRunner()
COMMANDS = ["convert", "evaluate", "export", "pipe", "meddra"]


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_python_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "spacy_clinie", "--help"], capture_output=True, text=True, check=True)
    for command in COMMANDS:
        assert command in out.stdout


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    result = runner.invoke(app, ["convert", str(shared("tac2017_adr")), str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_convert_tac(converted):
    out, output = converted
    report = json.loads((out / "convert_report.json").read_text())
    splits = report["splits"]
    assert list(splits) == ["train", "dev", "test"]
    train, dev, test = (splits[s]["stats"] for s in ("train", "dev", "test"))
    # train + dev reconcile with the 7,652 source entries and 13,487 projected mentions
    assert train["reaction_entries"] + dev["reaction_entries"] == 7652
    assert train["mentions"] + dev["mentions"] == 13487
    assert train["docs"] + dev["docs"] == 239
    assert dev["source_documents"] == 10  # a seeded 10% of the 101 labels
    assert test["reaction_entries"] == 6835 and test["docs"] == 237
    assert splits["train"]["report"]["counts"]["entries_discontiguous_unplaced"] == 639
    assert "entries 7652" in output and "[dev]" in output
    dev_ids = {d._.label_id for d in load_docs(out / "dev.spacy")}
    train_ids = {d._.label_id for d in load_docs(out / "train.spacy")}
    assert not dev_ids & train_ids


def test_evaluate_gold_against_itself_and_compare(converted, tmp_path):
    out, _ = converted
    dev = out / "dev.spacy"
    result = runner.invoke(app, ["evaluate", str(dev), str(dev), "-o", str(tmp_path / "s.json"), "--compare", str(dev), "--n-shuffles", "200"])
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["mention_strict"]["micro"]["f"] == 1.0
    # the gold's own spans miss the discontiguous entries, so reaction recall < 1
    assert scores["reaction"]["micro"]["p"] == 1.0
    assert scores["reaction"]["micro"]["r"] < 1.0
    assert scores["significance"]["reaction"]["approximate_randomization"]["p_value"] == 1.0
    assert "mention_strict" in result.output


def test_export_both_formats(converted, tmp_path):
    out, _ = converted
    for fmt, pattern in (("tac-xml", "*.xml"), ("brat", "*.ann")):
        result = runner.invoke(app, ["export", str(out / "dev.spacy"), str(tmp_path / fmt), "--format", fmt])
        assert result.exit_code == 0, result.output
        assert list((tmp_path / fmt).glob(pattern))
    assert len(list((tmp_path / "tac-xml").glob("*.xml"))) == 10


def test_convert_bad_input_exits_with_message(tmp_path):
    bad = tmp_path / "train.json"
    bad.write_text("[{", encoding="utf-8")
    result = runner.invoke(app, ["convert", str(bad), str(tmp_path / "out")])
    assert result.exit_code == 1
    # the error says that nothing was converted, and why (issue 24, item 12)
    assert "No documents" in result.output
    assert "Malformed JSON" in result.output and "train.json" in result.output


def test_convert_strict_names_record(tmp_path):
    bad = tmp_path / "test.json"
    bad.write_text(json.dumps([{"label_id": "X", "section_name": "s", "section_text": "rash", "adverse_events": [["fever", None, None, None, None, "0", "4", "human"]]}]))
    result = runner.invoke(app, ["convert", str(bad), str(tmp_path / "out"), "--strict"])
    assert result.exit_code == 1
    assert "record #0 (X/s) entry 0" in result.output and "does not match" in result.output
