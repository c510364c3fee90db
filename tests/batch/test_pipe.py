import json
import xml.etree.ElementTree as ET

import pytest
import spacy
from typer.testing import CliRunner

from spacy_clinie.batch import PipeSettings, run_pipe
from spacy_clinie.batch.checkpoint import load_state
from spacy_clinie.cli import app

from .conftest import good_records, json_line, read_jsonl, write_jsonl
from .toy_components import SimulatedCrash


def mixed_input(path, n=120):
    """Good notes with bad records of every kind in between and at the end."""
    rows = []
    for i, rec in enumerate(good_records(n)):
        rows.append(json_line(rec))
        if i % 25 == 3:
            rows.append(b'{"id": "latin-%d", "text": "caf\xe9 nausea"}' % i)
        if i % 25 == 9:
            rows.append(json_line({"id": f"empty-{i}", "text": ""}))
        if i % 25 == 14:
            rows.append(json_line({"text": "no id at all, nausea"}))
        if i % 25 == 20:
            rows.append(json_line({"id": f"long-{i}", "text": "rash " * 100}))
    rows.append(b"{truncated")
    return write_jsonl(path, rows)


def settings(**kw):
    base = dict(progress=False, max_chars=300, checkpoint_every=7, batch_size=8)
    base.update(kw)
    return PipeSettings(**base)


def test_records_and_quarantine_counts(tmp_path, light_model):
    src = mixed_input(tmp_path / "in.jsonl")
    out = tmp_path / "out.jsonl"
    summary = run_pipe(light_model, src, out, settings())
    assert (summary.read, summary.written, summary.quarantined) == (120 + 19 + 1, 120, 20)
    assert summary.consistent
    records = read_jsonl(out)
    assert [r["id"] for r in records] == [f"note-{i}" for i in range(120)]
    first = records[0]  # "Patient 0 reported no nausea and a nausea on day 0."
    assert first["model"] == "en_light-1.2.3"
    assert first["spans"][0] == {
        "id": "m1",
        "start": 22,
        "end": 28,
        "label": "AdverseReaction",
        "text": "nausea",
        "fragments": None,
        "meddra": [
            {
                "meddra_pt": "Nausea",
                "meddra_pt_id": "10028813",
                "meddra_llt": "Nausea",
                "meddra_llt_id": "10028813",
            }
        ],
        "kind": None,
        "attributes": {"is_negated": True},
    }
    assert first["relations"] == [{"id": "r1", "label": "Cooccurs", "head": "m1", "tail": "m2", "score": 0.5, "method": None}]
    assert "text" not in first
    quarantine = read_jsonl(tmp_path / "out.jsonl.quarantine.jsonl")
    reasons = [q["reason"].split(" (")[0].split(" has ")[0] for q in quarantine]
    assert reasons.count("not UTF-8") == 5
    assert reasons.count("empty text") == 5
    assert reasons.count("missing id") == 5
    assert reasons.count("text") == 4  # "text has 500 characters, over the limit of 300" (i = 20, 45, 70, 95)
    assert reasons[-1] == "not JSON"
    assert quarantine[0] == {
        "index": 4,
        "id": "latin-3",
        "where": "in.jsonl line 5",
        "reason": quarantine[0]["reason"],
    }
    state = load_state(tmp_path / "out.jsonl.state.json")
    assert state.complete and state.offset == summary.read


def test_nlp_pipe_equals_call_and_n_process(tmp_path, light_model):
    src = mixed_input(tmp_path / "in.jsonl", n=60)
    one = run_pipe(light_model, src, tmp_path / "one.jsonl", settings())
    # two processes, and the pipeline reloaded every 13 docs (fresh vocab)
    two = run_pipe(
        light_model, src, tmp_path / "two.jsonl", settings(n_process=2, batch_size=4, recycle_every=13)
    )
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    assert (tmp_path / "one.jsonl.quarantine.jsonl").read_bytes() == (
        tmp_path / "two.jsonl.quarantine.jsonl"
    ).read_bytes()
    assert (one.read, one.written) == (two.read, two.written)
    nlp = spacy.load(light_model)
    direct = nlp("Patient 1 reported nausea and a rash on day 1.")
    rec = read_jsonl(tmp_path / "one.jsonl")[1]
    assert [(s["start"], s["end"]) for s in rec["spans"]] == [
        (s.start_char, s.end_char) for s in direct.spans["mentions"]
    ]


def test_crash_then_resume_is_exactly_once(tmp_path, light_model):
    """A run dies after writing uncommitted lines and half a line; the
    restart truncates them and continues from the committed offset."""
    src = mixed_input(tmp_path / "in.jsonl")
    ref = tmp_path / "ref.jsonl"
    run_pipe(light_model, src, ref, settings())

    out = tmp_path / "out.jsonl"
    nlp = spacy.load(light_model)
    nlp.add_pipe("clinie_test_crash", config={"prefix": "Patient 77 "})
    with pytest.raises(SimulatedCrash):  # --fail-fast: a component error stops the run
        run_pipe(light_model, src, out, settings(fail_fast=True), nlp=nlp)
    state = load_state(tmp_path / "out.jsonl.state.json")
    assert 0 < state.offset < 100 and not state.complete
    assert out.stat().st_size > state.output_bytes  # lines written after the last commit
    with open(out, "ab") as f:
        f.write(b'{"id":"note-7')  # and a torn write
    summary = run_pipe(light_model, src, out, settings(batch_size=3))
    assert summary.resumed_from == state.offset
    assert out.read_bytes() == ref.read_bytes()
    assert (tmp_path / "out.jsonl.quarantine.jsonl").read_bytes() == (
        tmp_path / "ref.jsonl.quarantine.jsonl"
    ).read_bytes()
    assert summary.consistent and summary.read == 140


def test_refuses_foreign_outputs_and_changed_settings(tmp_path, light_model):
    src = mixed_input(tmp_path / "in.jsonl", n=10)
    out = tmp_path / "out.jsonl"
    out.write_text("someone else's file\n")
    with pytest.raises(ValueError, match="out.jsonl exists and has no run state"):
        run_pipe(light_model, src, out, settings())
    run_pipe(light_model, src, out, settings(overwrite=True))
    before = out.read_bytes()
    again = run_pipe(light_model, src, out, settings())
    assert again.already_complete and out.read_bytes() == before
    with pytest.raises(ValueError, match=r"text_field: 'text' before, 'body' now"):
        run_pipe(light_model, src, out, settings(text_field="body"))


@pytest.mark.parametrize("fmt", ["brat", "tac-xml"])
def test_folder_formats(tmp_path, light_model, fmt):
    src = mixed_input(tmp_path / "in.jsonl", n=5)
    out = tmp_path / "out"
    summary = run_pipe(light_model, src, out, settings(output_format=fmt))
    assert summary.written == 5 and summary.quarantined == 2
    assert len(read_jsonl(out / "quarantine.jsonl")) == 2
    if fmt == "brat":
        ann = (out / "note-0.ann").read_text()
        assert ann.startswith("T1\tAdverseReaction 22 28\tnausea\n")
        assert "is_negated T1" in ann and "MedDRA:10028813" in ann
        assert (out / "note-0.txt").read_text().startswith("Patient 0")
    else:
        root = ET.parse(out / "note-0.xml").getroot()
        assert [m.get("str") for m in root.iter("Mention")] == ["nausea", "nausea"]
        assert [r.get("type") for r in root.iter("Relation")] == ["Cooccurs"]


def test_cli(tmp_path, light_model):
    src = mixed_input(tmp_path / "in.jsonl", n=20)
    out = tmp_path / "cli.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "pipe",
            str(light_model),
            str(src),
            str(out),
            "--no-progress",
            "--max-chars",
            "300",
            "--include-text",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "read 24 = written 20 + quarantined 4" in result.output
    assert read_jsonl(out)[0]["text"].startswith("Patient 0")
    bad = CliRunner().invoke(
        app, ["pipe", str(light_model), str(src), str(out), "--format", "xml", "--no-progress"]
    )
    assert bad.exit_code == 1 and "unknown output format 'xml'" in bad.output
    assert json.loads((tmp_path / "cli.jsonl.state.json").read_text())["complete"] is True
