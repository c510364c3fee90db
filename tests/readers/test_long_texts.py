"""A text longer than ``nlp.max_length`` (spaCy's E088 ValueError, found by
benchmarks/fuzz_inputs.py, issue 24) is a bad record of the file: the
readers report it with file and record, keep the rest, and raise it as a
FormatError when strict."""

import json

import pytest

from spacy_clinie.errors import FormatError
from spacy_clinie.readers import Report, read_brat_dir, read_euadr, read_onsides, read_tac_xml
from spacy_clinie.tokenizer import make_blank

LONG = "Rash was reported. " * 10


@pytest.fixture
def short_nlp():
    nlp = make_blank()
    nlp.max_length = 100
    return nlp


def test_onsides_long_section(short_nlp, tmp_path):
    ok = {"label_id": "A", "section_name": "adverse reactions", "section_text": "Rash.", "adverse_events": [["rash", "Rash", 1.0, "Rash", 1.0, "0", "4", "human"]]}
    long = {**ok, "label_id": "B", "section_text": LONG}
    path = tmp_path / "x.json"
    path.write_text(json.dumps([ok, long]))
    report = Report()
    docs = list(read_onsides(short_nlp, path, report=report))
    assert [d._.label_id for d in docs] == ["A"]
    assert [(s["kind"], s["record"]) for s in report.skipped] == [("section", "#1 (B/adverse reactions)")]
    assert "over the tokenizer's limit of 100" in report.skipped[0]["reason"]
    assert report.counts["sections"] + report.counts["skipped_section"] == 2
    with pytest.raises(FormatError, match="x.json, record #1"):
        list(read_onsides(short_nlp, path, strict=True))


def test_tac_xml_long_section(short_nlp, tmp_path):
    path = tmp_path / "L.xml"
    path.write_text(
        f'<Label drug="L"><Text><Section id="S1" name="a">Rash.</Section><Section id="S2" name="b">{LONG}</Section></Text>'
        '<Mentions><Mention id="M1" section="S1" type="AdverseReaction" start="0" len="4" str="Rash"/>'
        '<Mention id="M2" section="S2" type="AdverseReaction" start="0" len="4" str="Rash"/></Mentions></Label>'
    )
    report = Report()
    docs = list(read_tac_xml(short_nlp, path, report=report))
    assert [d._.doc_id for d in docs] == ["L/S1"]
    [skip] = [s for s in report.skipped if s["kind"] == "section"]
    assert skip["record"] == "Section S2" and "1 mention(s)" in skip["reason"]


def test_brat_and_euadr_long_texts(short_nlp, tmp_path):
    (tmp_path / "a.txt").write_text("Rash.")
    (tmp_path / "b.txt").write_text(LONG)
    report = Report()
    assert [d._.doc_id for d in read_brat_dir(short_nlp, tmp_path, report=report)] == ["a"]
    assert report.skipped[0]["kind"] == "document" and report.skipped[0]["path"].endswith("b.txt")
    header = "\t".join(["ASSOCIATION_TYPE", "PMID", "NUM_SENTENCE", "ENTITY1_TEXT", "ENTITY1_INI", "ENTITY1_END", "ENTITY1_TYPE",
                        "ENTITY2_TEXT", "ENTITY2_INI", "ENTITY2_END", "ENTITY2_TYPE", "SENTENCE"])
    row = ["PA", "1", "0", "Rash", "0", "4", "Diseases & Disorders", "was", "5", "8", "Chemicals & Drugs"]
    csv = tmp_path / "e.csv"
    csv.write_text("\n".join([header, "\t".join(row + ["Rash was reported."]), "\t".join(["PA", "2"] + row[2:] + [LONG]),
                              "\t".join(row[:4] + ["9" * 5000] + row[5:] + ["Rash was reported."])]) + "\n")
    report = Report()
    assert [d._.doc_id for d in read_euadr(short_nlp, csv, report=report)] == ["1/0"]
    assert sorted((s["kind"], s["record"]) for s in report.skipped) == [("row", "line 4"), ("sentence", "PMID 2 sentence 0")]


def test_euadr_field_over_the_csv_limit(tmp_path):
    """A field over csv's size limit raised _csv.Error out of clinie convert
    (found by the fuzz harness): now a bad row, the others kept."""
    import csv as csv_module

    header = "\t".join(["ASSOCIATION_TYPE", "PMID", "NUM_SENTENCE", "ENTITY1_TEXT", "ENTITY1_INI", "ENTITY1_END", "ENTITY1_TYPE",
                        "ENTITY2_TEXT", "ENTITY2_INI", "ENTITY2_END", "ENTITY2_TYPE", "SENTENCE"])
    row = ["PA", "1", "0", "Rash", "0", "4", "Diseases & Disorders", "was", "5", "8", "Chemicals & Drugs"]
    path = tmp_path / "e.csv"
    path.write_text("\n".join([header, "\t".join(["PA", "2"] + row[2:] + ['"' + "word " * 40_000 + '"']),
                               "\t".join(row + ["Rash was reported."])]) + "\n")
    old = csv_module.field_size_limit(131072)  # the default (clinie pipe raises it for the process)
    try:
        report = Report()
        docs = list(read_euadr(make_blank(), path, report=report))
    finally:
        csv_module.field_size_limit(old)
    assert [d._.doc_id for d in docs] == ["1/0"]
    assert [(s["kind"], s["record"]) for s in report.skipped] == [("row", "line 2")]
    assert "field larger than field limit" in report.skipped[0]["reason"]
