import ast
import json
import re

import pytest
from spacy.tokens import DocBin

from spacy_clinie.errors import FormatError
from spacy_clinie.readers import read_onsides
from spacy_clinie.readers.tac_onsides import parse_adverse_events, project_strings

from ..conftest import shared


def _source_offsets(path):
    """Per section, the (start, end) of the contiguous entries; the number of
    contiguous and of discontiguous entries; read without the reader's code."""
    offsets, n_contiguous, n_discontiguous = {}, 0, 0
    def missing(value):
        return value is None or value != value  # None or NaN

    for sec in json.loads(path.read_text(encoding="utf-8")):
        entries = sec["adverse_events"]
        if isinstance(entries, str):  # the README's string form
            entries = ast.literal_eval(re.sub(r"(?<![\w'\"])nan(?![\w'\"])", "None", entries))
        key = f"{sec['label_id']}/{sec['section_name']}"
        offsets[key] = {(int(e[5]), int(e[5]) + int(e[6])) for e in entries if not missing(e[5])}
        n_discontiguous += sum(missing(e[5]) for e in entries)
        n_contiguous += sum(not missing(e[5]) for e in entries)
    return offsets, n_contiguous, n_discontiguous


def test_train_counts_reconcile_with_source(tac_train):
    docs, rep = tac_train
    c = rep.counts
    assert c["sections"] == 239 and len(docs) == 239
    assert c["entries"] == 7652
    assert c["entries_discontiguous_unplaced"] == 639
    # the reader's counts against the source file, read independently
    offsets, n_contiguous, n_discontiguous = _source_offsets(shared("tac2017_adr", "train.json"))
    assert (n_contiguous, n_discontiguous) == (7013, 639)
    assert c["entries_contiguous"] == n_contiguous
    # 24 entries repeat another entry's offsets (one string, two MedDRA codes)
    assert sum(len(v) for v in offsets.values()) == 6989
    # Projection onto every occurrence (the README's recipe gives 13,483 with
    # its implementation; ours finds 13,487: see convert's report and RESULTS).
    assert sum(len(d.spans["mentions"]) for d in docs) == 13487
    # a span is an original iff the source annotates its offsets; the rest are projected
    spans = [(d._.doc_id, s) for d in docs for s in d.spans["mentions"]]
    originals = [s for doc_id, s in spans if (s.start_char, s.end_char) in offsets[doc_id]]
    assert all(not s._.projected for s in originals)
    assert all(s._.projected for doc_id, s in spans if (s.start_char, s.end_char) not in offsets[doc_id])
    assert c["mentions_original"] == len(originals)
    assert c["mentions_projected"] == len(spans) - len(originals)
    assert c["entries_nested_in_longer_mention"] == c["entries_contiguous"] - len(originals)
    assert not rep.skipped
    assert sum(len(d._.reactions) for d in docs) == 7652


def test_test_counts_reconcile_with_source(tac_test):
    docs, rep = tac_test
    assert len(docs) == 237
    assert rep.counts["entries"] == 6835
    assert rep.counts["entries_discontiguous_unplaced"] == 596
    assert sum(len(d._.reactions) for d in docs) == 6835
    assert not rep.skipped


def test_every_mention_matches_an_annotated_string(tac_train):
    docs, _ = tac_train
    for doc in docs[:50]:
        strings = {r["str"].lower() for r in doc._.reactions}
        for span in doc.spans["mentions"]:
            assert span.text.lower() in strings
            assert span._.meddra is not None and span._.kind in ("human", "animal", "drug_class")


def test_repeated_string_is_projected(tac_train):
    docs, _ = tac_train
    doc = next(d for d in docs if d._.doc_id == "ADCETRIS/adverse reactions")
    anemia = [s for s in doc.spans["mentions"] if s.text.lower() == "anemia"]
    assert len(anemia) > 1
    assert sum(not s._.projected for s in anemia) == 1
    assert anemia[0]._.meddra[0]["meddra_pt_id"] == "10002034"


def test_no_projection_keeps_first_occurrences(nlp):
    docs = list(read_onsides(nlp, shared("tac2017_adr", "train.json"), project=False))
    n = sum(len(d.spans["mentions"]) for d in docs)
    assert n == 7013  # every contiguous entry at its own offsets
    assert not any(s._.projected for d in docs for s in d.spans["mentions"])


def test_docbin_round_trip(tac_train, nlp):
    docs, _ = tac_train
    data = DocBin(docs=docs[:5], store_user_data=True).to_bytes()
    back = list(DocBin().from_bytes(data).get_docs(nlp.vocab))
    for a, b in zip(docs[:5], back):
        assert a.text == b.text and a._.doc_id == b._.doc_id
        assert [(s.start_char, s.end_char, s.label_, s.id_) for s in a.spans["mentions"]] == [
            (s.start_char, s.end_char, s.label_, s.id_) for s in b.spans["mentions"]
        ]
        assert [s._.meddra for s in a.spans["mentions"]] == [s._.meddra for s in b.spans["mentions"]]
        assert a._.reactions == b._.reactions


def test_string_form_of_adverse_events_with_nan():
    raw = "[['rash', 'Rash', 10037844.0, 'Rash', 10037844.0, '12', '4', 'human'], ['x y', nan, nan, nan, nan, nan, '3', 'animal']]"
    entries = parse_adverse_events(raw)
    assert entries[1][1] is None and entries[1][5] is None
    with pytest.raises((ValueError, SyntaxError)):
        parse_adverse_events("[__import__('os').system('true')]")


def test_projection_longest_first_on_word_boundaries():
    text = "Peripheral neuropathy and neuropathy; neuropathic pain. NEUROPATHY"
    found = project_strings(text, ["neuropathy", "peripheral neuropathy"])
    assert [(text[a:b]) for a, b, _ in found] == ["Peripheral neuropathy", "neuropathy", "NEUROPATHY"]


def _write(tmp_path, sections):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(sections), encoding="utf-8")
    return path


GOOD = {"label_id": "DRUGX", "section_name": "adverse reactions", "section_text": "Nausea and rash. Rash again.",
        "adverse_events": [["nausea", "Nausea", 10028813.0, "Nausea", 10028813.0, "0", "6", "human"],
                           ["rash", "Rash", 10037844.0, "Rash", 10037844.0, "11", "4", "human"]]}


def test_bad_entries_are_reported_with_file_and_record(nlp, tmp_path, report):
    bad = dict(GOOD, adverse_events=GOOD["adverse_events"] + [
        ["rash", None, None, None, None, "900", "4", "human"],   # outside the text
        ["vomiting", None, None, None, None, "0", "6", "human"],  # text mismatch
    ])
    path = _write(tmp_path, [bad, {"label_id": "DRUGY"}])
    docs = list(read_onsides(nlp, path, report=report))
    assert len(docs) == 1 and len(docs[0].spans["mentions"]) == 3
    reasons = [s["reason"] for s in report.skipped]
    assert len(report.skipped) == 3
    assert any("outside the text" in r for r in reasons)
    assert any("does not match" in r for r in reasons)
    assert any("section_name" in r for r in reasons)
    assert all(s["path"] == str(path) for s in report.skipped)
    assert "entry 2" in report.skipped[0]["record"]
    with pytest.raises(FormatError, match=r"bad.json, record #0 \(DRUGX/adverse reactions\) entry 2"):
        list(read_onsides(nlp, path, strict=True))


@pytest.mark.parametrize(
    "content,message",
    [(b"", "empty"), (b"\xff\xfe[", "not valid UTF-8"), (b"[{", "Malformed JSON"), (b"{}", "expected a list")],
)
def test_bad_files(nlp, tmp_path, content, message):
    path = tmp_path / "f.json"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=message) as err:
        list(read_onsides(nlp, path))
    assert str(path) in str(err.value)


@pytest.mark.parametrize("field,value", [("label_id", ["DRUGZ"]), ("label_id", {"x": 1}), ("section_name", 7), ("label_id", "  ")])
def test_ids_of_the_wrong_type_are_reported_not_crashing_convert(tmp_path, field, value):
    """Found by benchmarks/fuzz_inputs.py: a list label_id went into the Doc
    and `clinie convert` died with TypeError (unhashable list) in its stats."""
    from spacy_clinie.convert import convert

    path = _write(tmp_path, [dict(GOOD, **{field: value}), dict(GOOD, label_id="DRUGY")])
    result = convert(path, tmp_path / "out", "tac-onsides", dev_fraction=0.0)
    (split,) = result["splits"].values()
    assert split["stats"]["docs"] == 1
    skipped = split["report"]["skipped"]
    assert len(skipped) == 1 and skipped[0]["path"] == str(path) and skipped[0]["record"].startswith("#0")
    assert field in skipped[0]["reason"]
