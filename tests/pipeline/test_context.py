"""medspaCy ConText and sectionizer on doc.spans["mentions"]; flags exported
through span._.attributes (DocBin, brat)."""
import pytest
from spacy.tokens import DocBin, Span

from spacy_clinie.extensions import MENTIONS_KEY
from spacy_clinie.pipeline.context import add_context_pipes
from spacy_clinie.readers import doc_to_brat
from spacy_clinie.tokenizer import make_blank

TEXT = (
    "Family History: mother had seizures.\n"
    "Assessment: Patient denies rash. Past history of hepatitis. "
    "Return if you develop nausea. Possible pancreatitis. Hypertension was treated."
)
TERMS = ["seizures", "rash", "hepatitis", "nausea", "pancreatitis", "hypertension"]


@pytest.fixture(scope="module")
def nlp():
    nlp = make_blank()
    ruler = nlp.add_pipe("span_ruler", config={"spans_key": MENTIONS_KEY, "annotate_ents": False, "phrase_matcher_attr": "LOWER"})
    ruler.add_patterns([{"label": "AdverseReaction", "pattern": t} for t in TERMS])
    assert add_context_pipes(nlp) == ["sentencizer", "medspacy_sectionizer", "medspacy_context", "clinie_context_attributes"]
    return nlp


def _attrs(doc):
    return {s.text.lower(): s._.attributes or {} for s in doc.spans[MENTIONS_KEY]}


def test_context_flags_and_sections(nlp):
    attrs = _attrs(nlp(TEXT))
    assert attrs["seizures"].get("is_family") is True
    assert attrs["seizures"]["section_category"] == "family_history"
    assert attrs["rash"].get("is_negated") is True
    assert attrs["hepatitis"].get("is_historical") is True
    assert attrs["nausea"].get("is_hypothetical") is True
    assert attrs["pancreatitis"].get("is_uncertain") is True
    # under the "Past history" header the sectionizer marks it historical only
    assert attrs["hypertension"] == {"is_historical": True, "section_category": "past_medical_history"}
    # the mentions got ids (attributes are stored by mention id)
    doc = nlp(TEXT)
    assert all(s.id_ for s in doc.spans[MENTIONS_KEY])


def test_idempotent_and_flags_removed(nlp):
    doc = nlp(TEXT)
    component = nlp.get_pipe("clinie_context_attributes")
    before = _attrs(doc)
    component(doc)
    assert _attrs(doc) == before
    rash = [s for s in doc.spans[MENTIONS_KEY] if s.text == "rash"][0]
    rash._.is_negated = False
    component(doc)
    assert "is_negated" not in _attrs(doc)["rash"]


def test_docbin_and_brat_carry_attributes(nlp):
    docs = list(nlp.pipe([TEXT, "No rash."]))
    back = list(DocBin().from_bytes(DocBin(store_user_data=True, docs=docs).to_bytes()).get_docs(nlp.vocab))
    assert [_attrs(d) for d in back] == [_attrs(d) for d in docs]
    ann = doc_to_brat(back[0])
    assert "\tis_negated T2" in ann and "\tis_family T1" in ann
    assert "section_category T1 family_history" in ann


def test_keep_medspacy_objects():
    nlp = make_blank()
    nlp.add_pipe("span_ruler", config={"spans_key": "adr", "annotate_ents": False}).add_patterns(
        [{"label": "ADR", "pattern": "rash"}]
    )
    add_context_pipes(nlp, spans_key="adr", sectionizer=False)
    nlp.get_pipe("clinie_context_attributes").keep_medspacy_objects = True
    doc = nlp("Patient denies rash.")
    assert doc._.context_graph is not None
    assert doc.spans["adr"][0]._.attributes == {"is_negated": True}
    assert Span.has_extension("modifiers") and doc.spans["adr"][0]._.modifiers
