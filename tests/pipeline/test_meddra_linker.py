"""clinie_meddra_linker: behaviour on a tiny MedDRA-format release, the
lifecycle (initialize / predict / set_annotations) and serialisation."""
import subprocess
import sys

import pytest
from spacy.training import Example

from spacy_clinie.extensions import MENTIONS_KEY, get_mentions
from spacy_clinie.tokenizer import make_blank

from ..kb.release import write_release

SURFACE_ONLY = {"encoder": None}


def kb_loader(path):
    from spacy.util import registry

    return registry.misc.get("clinie.MeddraAsciiLoader.v1")(path=str(path))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_release(tmp_path_factory.mktemp("meddra") / "ascii")


def make_nlp(release, config=SURFACE_ONLY):
    nlp = make_blank()
    nlp.add_pipe("clinie_meddra_linker", name="meddra_linker", config=config)
    nlp.initialize(lambda: [], kb_loader=None) if release is None else nlp.get_pipe("meddra_linker").initialize(lambda: [], nlp=nlp, kb_loader=kb_loader(release))
    return nlp


@pytest.fixture(scope="module")
def linked_nlp(release):
    return make_nlp(release)


def doc_with(nlp, text, phrases, label="AdverseReaction"):
    doc = nlp.make_doc(text)
    spans = []
    for i, phrase in enumerate(phrases):
        start = text.index(phrase)
        spans.append(doc.char_span(start, start + len(phrase), label=label, span_id=f"M{i + 1}"))
    doc.spans[MENTIONS_KEY] = spans
    return doc


TEXT = "Headaches, anemia, diarrhea, TMA and peripheral edema were seen; itching and bleeding too."
PHRASES = ["Headaches", "anemia", "diarrhea", "TMA", "peripheral edema", "itching", "bleeding"]
EXPECTED_PT = ["Headache", "Anaemia", "Diarrhoea", "Thrombotic microangiopathy", "Oedema peripheral", "Pruritus", "Haemorrhage"]


def link(nlp, text=TEXT, phrases=PHRASES):
    doc = nlp.get_pipe("meddra_linker")(doc_with(nlp, text, phrases))
    return doc, get_mentions(doc)


def test_links_variants(linked_nlp):
    doc, spans = link(linked_nlp)
    assert [s._.meddra[0]["meddra_pt"] for s in spans] == EXPECTED_PT
    best = {s.text: s._.meddra[0] for s in spans}
    # exact (case only), plural, British spelling, abbreviation, word order
    assert best["Headaches"]["method"] == "key" and best["anemia"]["method"] == "key"
    assert best["TMA"]["meddra_pt_id"] == "90000004" and best["TMA"]["method"] == "key"
    assert best["itching"] == {**best["itching"], "meddra_llt": "Itching", "meddra_llt_id": "90000101", "meddra_pt_id": "90000008"}
    assert best["bleeding"]["soc"] == "Vascular disorders" and best["bleeding"]["soc_id"] == "90100007"
    assert best["peripheral edema"]["method"] == "bag"
    for s in spans:
        cands = s._.meddra_candidates
        assert 1 < len(cands) <= 5 and cands[0] == s._.meddra[0]
        assert [c["score"] for c in cands] == sorted((c["score"] for c in cands), reverse=True)


def test_misspelling_goes_to_similarity(linked_nlp):
    _, spans = link(linked_nlp, "Severe naussea.", ["naussea"])
    best = spans[0]._.meddra[0]
    assert best["meddra_pt"] == "Nausea" and best["method"] == "similarity" and best["score"] < 0.97


def test_threshold_and_labels(release):
    nlp = make_nlp(release, {**SURFACE_ONLY, "threshold": 0.9})
    doc = doc_with(nlp, "Dizziness with rash.", ["Dizziness", "rash"])
    doc.spans[MENTIONS_KEY] = [doc.spans[MENTIONS_KEY][0], doc.char_span(15, 19, label="Severity", span_id="S1")]
    nlp.get_pipe("meddra_linker")(doc)
    dizzy, rash = get_mentions(doc)
    assert dizzy._.meddra == [] and dizzy._.meddra_candidates  # no term is close enough
    assert rash._.meddra is None  # not an AdverseReaction


def test_predict_is_pure_and_overwrite(linked_nlp, release):
    linker = linked_nlp.get_pipe("meddra_linker")
    doc = doc_with(linked_nlp, TEXT, PHRASES)
    preds = linker.predict([doc])
    assert all(s._.meddra is None for s in get_mentions(doc))
    linker.set_annotations([doc], preds)
    first = [s._.meddra for s in get_mentions(doc)]
    linker.set_annotations([doc], preds)  # idempotent
    assert [s._.meddra for s in get_mentions(doc)] == first

    keep = make_nlp(release, {**SURFACE_ONLY, "overwrite": False})
    doc = doc_with(keep, TEXT, PHRASES)
    manual = [{"meddra_pt": "Rash", "meddra_pt_id": "90000012", "meddra_llt": "Rash", "meddra_llt_id": "90000012"}]
    get_mentions(doc)[0]._.meddra = manual
    keep.get_pipe("meddra_linker")(doc)
    assert get_mentions(doc)[0]._.meddra == manual
    assert get_mentions(doc)[1]._.meddra[0]["meddra_pt"] == "Anaemia"


def test_initialize_needs_terms(nlp):
    nlp = make_blank()
    linker = nlp.add_pipe("clinie_meddra_linker", config=SURFACE_ONLY)
    with pytest.raises(ValueError, match="index is empty"):
        linker(doc_with(nlp, TEXT, PHRASES))
    bare = doc_with(nlp, TEXT, PHRASES)
    with pytest.raises(ValueError, match="no MedDRA terms"):
        nlp.initialize(lambda: [Example(bare, bare)])


def test_initialize_from_examples():
    """Without a kb_loader the gold codes of the examples become the terms."""
    nlp = make_blank()
    nlp.add_pipe("clinie_meddra_linker", name="meddra_linker", config=SURFACE_ONLY)
    gold = doc_with(nlp, "Patient had anaemia.", ["anaemia"])
    gold.spans[MENTIONS_KEY][0]._.meddra = [{"meddra_pt": "Anaemia", "meddra_pt_id": "7", "meddra_llt": "Anaemia", "meddra_llt_id": "7"}]
    nlp.initialize(lambda: [Example(nlp.make_doc(gold.text), gold)])
    _, spans = link(nlp, "Severe anemias.", ["anemias"])
    assert spans[0]._.meddra[0]["meddra_pt_id"] == "7"
    scores = nlp.get_pipe("meddra_linker").score([Example(nlp.get_pipe("meddra_linker")(doc_with(nlp, gold.text, ["anaemia"])), gold)])
    assert scores == {"meddra_pt_acc": 1.0, "meddra_llt_acc": 1.0}


def test_serialization_round_trip(linked_nlp, tmp_path):
    before = [s._.meddra_candidates for s in link(linked_nlp)[1]]
    linked_nlp.to_disk(tmp_path / "pipe")
    assert (tmp_path / "pipe" / "meddra_linker" / "kb" / "terms.jsonl").exists()
    import spacy

    loaded = spacy.load(tmp_path / "pipe")
    assert loaded.get_pipe("meddra_linker").encoder is None
    assert [s._.meddra_candidates for s in link(loaded)[1]] == before
    from_bytes = make_blank()
    from_bytes.add_pipe("clinie_meddra_linker", name="meddra_linker", config=SURFACE_ONLY)
    from_bytes.from_bytes(linked_nlp.to_bytes())
    assert [s._.meddra_candidates for s in link(from_bytes)[1]] == before
    # pipe() in batches == one doc at a time
    docs = [doc_with(loaded, TEXT, PHRASES) for _ in range(3)]
    piped = list(loaded.get_pipe("meddra_linker").pipe(docs, batch_size=2))
    assert [[s._.meddra for s in get_mentions(d)] for d in piped] == [[c[:1] for c in before]] * 3


LOAD_WITHOUT_IMPORT = """
import sys, spacy
nlp = spacy.load(sys.argv[1])
doc = nlp.make_doc("Patient reported diarrhea.")
doc.spans["mentions"] = [doc.char_span(17, 25, label="AdverseReaction", span_id="M1")]
doc = nlp.get_pipe("meddra_linker")(doc)
print(nlp.pipe_names, doc.spans["mentions"][0]._.meddra[0]["meddra_pt"])
"""


def test_spacy_load_finds_factory_via_entry_points(linked_nlp, tmp_path):
    linked_nlp.to_disk(tmp_path / "pipe")
    out = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_IMPORT, str(tmp_path / "pipe")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['meddra_linker'] Diarrhoea"


def test_paraphrase_needs_embeddings(release, tmp_path):
    """The one test with the real MiniLM encoder: a paraphrase with little
    character overlap links through embeddings, and not without them."""
    nlp = make_nlp(release, {})
    phrases = ["throwing up", "stomach ache"]
    _, spans = link(nlp, "Throwing up and stomach ache.".lower(), phrases)
    assert [s._.meddra[0]["meddra_pt"] for s in spans] == ["Vomiting", "Abdominal pain"]
    assert all(s._.meddra[0]["method"] == "similarity" for s in spans)
    _, plain = link(make_nlp(release), "throwing up and stomach ache.", phrases)
    assert [s._.meddra[0]["meddra_pt"] for s in plain] != ["Vomiting", "Abdominal pain"]
    # the embeddings are saved with the index; a different encoder is refused
    nlp.to_disk(tmp_path / "emb")
    import spacy

    with pytest.raises(ValueError, match="embedded with"):
        spacy.load(tmp_path / "emb", config={"components.meddra_linker.encoder.model": str(tmp_path / "elsewhere")})
