"""clinie_drug_ner: drug mentions with ids from the package dictionary,
brand (generic) pairs, classes, abbreviations, config settings, writers,
serialisation, nlp.pipe == nlp(), and spacy.load through entry points."""
import pickle
import subprocess
import sys

import pytest
from spacy.tokens import DocBin

from spacy_clinie.batch.records import doc_to_record
from spacy_clinie.extensions import MENTIONS_KEY
from spacy_clinie.kb.drugs import DrugDictionary
from spacy_clinie.pipeline.drug_ner import drug_mentions, is_abbreviation
from spacy_clinie.readers import read_brat_file, read_tac_xml, write_brat, write_tac_xml
from spacy_clinie.tokenizer import make_blank

TEXTS = [
    "Patient on WELLBUTRIN (BUPROPION) 150 mg daily and lisinopril 10 mg.",
    "Cough after starting an ACE inhibitor; NSAIDs and statins were held. Tylenol (acetaminophen) for pain.",
    "Gingival overgrowth on cyclosporin A (CsA) resolved when CsA was stopped; insulin glargine continued.",
    "No drugs here, only nausea and a headache.",
]


def drug_nlp(**config):
    nlp = make_blank()
    nlp.add_pipe("clinie_drug_ner", config=config)
    return nlp


@pytest.fixture(scope="module")
def nlp():
    return drug_nlp()


def drugs(doc):
    return [(s.text, s.kb_id_, s._.attributes, s._.fragments) for s in drug_mentions(doc)]


def test_ids_classes_and_multiword_names(nlp):
    doc = nlp(TEXTS[1])
    found = {s.text: s for s in drug_mentions(doc)}
    assert set(found) == {"ACE inhibitor", "NSAIDs", "statins", "Tylenol (acetaminophen"}
    ace = found["ACE inhibitor"]
    assert ace.kb_id_ == "MeSH:D000806" and ace._.attributes["drug_class"] is True
    assert ace.id_ and ace.label_ == "Drug"
    assert "drug_class" not in found["Tylenol (acetaminophen"]._.attributes
    glargine = [s for s in drug_mentions(nlp(TEXTS[2])) if s.text == "insulin glargine"]
    assert glargine and glargine[0].kb_id_ == "DrugBank:DB00047"
    assert drug_mentions(nlp(TEXTS[3])) == []


def test_brand_generic_pair_is_one_drug_with_two_names(nlp):
    doc = nlp(TEXTS[0])
    (pair, lisinopril) = drug_mentions(doc)
    assert pair.kb_id_ == "DrugBank:DB01156"
    assert pair._.attributes == {
        "drugbank_id": "DB01156", "mesh_id": "D000077444", "medline_plus_id": "a695033", "match": "exact", "brand_generic": True,
    }  # fmt: skip
    assert [doc.text[s:e] for s, e in pair._.fragments] == ["WELLBUTRIN", "BUPROPION"]
    assert lisinopril.text == "lisinopril" and lisinopril._.fragments is None
    norms = doc._.mention_attrs[pair.id_]["normalizations"]
    assert {(n["db"], n["db_id"], n["text"]) for n in norms} == {
        ("DrugBank", "DB01156", "Bupropion"), ("MeSH", "D000077444", "Bupropion"), ("MedlinePlus", "a695033", "Bupropion"),
    }  # fmt: skip
    # the other way round, and not for two different drugs
    assert len(drug_mentions(nlp("bupropion (Wellbutrin) was stopped"))) == 1
    assert len(drug_mentions(nlp("lisinopril (metformin) was stopped"))) == 2


def test_abbreviations(nlp):
    doc = nlp(TEXTS[2])
    texts = [s.text for s in drug_mentions(doc)]
    assert texts == ["cyclosporin A", "CsA", "CsA", "insulin glargine"]  # a short form is a mention of its own
    short = [s for s in drug_mentions(doc) if s.text == "CsA"]
    assert all(s.kb_id_ == "DrugBank:DB00091" and s._.attributes["match"] == "abbreviation" for s in short)
    assert [s.text for s in drug_mentions(drug_nlp(abbreviations=False)(TEXTS[2]))] == ["cyclosporin A", "insulin glargine"]
    # lower-case words and unrelated letters are not short forms
    assert [s.text for s in drug_mentions(nlp("lisinopril (daily) and lisinopril (XYZ) XYZ"))] == ["lisinopril", "lisinopril"]
    assert is_abbreviation("CsA", "cyclosporin A") and is_abbreviation("5-ASA", "5-aminosalicylic acid")
    assert not is_abbreviation("Biaxin", "clarithromycin") and not is_abbreviation("XYZ", "lisinopril")


def test_extra_terms_deny_list_and_classes():
    nlp = drug_nlp(
        extra_terms={"beta blockers": "adrenergic beta-antagonists", "Zorblix": "zorblixumab"},
        deny=["statins", "DB00722"],
        include_classes=False,
    )
    doc = nlp("Beta blockers, statins, ACE inhibitors, lisinopril and ZORBLIX were given; aspirin too.")
    found = {s.text: s for s in drug_mentions(doc)}
    # a class given as an extra term is kept: extra terms are the user's call
    assert set(found) == {"Beta blockers", "ZORBLIX", "aspirin"}
    assert found["Beta blockers"].kb_id_.startswith("MeSH:") and found["Beta blockers"]._.attributes["match"] == "extra"
    assert found["ZORBLIX"].kb_id_ == "" and found["ZORBLIX"]._.attributes == {"match": "extra"}


def test_case_handling_and_bad_settings():
    text = "aSpIrIn, Aspirin, ASPIRIN and aspirin"
    assert len(drug_mentions(drug_nlp()(text))) == 4
    assert [s.text for s in drug_mentions(drug_nlp(case="sensitive")(text))] == ["Aspirin", "ASPIRIN", "aspirin"]
    only = drug_nlp(case_sensitive_terms=["aspirin"])("aSpIrIn and wARFARIN")
    assert [s.text for s in drug_mentions(only)] == ["wARFARIN"]
    with pytest.raises(ValueError, match="case must be one of"):
        drug_nlp(case="upper")
    with pytest.raises(ValueError, match="max_tokens"):
        drug_nlp(max_tokens=0)
    with pytest.raises(ValueError, match="min_length"):
        DrugDictionary(min_length=0)


def test_deny_mesh_trees():
    text = "COX-2 inhibitors lower cyclooxygenase-2 mRNA."
    default = [s.text for s in drug_mentions(drug_nlp()(text))]
    everything = [s.text for s in drug_mentions(drug_nlp(deny_mesh_trees=[])(text))]
    assert "cyclooxygenase-2" not in default and "mRNA" not in default
    assert {"cyclooxygenase-2", "mRNA"} <= set(everything)


def test_idempotent_and_keeps_other_mentions(nlp):
    base = make_blank()
    ruler = base.add_pipe("span_ruler", config={"spans_key": MENTIONS_KEY, "annotate_ents": False})
    ruler.add_patterns([{"label": "AdverseReaction", "pattern": "Cough"}])
    doc = nlp.get_pipe("clinie_drug_ner")(base(TEXTS[1]))
    first = [(s.text, s.label_, s.id_, s._.attributes) for s in doc.spans[MENTIONS_KEY]]
    assert first[0][:2] == ("Cough", "AdverseReaction")
    again = nlp.get_pipe("clinie_drug_ner")(doc)
    assert [(s.text, s.label_, s.id_, s._.attributes) for s in again.spans[MENTIONS_KEY]] == first
    assert len(again._.mention_attrs) == len(first) - 1  # the ruler's mention has no attributes
    # overwrite = false keeps an existing drug span and adds no overlapping one
    keep = drug_nlp(overwrite=False).get_pipe("clinie_drug_ner")
    doc = base(TEXTS[1])
    start = TEXTS[1].index("ACE inhibitor")
    doc.spans[MENTIONS_KEY] = list(doc.spans[MENTIONS_KEY]) + [doc.char_span(start, start + 13, label="Drug")]
    out = keep(doc)
    assert [s.text for s in drug_mentions(out)].count("ACE inhibitor") == 1


def test_pipe_equals_call_and_writers(nlp, tmp_path):
    piped = list(nlp.pipe(TEXTS, batch_size=2))
    called = [nlp(t) for t in TEXTS]
    assert [drugs(d) for d in piped] == [drugs(d) for d in called]
    # DocBin keeps ids, attributes, fragments and normalisations
    back = list(DocBin(store_user_data=True, docs=piped).get_docs(nlp.vocab))
    assert [drugs(d) for d in back] == [drugs(d) for d in piped]
    assert [d._.mention_attrs for d in back] == [d._.mention_attrs for d in piped]
    # brat: fragments, A lines for the ids, N lines with the drug name
    for i, doc in enumerate(piped):
        doc._.doc_id = f"note{i}"
    write_brat(piped, tmp_path / "brat")
    ann = (tmp_path / "brat" / "note0.ann").read_text()
    assert "Drug 11 21;23 32\tWELLBUTRIN BUPROPION" in ann
    assert "drugbank_id T1 DB01156" in ann and "brand_generic T1" in ann
    assert "Reference T1 DrugBank:DB01156\tBupropion" in ann
    reread = read_brat_file(make_blank(), tmp_path / "brat" / "note0.txt", strict=True)

    def fragments(span):
        return [list(f) for f in span._.fragments or [[span.start_char, span.end_char]]]

    assert [(s.text, s._.attributes, fragments(s)) for s in drug_mentions(reread)] == [
        (s.text, s._.attributes, fragments(s)) for s in drug_mentions(piped[0])
    ]
    # TAC XML: discontiguous offsets of the pair
    write_tac_xml(piped[:1], tmp_path / "xml")
    xml = (tmp_path / "xml" / "note0.xml").read_text()
    assert 'type="Drug" start="11,23" len="10,9"' in xml
    reread = list(read_tac_xml(make_blank(), tmp_path / "xml" / "note0.xml", strict=True))
    assert [fragments(s) for s in drug_mentions(reread[0])] == [fragments(s) for s in drug_mentions(piped[0])]
    # clinie pipe's JSONL record: kb_id and the ids in the attributes
    record = doc_to_record(piped[0], "note0", model="test")
    pair = [s for s in record["spans"] if s["label"] == "Drug"][0]
    assert pair["kb_id"] == "DrugBank:DB01156" and pair["attributes"]["drugbank_id"] == "DB01156"
    assert pair["fragments"] == [[11, 21], [23, 32]]


def test_to_disk_bytes_and_pickle(tmp_path):
    nlp = drug_nlp(extra_terms={"zorblix": "zorblixumab"}, deny=["statins"])
    nlp.to_disk(tmp_path / "pipe")
    import spacy

    loaded = spacy.load(tmp_path / "pipe")
    text = TEXTS[1] + " Zorblix too."
    assert drugs(loaded(text)) == drugs(nlp(text))
    assert "statins" not in [s.text for s in drug_mentions(loaded(text))]
    rebuilt = drug_nlp(extra_terms={"zorblix": "zorblixumab"}, deny=["statins"]).from_bytes(nlp.to_bytes())
    assert drugs(rebuilt(text)) == drugs(nlp(text))
    clone = pickle.loads(pickle.dumps(nlp))
    assert drugs(clone(text)) == drugs(nlp(text))


ENTRY_POINT_CODE = """
import sys
before = set(sys.modules)
import spacy
nlp = spacy.load(sys.argv[1])
assert not any(m.startswith("spacy_clinie") for m in before)
doc = nlp("Rash on WELLBUTRIN (BUPROPION).")
print(nlp.pipe_names)
print([(s.label_, s.kb_id_) for s in doc.spans["mentions"]])
"""


def test_spacy_load_through_entry_points(tmp_path):
    drug_nlp().to_disk(tmp_path / "pipe")
    out = subprocess.run([sys.executable, "-c", ENTRY_POINT_CODE, str(tmp_path / "pipe")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert "clinie_drug_ner" in lines[0]
    assert "('Drug', 'DrugBank:DB01156')" in lines[1]
