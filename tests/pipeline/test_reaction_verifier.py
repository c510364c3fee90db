"""clinie_reaction_verifier: candidates, leave-own-label-out dictionary
rates, keep/drop/add by threshold, fragments for coordinations, training
with spacy train from a config, saving, and threshold choice on dev."""
import json
import subprocess
import sys

import numpy
import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from typer.testing import CliRunner

from spacy_clinie.candidates.dictionary import TermDictionary
from spacy_clinie.candidates.reactions import FEATURE_NAMES, candidate_features, gather_candidates
from spacy_clinie.cli import app
from spacy_clinie.extensions import register_extensions
from spacy_clinie.scoring import span_text
from spacy_clinie.tokenizer import make_blank

ADR = "AdverseReaction"
# nausea and rash are ADEs wherever they occur; "infection" is the
# indication in every label and never annotated.
TEMPLATE = "Patients treated for infection reported {a} and {b}. Muscle pain and cramps were rare. No infection was seen."
PAIRS = [("nausea", "rash"), ("rash", "headache"), ("nausea", "headache"), ("vomiting", "rash"), ("nausea", "vomiting"), ("headache", "vomiting")]


def gold_doc(nlp, label: str, a: str, b: str):
    register_extensions()
    text = TEMPLATE.format(a=a, b=b)
    doc = nlp.make_doc(text)
    doc._.doc_id = f"{label}/S1"
    doc._.label_id = label
    doc._.section = "adverse reactions"
    spans = []
    for i, word in enumerate((a, b, "muscle pain")):
        start = text.lower().index(word)
        spans.append(doc.char_span(start, start + len(word), ADR, span_id=f"T{i + 1}"))
    doc.spans["mentions"] = spans
    doc._.reactions = [{"id": f"R{i}", "str": s} for i, s in enumerate((a, b, "muscle pain", "muscle cramps"))]
    return doc


@pytest.fixture(scope="module")
def nlp():
    return make_blank("en")


@pytest.fixture(scope="module")
def golds(nlp):
    return [gold_doc(nlp, f"L{i}", a, b) for i, (a, b) in enumerate(PAIRS)]


def test_dictionary_rates_leave_the_own_label_out(nlp, golds):
    d = TermDictionary(nlp.vocab).build(golds, nlp.make_doc)
    assert "nausea" in d and "infection" not in d
    # nausea occurs in 3 labels and is annotated in all 3
    assert d.rate("nausea") == (3, 3)
    assert d.rate("nausea", exclude_label="L0") == (2, 2)
    # a string only one label annotates has no evidence from the others
    only = gold_doc(nlp, "L9", "dizziness", "rash")
    d2 = TermDictionary(nlp.vocab).build(golds + [only], nlp.make_doc)
    assert d2.rate("dizziness", exclude_label="L9") == (0, 0)
    # serialisation keeps counts and matching
    d3 = TermDictionary(nlp.vocab).from_bytes(d.to_bytes(), nlp.make_doc)
    assert d3.counts == d.counts
    assert [s.text for s in d3.match(golds[0])] == [s.text for s in d.match(golds[0])]


def test_training_candidates_include_perturbations_and_coordinations(nlp, golds):
    from spacy_clinie.candidates.coordination import make_coordination_candidates

    d = TermDictionary(nlp.vocab).build(golds, nlp.make_doc)
    pred = nlp.make_doc(golds[0].text)
    cands = gather_candidates(pred, dictionary=d, coordination=make_coordination_candidates(), reference=golds[0])
    by_key = {c.key: c for c in cands}
    assert {"gold"} <= by_key["nausea"].sources
    assert "perturbation" in by_key["reported nausea"].sources
    assert by_key["muscle cramps"].fragments is not None
    feats = candidate_features(pred, cands, d, exclude_label="L0")
    assert feats.shape == (len(cands), len(FEATURE_NAMES))
    assert numpy.isfinite(feats).all()


def train_pipeline(nlp_src, golds, steps: int = 60):
    nlp = make_blank("en")
    verifier = nlp.add_pipe("clinie_reaction_verifier", config={"model": {"@architectures": "clinie.ReactionVerifier.v1", "hidden_width": 8, "dropout": 0.0}})
    examples = [Example(nlp.make_doc(g.text), g) for g in golds]
    for eg in examples:
        for name in ("doc_id", "label_id", "section"):
            eg.predicted._.set(name, eg.reference._.get(name))
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.05
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer, drop=0.0)
    return nlp, verifier


def tagged(nlp, text: str, words):
    doc = nlp.make_doc(text)
    doc._.label_id = "NEW"
    doc._.section = "adverse reactions"
    spans = []
    for i, word in enumerate(words):
        start = text.lower().index(word)
        spans.append(doc.char_span(start, start + len(word), ADR, span_id=f"M{i + 1}"))
    doc.spans["mentions"] = spans
    return doc


def test_learns_to_accept_ades_and_reject_the_indication(nlp, golds):
    trained, verifier = train_pipeline(nlp, golds)
    doc = tagged(trained, TEMPLATE.format(a="nausea", b="rash"), ["infection", "nausea"])
    (cands,), (probs,) = verifier.predict([doc])
    p = {c.key: float(q) for c, q in zip(cands, probs)}
    assert p["nausea"] > 0.5 > p["infection"]
    assert p["rash"] > 0.5  # the dictionary proposes what the tagger missed
    verifier.keep_threshold, verifier.add_threshold = 0.5, 0.5
    out = verifier(doc)
    strings = {span_text(s).lower() for s in out.spans["mentions"]}
    assert "infection" not in strings and {"nausea", "rash"} <= strings
    rash = [s for s in out.spans["mentions"] if s.text.lower() == "rash"][0]
    assert rash._.attributes["source"] == "dictionary" and rash._.attributes["reaction_probability"] > 0.5
    assert {r["str"] for r in out._.reactions} == strings
    # keep everything, add nothing: the tagger's output comes back unchanged
    verifier.keep_threshold, verifier.add_threshold = 0.0, 1.01
    doc2 = verifier(tagged(trained, TEMPLATE.format(a="nausea", b="rash"), ["infection", "nausea"]))
    assert sorted(s.text for s in doc2.spans["mentions"]) == ["infection", "nausea"]


def test_coordination_candidates_are_added_with_fragments(nlp, golds):
    trained, verifier = train_pipeline(nlp, golds)
    verifier.keep_threshold, verifier.add_threshold = 0.0, 0.0
    doc = verifier(tagged(trained, TEMPLATE.format(a="nausea", b="rash"), ["nausea", "muscle pain"]))
    coord = [s for s in doc.spans["mentions"] if s._.attributes and s._.attributes.get("source") == "coordination"]
    assert "muscle cramps" in {span_text(s).lower() for s in coord}
    span = [s for s in coord if span_text(s).lower() == "muscle cramps"][0]
    assert len(span._.fragments) == 2 and [doc.text[a:b] for a, b in span._.fragments] == ["Muscle", "cramps"]


def test_save_load_identical_and_sweep(nlp, golds, tmp_path):
    trained, verifier = train_pipeline(nlp, golds)
    trained.to_disk(tmp_path / "pipe")
    loaded = spacy.load(tmp_path / "pipe")
    doc = tagged(trained, TEMPLATE.format(a="vomiting", b="rash"), ["infection", "vomiting"])
    a = verifier.predict([doc])[1][0]
    b = loaded.get_pipe("clinie_reaction_verifier").predict([doc])[1][0]
    assert numpy.allclose(a, b)
    preds = [tagged(trained, g.text, ["infection"]) for g in golds]
    for g, p in zip(golds, preds):
        p._.doc_id = g._.doc_id
    rows = verifier.sweep(golds, preds)
    best, none_added = rows[0], [r for r in rows if r["keep_threshold"] == 0.0 and r["add_threshold"] == 1.01][0]
    assert best["f"] > none_added["f"]  # the tagger alone only found the indication
    assert best["keep_threshold"] > 0.0  # ... which the best pair drops


def test_spacy_train_from_config_and_tune_cli(nlp, golds, tmp_path):
    db = DocBin(store_user_data=True)
    for g in golds:
        db.add(g)
    db.to_disk(tmp_path / "train.spacy")
    db.to_disk(tmp_path / "dev.spacy")
    out = subprocess.run(
        [sys.executable, "-m", "spacy", "train", "configs/verifier_cpu.cfg", "--output", str(tmp_path / "out"),
         "--paths.train", str(tmp_path / "train.spacy"), "--paths.dev", str(tmp_path / "dev.spacy"),
         "--training.max_steps", "20", "--training.eval_frequency", "10"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    model = tmp_path / "out" / "model-best"
    assert (model / "reaction_verifier" / "verifier.msgpack").exists()
    # the verifier alone on the training texts: the best pair adds many strings
    result = CliRunner().invoke(
        app, ["tune-verifier", str(model), str(tmp_path / "dev.spacy"), "--save", str(tmp_path / "tuned"), "--output", str(tmp_path / "sweep.json")]
    )
    assert result.exit_code == 0, result.output
    assert "without the verifier" in result.output
    best = json.loads((tmp_path / "sweep.json").read_text())["best"]
    tuned = spacy.load(tmp_path / "tuned")
    verifier = tuned.get_pipe("reaction_verifier")
    assert (verifier.keep_threshold, verifier.add_threshold) == (best["keep_threshold"], best["add_threshold"])
    assert best["add_threshold"] != 0.5  # not the default: the saved value is the chosen one
    # and a pipeline that sources the tuned verifier gets the same thresholds
    host = make_blank("en")
    host.add_pipe("reaction_verifier", source=tuned)
    host.to_disk(tmp_path / "host")
    again = spacy.load(tmp_path / "host").get_pipe("reaction_verifier")
    assert (again.keep_threshold, again.add_threshold) == (best["keep_threshold"], best["add_threshold"])


def test_tune_cli_names_a_pipeline_without_verifier(tmp_path):
    nlp = make_blank("en")
    nlp.to_disk(tmp_path / "blank")
    register_extensions()
    DocBin().to_disk(tmp_path / "dev.spacy")
    result = CliRunner().invoke(app, ["tune-verifier", str(tmp_path / "blank"), str(tmp_path / "dev.spacy")])
    assert result.exit_code == 1
    assert "no enabled clinie_reaction_verifier" in result.output


def test_empty_doc_and_doc_without_candidates_pass_unchanged(nlp, golds):
    trained, verifier = train_pipeline(nlp, golds, steps=5)
    verifier.keep_threshold, verifier.add_threshold = 0.5, 0.5
    empty = verifier(trained.make_doc(""))
    assert len(empty) == 0 and list(empty.spans.get("mentions", [])) == []
    text = "The tablets are white and round."
    doc = trained.make_doc(text)
    doc.spans["mentions"] = [doc.char_span(4, 11, "Drug", span_id="D1")]
    out = verifier(doc)
    assert [(s.text, s.label_, s.id_) for s in out.spans["mentions"]] == [("tablets", "Drug", "D1")]
    assert out.text == text


def test_nlp_pipe_with_two_processes_matches_one(nlp, golds):
    trained, verifier = train_pipeline(nlp, golds, steps=20)
    verifier.keep_threshold, verifier.add_threshold = 0.3, 0.3
    texts = [TEMPLATE.format(a=a, b=b) for a, b in PAIRS] * 2
    one = [[(s.start_char, s.end_char, span_text(s)) for s in d.spans["mentions"]] for d in trained.pipe(texts)]
    two = [[(s.start_char, s.end_char, span_text(s)) for s in d.spans["mentions"]] for d in trained.pipe(texts, n_process=2, batch_size=4)]
    assert one == two and any(one)


def test_spans_across_table_columns_are_split(nlp, golds):
    from spacy_clinie.candidates.reactions import split_at_breaks

    trained, verifier = train_pipeline(nlp, golds, steps=5)
    text = "Anemia     Neutropenia\\n\\n  Staphylococcal  bacteremia"
    text = text.replace("\\n", "\n")
    doc = trained.make_doc(text)
    doc._.section = "adverse reactions"
    doc.spans["mentions"] = [doc.char_span(0, 22, ADR, span_id="M1"), doc.char_span(26, len(text), ADR, span_id="M2")]
    assert [s.text for s in split_at_breaks(doc.spans["mentions"][0])] == ["Anemia", "Neutropenia"]
    assert [s.text for s in split_at_breaks(doc.spans["mentions"][1])] == ["Staphylococcal  bacteremia"]
    verifier.keep_threshold, verifier.add_threshold = 0.0, 1.01
    out = verifier(doc)
    got = sorted((s.text, (s._.attributes or {}).get("source")) for s in out.spans["mentions"])
    assert got == [("Anemia", "split"), ("Neutropenia", "split"), ("Staphylococcal  bacteremia", "tagger")]
    verifier.split_breaks = False
    doc2 = trained.make_doc(text)
    doc2.spans["mentions"] = [doc2.char_span(0, 22, ADR, span_id="M1")]
    assert [s.text for s in verifier(doc2).spans["mentions"]] == ["Anemia     Neutropenia"]
