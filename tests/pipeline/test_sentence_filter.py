"""Sentence units, clinie.SentenceCorpus.v1 (upsampling, weighted random
sampling), clinie_textcat's label-weighted loss and clinie_sentence_filter
in front of a tagger, on tiny docs written here."""
import json
import subprocess
import sys
from collections import Counter

import numpy
import pytest
import spacy
from spacy.tokens import DocBin, Span
from spacy.training import Example
from spacy.util import registry
from thinc.api import Config

from spacy_clinie.scoring.components import score_sentence_filter
from spacy_clinie.readers.sentence_corpus import SentenceCorpus
from spacy_clinie.sentences import kept_token_indices, sentence_units, tokens_doc
from spacy_clinie.tokenizer import make_blank

ADR = "AdverseReaction"
DOCS = [
    ("Severe rash was reported.\nStore at room temperature.\nNausea and vomiting occurred.", ["rash", "Nausea", "vomiting"]),
    ("Take with food. Headache was common in trials.\n\n  \nDose adjustment is not needed.", ["Headache"]),
    ("Keep out of reach of children.\nDiarrhea and fatigue were seen.", ["Diarrhea", "fatigue"]),
    ("Do not crush the tablets.\nNo dose change for elderly patients.", []),
]


def make_docs(nlp):
    docs = []
    for text, mentions in DOCS:
        doc = nlp.make_doc(text)
        doc.spans["mentions"] = [
            doc.char_span(text.index(m), text.index(m) + len(m), ADR, span_id=f"M{i}") for i, m in enumerate(mentions)
        ]
        docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def nlp():
    return make_blank()


@pytest.fixture(scope="module")
def corpus_path(nlp, tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "train.spacy"
    DocBin(docs=make_docs(nlp), store_user_data=True).to_disk(path)
    return path


def mention_texts(doc):
    return [s.text for s in doc.spans["mentions"]]


def unit_texts(doc, **kw):
    return [doc[s:e].text.strip() for s, e in sentence_units(doc, **kw)]


# ------------------------------------------------------------ units


def test_sentence_units(nlp):
    doc = nlp.make_doc(DOCS[1][0])
    # sentences, also cut at line breaks; whitespace-only units dropped
    assert unit_texts(doc) == ["Take with food.", "Headache was common in trials.", "Dose adjustment is not needed."]
    # bullet lists and table rows rarely end in a full stop
    bullets = nlp.make_doc("Common reactions:\n *  rash\n *  nausea (6.1)\n")
    assert unit_texts(bullets) == ["Common reactions:", "*  rash", "*  nausea (6.1)"]
    assert unit_texts(bullets, split_newlines=False) == ["Common reactions:\n *  rash\n *  nausea (6.1)"]
    assert unit_texts(nlp.make_doc("a b c d e f g"), max_tokens=3) == ["a b c", "d e f", "g"]
    assert sentence_units(nlp.make_doc("")) == []
    # the doc's own sentence boundaries win when it has them
    doc = nlp.make_doc("one two three four")
    doc[2].is_sent_start = True
    assert unit_texts(doc) == ["one two", "three four"]


def test_tokens_doc_and_kept_indices(nlp):
    doc = nlp.make_doc("A rash. No. A cough.")
    assert kept_token_indices(doc, "ade_sentences") is None
    doc.spans["ade_sentences"] = [Span(doc, 0, 3, "ADE"), Span(doc, 5, 8, "ADE")]
    idx = kept_token_indices(doc, "ade_sentences")
    assert idx == [0, 1, 2, 5, 6, 7]
    assert tokens_doc(doc, idx).text == "A rash. A cough."


# ------------------------------------------------------------ reader


def labels(examples):
    return [(eg.reference.text.strip(), eg.reference.cats["ADE"]) for eg in examples]


def test_corpus_units_and_labels(nlp, corpus_path):
    examples = list(SentenceCorpus(corpus_path)(nlp))
    assert labels(examples) == [
        ("Severe rash was reported.", 1.0),
        ("Store at room temperature.", 0.0),
        ("Nausea and vomiting occurred.", 1.0),
        ("Take with food.", 0.0),
        ("Headache was common in trials.", 1.0),
        ("Dose adjustment is not needed.", 0.0),
        ("Keep out of reach of children.", 0.0),
        ("Diarrhea and fatigue were seen.", 1.0),
        ("Do not crush the tablets.", 0.0),
        ("No dose change for elderly patients.", 0.0),
    ]
    assert all(eg.reference.cats["NO_ADE"] == 1 - eg.reference.cats["ADE"] for eg in examples)
    assert all(eg.predicted.text == eg.reference.text for eg in examples)
    assert SentenceCorpus(corpus_path).class_counts(nlp) == (4, 6)


def test_upsampling(nlp, corpus_path):
    examples = list(SentenceCorpus(corpus_path, upsample_positives=3)(nlp))
    counts = Counter(eg.reference.cats["ADE"] for eg in examples)
    assert counts == {1.0: 12, 0.0: 6}
    # order is kept: copies follow their original
    assert labels(examples)[:4] == [("Severe rash was reported.", 1.0)] * 3 + [("Store at room temperature.", 0.0)]
    # fractional: a seeded share of the positives get the extra copy
    frac = Counter(eg.reference.cats["ADE"] for eg in SentenceCorpus(corpus_path, upsample_positives=1.5, seed=3)(nlp))
    assert 4 <= frac[1.0] <= 8 and frac[0.0] == 6
    with pytest.raises(ValueError):
        SentenceCorpus(corpus_path, upsample_positives=0.5)


def test_weighted_random_sampling(nlp, corpus_path):
    reader = SentenceCorpus(corpus_path, sampling="weighted", positive_weight="balanced", n_samples=4000, seed=0)
    first = list(reader(nlp))
    share = sum(eg.reference.cats["ADE"] for eg in first) / len(first)
    assert len(first) == 4000 and 0.46 < share < 0.54  # balanced: 4 positives weigh as much as 6 negatives
    # each call (each epoch with max_epochs = -1) draws a new sample
    second = list(reader(nlp))
    assert [eg.reference.text for eg in first] != [eg.reference.text for eg in second]
    skewed = list(SentenceCorpus(corpus_path, sampling="weighted", positive_weight=6.0, n_samples=4000)(nlp))
    share = sum(eg.reference.cats["ADE"] for eg in skewed) / len(skewed)
    assert 0.76 < share < 0.84  # 4 * 6 / (4 * 6 + 6) = 0.8
    # the same seed gives the same sample
    again = SentenceCorpus(corpus_path, sampling="weighted", positive_weight="balanced", n_samples=4000, seed=0)
    assert [eg.reference.text for eg in again(nlp)] == [eg.reference.text for eg in first]
    with pytest.raises(ValueError):
        SentenceCorpus(corpus_path, sampling="bootstrap")


def test_reader_from_config(nlp, corpus_path):
    cfg = Config().from_str(
        f"""
        [corpus]
        @readers = "clinie.SentenceCorpus.v1"
        path = "{corpus_path}"
        upsample_positives = 2
        """
    )
    reader = registry.resolve(cfg)["corpus"]
    assert len(list(reader(nlp))) == 14


# ------------------------------------------------------------ label-weighted textcat


def train_textcat(path, corpus_path, factory="clinie_textcat", n_iter=20, **config):
    nlp = spacy.blank("en")
    model = {"@architectures": "spacy.TextCatBOW.v3", "exclusive_classes": True, "ngram_size": 1, "no_output_layer": False}
    nlp.add_pipe(factory, name="textcat", config={"model": model, **config})
    egs = list(SentenceCorpus(corpus_path)(nlp))
    opt = nlp.initialize(lambda: egs)
    for _ in range(n_iter):
        nlp.update(egs, sgd=opt)
    if path is not None:
        nlp.to_disk(path)
    return nlp


def test_label_weighted_loss(corpus_path):
    nlp = train_textcat(None, corpus_path, n_iter=0, label_weights={"ADE": 3.0})
    tc = nlp.get_pipe("textcat")
    egs = list(SentenceCorpus(corpus_path)(nlp))
    scores = tc.model.predict([eg.predicted for eg in egs])
    loss, grad = tc.get_loss(egs, scores)
    _, plain_grad = spacy.pipeline.TextCategorizer.get_loss(tc, egs, scores)
    pos = numpy.array([eg.reference.cats["ADE"] == 1.0 for eg in egs])
    numpy.testing.assert_allclose(grad[pos], 3 * plain_grad[pos], rtol=1e-6)
    numpy.testing.assert_allclose(grad[~pos], plain_grad[~pos], rtol=1e-6)
    d = plain_grad
    w = numpy.where(pos, 3.0, 1.0)[:, None]
    assert loss == pytest.approx(float((w * d**2).mean()))
    with pytest.raises(ValueError):
        spacy.blank("en").add_pipe("clinie_textcat", config={"label_weights": {"ADE": -1.0}})


def test_weighted_textcat_trains_and_round_trips(corpus_path, tmp_path):
    nlp = train_textcat(tmp_path / "tc", corpus_path, label_weights={"ADE": 2.0})
    loaded = spacy.load(tmp_path / "tc")
    assert loaded.get_pipe("textcat").cfg["label_weights"] == {"ADE": 2.0}
    for text, _ in [("Severe rash was reported.", 1), ("Store at room temperature.", 0)]:
        assert loaded(text).cats == pytest.approx(nlp(text).cats)
    assert loaded("Severe rash was reported.").cats["ADE"] > 0.5
    assert loaded("Store at room temperature.").cats["ADE"] < 0.5


# ------------------------------------------------------------ the filter


@pytest.fixture(scope="module")
def classifier(corpus_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("classifier") / "tc"
    train_textcat(path, corpus_path, factory="textcat")
    return str(path)


@pytest.fixture(scope="module")
def ruler_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("ruler") / "r"
    nlp = spacy.blank("en")
    r = nlp.add_pipe("span_ruler", config={"spans_key": "mentions", "phrase_matcher_attr": "LOWER"})
    # "temperature" is a planted false positive in a negative sentence
    r.add_patterns([{"label": ADR, "pattern": p} for p in ["rash", "nausea", "vomiting", "headache", "diarrhea", "fatigue", "temperature"]])
    nlp.to_disk(path)
    return str(path)


def filtered_pipeline(classifier, ruler_path, threshold=0.5):
    nlp = make_blank()
    nlp.add_pipe("clinie_sentence_filter", config={"classifier": classifier, "threshold": threshold})
    nlp.add_pipe("clinie_ensemble", config={"members": [ruler_path], "voting": "hard"})
    nlp.initialize()
    return nlp


def test_filter_keeps_ade_sentences(classifier, ruler_path, nlp):
    pipe = filtered_pipeline(classifier, ruler_path)
    doc = pipe(DOCS[0][0])
    kept = doc.spans["ade_sentences"]
    assert [s.text.strip() for s in kept] == ["Severe rash was reported.", "Nausea and vomiting occurred."]
    assert {s.label_ for s in kept} == {"ADE"}
    units = kept.attrs["units"]
    assert [u[:2] for u in units] == [list(u) for u in sentence_units(doc)]
    assert all(0.0 <= u[2] <= 1.0 for u in units) and kept.attrs["threshold"] == 0.5
    # the tagger behind it never saw the negative sentence: no "temperature"
    assert [s.text for s in doc.spans["mentions"]] == ["rash", "Nausea", "vomiting"]
    # threshold 0 keeps everything: the planted false positive comes back
    keep_all = filtered_pipeline(classifier, ruler_path, threshold=0.0)(DOCS[0][0])
    assert "temperature" in mention_texts(keep_all)
    # pipe == call
    texts = [t for t, _ in DOCS]
    assert [mention_texts(d) for d in pipe.pipe(texts, batch_size=2)] == [mention_texts(pipe(t)) for t in texts]


def test_filter_scores(classifier, ruler_path, nlp):
    pipe = filtered_pipeline(classifier, ruler_path)
    examples = [Example(pipe(g.text), g) for g in make_docs(nlp)]
    scores = score_sentence_filter(examples)
    assert scores["sentences_r"] == 1.0 and scores["sentences_p"] == 1.0
    assert scores["sentences_mention_recall"] == 1.0
    assert 0.3 < scores["sentences_kept_tokens"] < 0.6
    assert pipe.evaluate(examples)["sentences_f"] == 1.0


def test_filter_errors(classifier, tmp_path):
    nlp = make_blank()
    nlp.add_pipe("clinie_sentence_filter")
    with pytest.raises(ValueError, match="no classifier"):
        nlp.initialize()
    with pytest.raises(ValueError, match="not found"):
        nlp.get_pipe("clinie_sentence_filter").initialize(classifier=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="positive_label"):
        nlp.get_pipe("clinie_sentence_filter").cfg["positive_label"] = "POSITIVE"
        nlp.get_pipe("clinie_sentence_filter").initialize(classifier=classifier)
    with pytest.raises(ValueError, match="threshold"):
        make_blank().add_pipe("clinie_sentence_filter", config={"threshold": 1.5})


def test_filter_serialisation_and_fresh_process(classifier, ruler_path, tmp_path):
    pipe = filtered_pipeline(classifier, ruler_path)
    texts = [t for t, _ in DOCS]
    expected = [mention_texts(d) for d in pipe.pipe(texts)]
    pipe.to_disk(tmp_path / "p")
    assert (tmp_path / "p" / "clinie_sentence_filter" / "classifier" / "config.cfg").exists()
    loaded = spacy.load(tmp_path / "p")
    assert [mention_texts(d) for d in loaded.pipe(texts)] == expected
    code = (
        "import json, spacy\n"
        f"nlp = spacy.load({str(tmp_path / 'p')!r})\n"
        f"print(json.dumps([[s.text for s in d.spans['mentions']] for d in nlp.pipe({texts!r})]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": ""}, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected


def test_soft_prompt_tagger_encodes_only_kept_tokens(nlp, monkeypatch):
    """The real tagger (MiniLM, untrained heads) behind a filter decision:
    the encoder gets only the kept tokens, the rest is O, and the kept
    tokens are tagged as in a doc made of them alone."""
    from spacy_clinie.ml import soft_prompt

    tagger_nlp = make_blank()
    tagger = tagger_nlp.add_pipe("clinie_soft_prompt_tagger", name="ade", config={"aux_task": "none"})
    gold = make_docs(tagger_nlp)
    tagger_nlp.initialize(lambda: [Example(tagger_nlp.make_doc(g.text), g) for g in gold])
    seen = []
    original = soft_prompt.word_pieces

    def spy(tokenizer, docs):
        seen.append([[t.text for t in d] for d in docs])
        return original(tokenizer, docs)

    monkeypatch.setattr(soft_prompt, "word_pieces", spy)
    doc = tagger_nlp.make_doc(DOCS[0][0])
    units = sentence_units(doc)
    doc.spans["ade_sentences"] = [Span(doc, *units[0], "ADE"), Span(doc, *units[2], "ADE")]
    out = tagger.predict([doc])
    idx = kept_token_indices(doc, "ade_sentences")
    assert seen[-1] == [[doc[i].text for i in idx]]
    skipped = [i for i in range(len(doc)) if i not in idx]
    assert skipped and all(out.tags[0]["concepts"][i] == 0 for i in skipped)
    assert all(out.probs[0]["concepts"][i, 0] == 1.0 for i in skipped)
    alone = tagger.predict([tokens_doc(doc, idx)])
    assert [out.tags[0]["concepts"][i] for i in idx] == alone.tags[0]["concepts"]
    numpy.testing.assert_allclose(out.probs[0]["concepts"][idx], alone.probs[0]["concepts"], atol=1e-5)
    tagger.set_annotations([doc], out)
    assert all(s.start >= units[0][0] for s in doc.spans["mentions"])
    assert not [s for s in doc.spans["mentions"] if units[1][0] <= s.start < units[1][1]]
    # no filter decision: the whole doc is encoded
    tagger.predict([tagger_nlp.make_doc(DOCS[0][0])])
    assert len(seen[-1][0]) == len(doc)
    # sentences_key = null: the filter's decision is ignored
    tagger.cfg["sentences_key"] = None
    tagger.predict([doc])
    assert len(seen[-1][0]) == len(doc)
