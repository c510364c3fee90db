import pytest

from spacy_clinie.errors import FormatError
from spacy_clinie.readers import doc_to_brat, read_brat_dir, read_brat_file, write_brat

TEXT = "Patient started warfarin 5 mg PO daily.\nDeveloped severe GI bleeding and\nnausea after warfarin.\n"
ANN = "\n".join(
    [
        "T1\tDrug 16 24\twarfarin",
        "T2\tStrength 25 29\t5 mg",
        "T3\tRoute 30 32\tPO",
        "T4\tFrequency 33 38\tdaily",
        "T5\tADE 57 59;60 68\tGI bleeding",
        "T6\tADE 73 79\tnausea",
        "T7\tDrug 86 94\twarfarin",
        "R1\tStrength-Drug Arg1:T2 Arg2:T1",
        "R2\tRoute-Drug Arg1:T3 Arg2:T1",
        "R3\tFrequency-Drug Arg1:T4 Arg2:T1",
        "R4\tADE-Drug Arg1:T5 Arg2:T7",
        "R5\tADE-Drug Arg1:T6 Arg2:T7",
        "A1\tNegated T6",
        "A2\tSeverity T5 severe",
        "N1\tReference T6 MedDRA:10028813\tNausea",
        "#1\tAnnotatorNotes T5\tgastrointestinal",
        "E1\tTreatment:T1 Theme:T6",
    ]
) + "\n"


@pytest.fixture
def brat_dir(tmp_path):
    d = tmp_path / "brat"
    d.mkdir()
    (d / "100.txt").write_text(TEXT, encoding="utf-8")
    (d / "100.ann").write_text(ANN, encoding="utf-8")
    (d / "101.txt").write_text("No annotations here.\n", encoding="utf-8")
    (d / "101.ann").write_text("", encoding="utf-8")
    return d


def _structure(doc):
    return (
        doc.text,
        sorted((s.id_, s.label_, tuple(map(tuple, s._.fragments)), s._.attributes and tuple(sorted(s._.attributes.items()))) for s in doc.spans["mentions"]),
        sorted((r["id"], r["label"], r["head"], r["tail"]) for r in doc._.relations),
        sorted((s.id_, str(s._.meddra), str(s._.notes)) for s in doc.spans["mentions"]),
        doc._.source["other_lines"],
    )


def test_read_brat(nlp, brat_dir, report):
    docs = list(read_brat_dir(nlp, brat_dir, report=report))
    assert [d._.doc_id for d in docs] == ["100", "101"]
    doc = docs[0]
    spans = {s.id_: s for s in doc.spans["mentions"]}
    assert spans["T5"].text == "GI bleeding" and spans["T5"]._.fragments == [[57, 59], [60, 68]]
    assert spans["T5"]._.attributes == {"Severity": "severe"}
    assert spans["T6"]._.attributes == {"Negated": True}
    assert spans["T6"]._.meddra == [{"meddra_pt_id": "10028813", "meddra_pt": "Nausea"}]
    assert spans["T5"]._.notes[0]["text"] == "gastrointestinal"
    assert {r["label"] for r in doc._.relations} == {"Strength-Drug", "Route-Drug", "Frequency-Drug", "ADE-Drug"}
    assert report.counts["brat_lines_kept_verbatim"] == 1
    assert len(docs[1].spans["mentions"]) == 0


def test_brat_round_trip_is_lossless(nlp, brat_dir, tmp_path):
    docs = list(read_brat_dir(nlp, brat_dir))
    write_brat(docs, tmp_path / "out")
    again = list(read_brat_dir(nlp, tmp_path / "out"))
    assert [_structure(d) for d in again] == [_structure(d) for d in docs]
    assert sorted(doc_to_brat(again[0]).splitlines()) == sorted(ANN.splitlines())


def test_newline_inside_discontinuous_mention(nlp, tmp_path):
    (tmp_path / "a.txt").write_text("severe\nrash today", encoding="utf-8")
    (tmp_path / "a.ann").write_text("T1\tADE 0 6;7 11\tsevere rash\n", encoding="utf-8")
    doc = read_brat_file(nlp, tmp_path / "a.txt")
    assert doc.spans["mentions"][0].text == "severe\nrash"


@pytest.mark.parametrize(
    "line,message",
    [
        ("T1\tADE 73 79\tvomiting", "does not match"),
        ("T1\tADE 73 999\tnausea", "outside the text"),
        ("T1\tADE seventy\tnausea", "Unparseable line"),
        ("X1\tsomething", "Unparseable line"),
        ("T1\tADE 73 79\tnausea\nR1\tADE-Drug Arg1:T1 Arg2:T9", "unknown mention"),
    ],
)
def test_bad_brat_lines(nlp, tmp_path, report, line, message):
    (tmp_path / "x.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "x.ann").write_text(line + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match=message) as err:
        read_brat_file(nlp, tmp_path / "x.txt", strict=True)
    assert "x.ann" in str(err.value)
    read_brat_file(nlp, tmp_path / "x.txt", report=report)
    assert len(report.skipped) == 1 and report.skipped[0]["reason"]


def test_unreadable_document_is_skipped_in_batch(nlp, tmp_path, report):
    (tmp_path / "good.txt").write_text("Rash.", encoding="utf-8")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe bad")
    docs = list(read_brat_dir(nlp, tmp_path, report=report))
    assert [d._.doc_id for d in docs] == ["good"]
    assert report.skipped[0]["kind"] == "document" and "bad.txt" in report.skipped[0]["path"]


def test_relations_attributes_fragments_survive_docbin(nlp, brat_dir, tmp_path):
    from spacy.tokens import DocBin

    docs = list(read_brat_dir(nlp, brat_dir))
    DocBin(docs=docs, store_user_data=True).to_disk(tmp_path / "x.spacy")
    back = list(DocBin().from_disk(tmp_path / "x.spacy").get_docs(nlp.vocab))
    assert [_structure(d) for d in back] == [_structure(d) for d in docs]
    # and the writers work on the deserialised docs
    assert sorted(doc_to_brat(back[0]).splitlines()) == sorted(ANN.splitlines())


def test_duplicate_t_id_is_reported_not_overwritten(nlp, tmp_path, report):
    """Issue 24, item 2: a second ``T1`` used to replace the first silently."""
    (tmp_path / "d.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "d.ann").write_text("T1\tADE 73 79\tnausea\nT1\tDrug 16 24\twarfarin\n", encoding="utf-8")
    doc = read_brat_file(nlp, tmp_path / "d.txt", report=report)
    assert [(s.id_, s.text) for s in doc.spans["mentions"]] == [("T1", "nausea")]
    assert len(report.skipped) == 1
    skipped = report.skipped[0]
    assert skipped["record"] == "line 2" and skipped["path"].endswith("d.ann")
    assert "Duplicate id 'T1'" in skipped["reason"]
    with pytest.raises(FormatError, match="Duplicate id 'T1'"):
        read_brat_file(nlp, tmp_path / "d.txt", strict=True)


def test_whitespace_only_mention_is_reported(nlp, tmp_path, report):
    """Issue 24, item 9: a mention over whitespace only has no tokens; it used
    to trip an ``assert`` (and pass as a None span under ``python -O``)."""
    (tmp_path / "w.txt").write_text("Rash. \tOK nausea", encoding="utf-8")
    (tmp_path / "w.ann").write_text("T1\tADE 10 16\tnausea\nT2\tADE 5 7\t \t\nT3\tADE 5 6\t \n", encoding="utf-8")
    doc = read_brat_file(nlp, tmp_path / "w.txt", report=report)
    assert [s.id_ for s in doc.spans["mentions"]] == ["T1"]
    # T2 became an empty span, T3 an AssertionError, before the fix
    assert [(s["kind"], s["record"]) for s in report.skipped] == [("mention", "T2"), ("mention", "T3")]
    assert all("whitespace" in s["reason"] for s in report.skipped)
    with pytest.raises(FormatError, match="whitespace"):
        read_brat_file(nlp, tmp_path / "w.txt", strict=True)


def test_whitespace_only_mention_under_python_O(tmp_path):
    """The same check holds with assertions stripped (``python -O``)."""
    import subprocess
    import sys

    (tmp_path / "w.txt").write_text("Rash. \tOK nausea", encoding="utf-8")
    (tmp_path / "w.ann").write_text("T1\tADE 10 16\tnausea\nT2\tADE 5 7\t \t\nT3\tADE 5 6\t \n", encoding="utf-8")
    code = (
        "import sys; from spacy_clinie.readers import Report, read_brat_file; from spacy_clinie.tokenizer import make_blank;"
        "r = Report(); d = read_brat_file(make_blank(), sys.argv[1], report=r);"
        "print([s.id_ for s in d.spans['mentions']], [s['record'] for s in r.skipped])"
    )
    out = subprocess.run([sys.executable, "-O", "-c", code, str(tmp_path / "w.txt")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['T1'] ['T2', 'T3']"
