"""Entry points: spaCy finds the registered functions without
``import spacy_clinie``, in a fresh process."""
import subprocess
import sys

CODE = """
import sys
from spacy.util import registry
names = {
    "readers": ["clinie.Corpus.v1", "clinie.TacOnsidesCorpus.v1", "clinie.TacXmlCorpus.v1", "clinie.BratCorpus.v1", "clinie.EuAdrCorpus.v1"],
    "tokenizers": ["clinie.Tokenizer.v1"],
    "scorers": ["clinie.mention_scorer.v1"],
}
for reg, items in names.items():
    for name in items:
        getattr(registry, reg).get(name)
import spacy
nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "clinie.Tokenizer.v1"}}})
print([t.text for t in nlp("rash/pruritus")])
"""


def test_entry_points_resolve_without_import():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "['rash', '/', 'pruritus']" in out.stdout


def test_reader_from_config(tmp_path):
    from spacy.util import registry

    from spacy_clinie.tokenizer import make_blank

    from .conftest import shared

    reader = registry.readers.get("clinie.EuAdrCorpus.v1")(path=shared("euadr", "EUADR_drug_disease.csv"), limit=5)
    nlp = make_blank()
    examples = list(reader(nlp))
    assert len(examples) == 5
    assert examples[0].reference.spans["mentions"][0].text == "venous thrombosis"
    assert examples[0].reference._.relations[0]["label"] == "PA"


def test_docbin_corpus_keeps_doc_metadata_on_the_input_side(tmp_path):
    """clinie.Corpus.v1 = spacy.Corpus.v1 + the section etc. on eg.predicted
    (spaCy's own reader gives a bare doc), and only metadata crosses over."""
    from spacy.tokens import DocBin
    from spacy.util import registry

    from spacy_clinie.readers import unannotated
    from spacy_clinie.tokenizer import make_blank

    nlp = make_blank()
    doc = nlp.make_doc("Severe rash and nausea.")
    doc.spans["mentions"] = [doc.char_span(7, 11, "ADR")]
    doc._.doc_id, doc._.label_id, doc._.section = "X/S1", "X", "adverse reactions"
    doc._.reactions = [{"id": "AR1", "str": "rash"}]
    DocBin(docs=[doc], store_user_data=True).to_disk(tmp_path / "c.spacy")
    plain = list(registry.readers.get("spacy.Corpus.v1")(path=tmp_path / "c.spacy", gold_preproc=False)(nlp))
    assert plain[0].predicted._.section is None
    (eg,) = registry.readers.get("clinie.Corpus.v1")(path=tmp_path / "c.spacy")(nlp)
    assert (eg.predicted._.doc_id, eg.predicted._.label_id, eg.predicted._.section) == ("X/S1", "X", "adverse reactions")
    assert eg.predicted._.reactions is None and not eg.predicted.spans.get("mentions")
    assert eg.reference.spans["mentions"][0].text == "rash"
    (fresh,) = unannotated(nlp, [eg.reference])
    assert fresh._.section == "adverse reactions" and fresh._.reactions is None and "mentions" not in fresh.spans


def test_mention_scorer():
    from spacy.training import Example
    from spacy.util import registry

    from spacy_clinie.tokenizer import make_blank

    nlp = make_blank()
    gold = nlp.make_doc("Severe rash and nausea.")
    gold.spans["mentions"] = [gold.char_span(7, 11, "ADR"), gold.char_span(16, 22, "ADR")]
    pred = nlp.make_doc(gold.text)
    pred.spans["mentions"] = [pred.char_span(0, 11, "ADR")]
    scores = registry.scorers.get("clinie.mention_scorer.v1")()([Example(pred, gold)])
    assert scores["mentions_f"] == 0.0
    assert scores["mentions_relaxed_f"] == 2 * 1.0 * 0.5 / 1.5
