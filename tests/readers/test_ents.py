"""clinie.MentionEntsCorpus.v1 (mentions -> doc.ents for stock ner) and
clinie_ents_to_spans (ents -> doc.spans["mentions"])."""
import subprocess
import sys

import pytest
from spacy.tokens import DocBin, Span

from spacy_clinie.extensions import register_extensions
from spacy_clinie.pipeline.ents_to_spans import EntsToSpans
from spacy_clinie.readers.ents import create_mention_ents_corpus, mentions_to_ents


def _doc(nlp, text, spans):
    register_extensions()
    doc = nlp.make_doc(text)
    doc.spans["mentions"] = [Span(doc, s, e, label=lab, span_id=f"T{i}") for i, (s, e, lab) in enumerate(spans)]
    return doc


def test_overlaps_keep_longest_first(nlp):
    # "severe skin rash" (0-3) contains "skin rash" (1-3); "rash" twice
    doc = _doc(nlp, "severe skin rash and rash", [(1, 3, "ADR"), (0, 3, "ADR"), (4, 5, "ADR")])
    assert mentions_to_ents(doc) == 1
    assert [(e.start, e.end, e.label_) for e in doc.ents] == [(0, 3, "ADR"), (4, 5, "ADR")]
    # every other token is annotated O, not missing
    assert [t.ent_iob_ for t in doc] == ["B", "I", "I", "O", "B"]


def test_reader_yields_examples_with_ents(nlp, tmp_path):
    docs = [
        _doc(nlp, "Nausea and vomiting were reported.", [(0, 1, "ADR"), (2, 3, "ADR")]),
        _doc(nlp, "No events.", []),
        _doc(nlp, "Headache occurred in many patients here.", [(0, 1, "ADR")]),
    ]
    DocBin(docs=docs, store_user_data=True).to_disk(tmp_path / "x.spacy")
    egs = list(create_mention_ents_corpus(tmp_path / "x.spacy")(nlp))
    assert [len(eg.reference.ents) for eg in egs] == [2, 0, 1]
    assert egs[0].predicted.text == docs[0].text and not egs[0].predicted.ents
    assert len(list(create_mention_ents_corpus(tmp_path / "x.spacy", limit=2)(nlp))) == 2
    assert len(list(create_mention_ents_corpus(tmp_path, max_length=4)(nlp))) == 1  # a folder too
    with pytest.raises(ValueError, match="no path"):
        list(create_mention_ents_corpus(None)(nlp))


def test_ents_to_spans(nlp):
    doc = nlp.make_doc("Nausea and dizziness in Boston")
    doc.ents = [Span(doc, 0, 1, label="ADR"), Span(doc, 2, 3, label="ADR"), Span(doc, 4, 5, label="GPE")]
    EntsToSpans(labels=["ADR"])(doc)
    assert [(s.text, s.label_, s.id_) for s in doc.spans["mentions"]] == [
        ("Nausea", "ADR", "M1"),
        ("dizziness", "ADR", "M2"),
    ]
    doc.spans["mentions"] = []
    EntsToSpans(overwrite=False)(doc)
    assert len(doc.spans["mentions"]) == 0
    EntsToSpans()(doc)
    assert len(doc.spans["mentions"]) == 3


def test_entry_points_resolve_without_import(tmp_path):
    """The reader and the factory are found through setup.cfg's entry points."""
    code = (
        "import spacy, sys\n"
        "from spacy.util import registry\n"
        "assert 'spacy_clinie' not in sys.modules\n"
        "registry.readers.get('clinie.MentionEntsCorpus.v1')\n"
        "nlp = spacy.blank('en'); nlp.add_pipe('clinie_ents_to_spans')\n"
        "print(nlp.pipe_names)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ents_to_spans" in out.stdout


def test_dropped_overlaps_are_counted_and_warned_once(nlp, tmp_path):
    """Issue 24, item 3: the mentions that cannot be entities (they overlap a
    longer one) are counted in the reader's report and warned about once per
    corpus, not once per epoch and not never."""
    import warnings

    docs = [
        _doc(nlp, "severe skin rash and rash", [(1, 3, "ADR"), (0, 3, "ADR"), (4, 5, "ADR")]),
        _doc(nlp, "No events.", []),
        _doc(nlp, "acute liver injury, liver injury", [(0, 3, "ADR"), (1, 3, "ADR"), (2, 3, "ADR"), (4, 6, "ADR")]),
    ]
    path = tmp_path / "overlap.spacy"
    DocBin(docs=docs, store_user_data=True).to_disk(path)
    corpus = create_mention_ents_corpus(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):  # three epochs
            assert len(list(corpus(nlp))) == 3
    messages = [str(w.message) for w in caught if "overlap" in str(w.message)]
    assert len(messages) == 1, messages
    assert str(path) in messages[0] and "3 of 7 mentions" in messages[0] and "2 docs" in messages[0]
    assert corpus.report.counts["mentions"] == 7
    assert corpus.report.counts["mentions_dropped_overlapping"] == 3
    assert corpus.report.counts["docs_with_dropped_overlaps"] == 2
