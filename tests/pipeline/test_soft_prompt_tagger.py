"""The soft-prompt tagger on tiny data with the real MiniLM encoder."""
import json
import subprocess
import sys

import pytest
import torch
from spacy.training import Example
from spacy.util import registry

from spacy_clinie.tags import bio_to_spans, spans_to_bio
from spacy_clinie.tokenizer import make_blank

TRAIN = [
    ("Patients reported nausea and severe headache after the first dose.", [("nausea", "human"), ("headache", "human")]),
    ("Hepatotoxicity was seen in rats at high doses.", [("Hepatotoxicity", "animal")]),
    ("The most common adverse reactions were rash, fatigue and diarrhea.", [("rash", "human"), ("fatigue", "human"), ("diarrhea", "human")]),
    ("No dose adjustment is needed in elderly patients.", []),
    ("Anaphylaxis and angioedema have been reported with this drug class.", [("Anaphylaxis", "drug_class"), ("angioedema", "drug_class")]),
]


def make_doc(nlp, text, mentions):
    doc = nlp.make_doc(text)
    spans = []
    for i, (surface, kind) in enumerate(mentions):
        start = text.index(surface)
        span = doc.char_span(start, start + len(surface), label="AdverseReaction", span_id=f"M{i + 1}")
        spans.append(span)
    doc.spans["mentions"] = spans
    for span, (_, kind) in zip(spans, mentions):
        span._.kind = kind
    return doc


def build(config=None):
    nlp = make_blank()
    nlp.add_pipe("clinie_soft_prompt_tagger", name="ade", config=config or {})
    return nlp


def examples(nlp):
    return [Example(nlp.make_doc(t), make_doc(nlp, t, m)) for t, m in TRAIN]


def train(nlp, n_iter=40, lr=1e-3):
    torch.manual_seed(0)
    egs = examples(nlp)
    nlp.initialize(lambda: egs)
    opt = registry.optimizers.get("clinie.Adamax.v1")(lr, L2=0.0)
    losses = {}
    for _ in range(n_iter):
        losses = {}
        nlp.update(egs, sgd=opt, losses=losses)
    return losses


def found(doc):
    return sorted((s.text, s.label_) for s in doc.spans["mentions"])


@pytest.fixture(scope="module")
def trained():
    nlp = build()
    losses = train(nlp)
    return nlp, losses


def test_overfits_tiny_data(trained):
    nlp, losses = trained
    assert losses["ade"] < 1.0
    tp = n_pred = n_gold = 0
    for text, mentions in TRAIN:
        doc = nlp(text)
        pred = {s.text for s in doc.spans["mentions"]}
        gold = {m for m, _ in mentions}
        tp += len(pred & gold)
        n_pred += len(pred)
        n_gold += len(gold)
    f1 = 2 * tp / (n_pred + n_gold)
    assert f1 > 0.9
    doc = nlp(TRAIN[1][0])
    assert [s._.kind for s in doc.spans["mentions"]] == ["animal"]
    assert 0.0 < doc.spans["mentions"][0]._.attributes["confidence"] <= 1.0


def test_long_document_is_fully_labelled(trained):
    nlp, _ = trained
    text = " ".join(TRAIN[2][0] for _ in range(60))  # about 900 subwords: several windows
    doc = nlp(text)
    tokenizer = nlp.get_pipe("ade").model.shims[0]._model.tokenizer
    assert len(tokenizer(text)["input_ids"]) > 512
    rash = [s for s in doc.spans["mentions"] if s.text == "rash"]
    assert len(rash) >= 58  # found in (nearly) every repetition, start to end
    assert rash[-1].start > len(doc) - 15


def test_disk_round_trip_and_spacy_load(trained, tmp_path):
    nlp, _ = trained
    nlp.to_disk(tmp_path / "model")
    texts = [t for t, _ in TRAIN]
    expected = [found(d) for d in nlp.pipe(texts)]
    import spacy

    loaded = spacy.load(tmp_path / "model")
    assert [found(d) for d in loaded.pipe(texts)] == expected
    # a fresh process resolves the factory and architecture through entry points
    code = (
        "import spacy, sys, json\n"
        f"nlp = spacy.load({str(tmp_path / 'model')!r})\n"
        f"print(json.dumps([sorted(s.text for s in d.spans['mentions']) for d in nlp.pipe({texts!r})]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [sorted(s for s, _ in e) for e in expected]


def test_bytes_round_trip(trained):
    nlp, _ = trained
    pipe = nlp.get_pipe("ade")
    data = pipe.to_bytes()
    other = build().get_pipe("ade")
    other.from_bytes(data)
    doc_a, doc_b = nlp.make_doc(TRAIN[0][0]), nlp.make_doc(TRAIN[0][0])
    pipe(doc_a)
    other(doc_b)
    assert found(doc_a) == found(doc_b)


def test_pipe_equals_call_and_multiprocess(trained):
    nlp, _ = trained
    texts = [t for t, _ in TRAIN] * 2
    single = [found(nlp(t)) for t in texts]
    assert [found(d) for d in nlp.pipe(texts, batch_size=3)] == single
    assert [found(d) for d in nlp.pipe(texts, batch_size=2, n_process=2)] == single


def test_frozen_strategy_trains_only_prompt_and_heads():
    nlp = build({"model": {"strategy": "frozen"}})
    egs = examples(nlp)
    nlp.initialize(lambda: egs)
    module = nlp.get_pipe("ade").model.shims[0]._model
    enc_before = {k: v.clone() for k, v in module.encoder.state_dict().items()}
    proj_before = {k: v.clone() for k, v in module.proj.state_dict().items()}
    nlp.update(egs, sgd=registry.optimizers.get("clinie.Adamax.v1")(1e-3, L2=0.0))
    assert all(torch.equal(v, module.encoder.state_dict()[k]) for k, v in enc_before.items())
    assert any(not torch.equal(v, module.proj.state_dict()[k]) for k, v in proj_before.items())


def test_softmax_heads_and_separate_prompts_train():
    nlp = build({"model": {"heads": {"concepts": "softmax", "aux": "softmax"}, "prompts": {"concepts": "adverse reactions", "aux": "reaction kind"}}})
    losses = train(nlp, n_iter=3)
    module = nlp.get_pipe("ade").model.shims[0]._model
    assert len(module.prompt_keys) == 2 and not module.crfs
    assert losses["ade"] > 0


def test_budget_and_labels_are_checked():
    nlp = build({"model": {"window": 600}})
    with pytest.raises(ValueError, match="exceeds the encoder"):
        nlp.initialize(lambda: examples(nlp))
    nlp = build()
    empty = [Example(nlp.make_doc("no mentions"), nlp.make_doc("no mentions"))]
    with pytest.raises(ValueError, match="no labels"):
        nlp.initialize(lambda: empty)


def test_bio_helpers():
    tags = ["O", "B-A", "I-A", "B-B", "I-B"]
    idx = spans_to_bio(6, [(0, 2, "A"), (1, 3, "B"), (4, 6, "B")], tags)
    assert [tags[i] for i in idx] == ["B-A", "I-A", "O", "O", "B-B", "I-B"]
    assert bio_to_spans(["B-A", "I-A", "I-B", "O", "I-A"]) == [(0, 2, "A"), (2, 3, "B"), (4, 5, "A")]


def test_with_medspacy_context_through_pipe(trained, tmp_path):
    """Tagger + medspaCy sectionizer/ConText in one pipeline: ConText reads the
    tagger's mentions and its flags reach span._.attributes, DocBin and brat."""
    import spacy
    from spacy.tokens import DocBin

    from spacy_clinie.pipeline.context import add_context_pipes
    from spacy_clinie.readers import doc_to_brat

    nlp, _ = trained
    nlp.to_disk(tmp_path / "model")
    nlp = spacy.load(tmp_path / "model")
    add_context_pipes(nlp, sectionizer=True)
    texts = ["Patients reported nausea after the first dose. There was no diarrhea.", TRAIN[2][0]]
    piped = list(nlp.pipe(texts, batch_size=2))
    called = [nlp(t) for t in texts]
    assert [[(s.text, s._.attributes) for s in d.spans["mentions"]] for d in piped] == [
        [(s.text, s._.attributes) for s in d.spans["mentions"]] for d in called
    ]
    flags = {s.text: s._.attributes for s in piped[0].spans["mentions"]}
    assert flags["diarrhea"].get("is_negated") is True
    assert not flags["nausea"].get("is_negated")
    back = list(DocBin(docs=piped, store_user_data=True).get_docs(nlp.vocab))
    assert {s.text: s._.attributes for s in back[0].spans["mentions"]} == flags
    assert "is_negated" in doc_to_brat(piped[0])


def test_head_lr_scale_speeds_up_new_layers_only():
    """Heads, CRFs and prompt projections step ``head_lr_scale`` times as far
    as the encoder; the encoder's steps do not change."""

    def one_step(scale):
        torch.manual_seed(0)
        nlp = build({"model": {"head_lr_scale": scale}})
        egs = examples(nlp)
        nlp.initialize(lambda: egs)
        module = nlp.get_pipe("ade").model.shims[0]._model
        before = {n: p.detach().clone() for n, p in module.named_parameters()}
        opt = registry.optimizers.get("clinie.Adamax.v1")(1e-4, L2=0.0, grad_clip=0.0)
        nlp.update(egs, sgd=opt, drop=0.0)
        return {n: float((p.detach() - before[n]).abs().max()) for n, p in module.named_parameters()}

    plain, scaled = one_step(1.0), one_step(20.0)
    head = "heads.concepts.weight"
    enc = next(n for n in plain if n.startswith("encoder.") and n.endswith("query.weight"))
    assert scaled[head] == pytest.approx(20 * plain[head], rel=1e-3)
    assert scaled[enc] == pytest.approx(plain[enc], rel=1e-3)


def test_section_context_separates_identical_text(tmp_path):
    """With ``context = "section"`` the same sentence can be tagged in one
    section and left alone in another, which no text-only model can do; a
    doc without a section still gets tagged, and the setting survives
    serialisation and the attention view."""
    import spacy

    from spacy_clinie.review.attention import compute_attention

    text = "Nausea and rash were seen in some patients."
    nlp = build({"model": {"context": "section", "context_len": 8}})

    def doc_in(section, mentions):
        doc = make_doc(nlp, text, mentions)
        doc._.section = section
        return doc

    gold = [doc_in("adverse reactions", [("Nausea", "human"), ("rash", "human")]), doc_in("indications", [])]
    egs = [Example(nlp.make_doc(text), g) for g in gold]
    for eg, g in zip(egs, gold):
        eg.predicted._.section = g._.section
    torch.manual_seed(0)
    nlp.initialize(lambda: egs)
    opt = registry.optimizers.get("clinie.Adamax.v1")(1e-3, L2=0.0)
    for _ in range(30):
        nlp.update(egs, sgd=opt)

    def tag(section, model=nlp):
        doc = model.make_doc(text)
        doc._.section = section
        return [s.text for s in model(doc).spans["mentions"]]

    assert tag("adverse reactions") == ["Nausea", "rash"]
    assert tag("indications") == []
    tag(None)  # no section: runs with an empty context
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    assert loaded.get_pipe("ade").model.attrs["context"] == "section"
    assert tag("adverse reactions", loaded) == ["Nausea", "rash"] and tag("indications", loaded) == []
    doc = nlp.make_doc(text)
    doc._.section = "indications"
    view = compute_attention(nlp.get_pipe("ade"), doc, "concepts")
    assert [u for u, k in zip(view.units, view.kinds) if k == "context"][:2] == ["indications", "[SEP]"]
    assert view.layers.shape[1] == len(view.units)


def test_context_is_checked():
    nlp = build({"model": {"context": "no_such_extension"}})
    with pytest.raises(ValueError, match="not a registered Doc extension"):
        nlp.initialize(lambda: examples(nlp))
    nlp = build({"model": {"window": 480, "context": "section", "context_len": 32}})
    with pytest.raises(ValueError, match=r"context \(33\)"):
        nlp.initialize(lambda: examples(nlp))


def test_mentions_without_kind_leave_the_aux_task_untrained(trained):
    """LLM, reviewer or simulated annotations carry labels but no kind: the
    aux task is unknown for such an example (no loss), not "no mention"."""
    nlp, _ = trained
    pipe = nlp.get_pipe("ade")
    text, mentions = TRAIN[0]
    with_kind = Example(nlp.make_doc(text), make_doc(nlp, text, mentions))
    ref = make_doc(nlp, text, mentions)
    for span in ref.spans["mentions"]:
        span._.kind = None
    without_kind = Example(nlp.make_doc(text), ref)
    assert "aux" in pipe.gold_tags(with_kind)
    gold = pipe.gold_tags(without_kind)
    assert "aux" not in gold and gold["concepts"] == pipe.gold_tags(with_kind)["concepts"]
    # the loss of the unknown example is the concept loss alone: aux weight 0 gives the same
    weights = pipe.model.attrs["task_weights"]
    unknown = pipe.get_loss([without_kind], None)[0]
    known = pipe.get_loss([with_kind], None)[0]
    assert known > unknown + 1e-6  # with kinds, the aux loss counts
    pipe.model.attrs["task_weights"] = {**weights, "aux": 0.0}
    try:
        assert abs(pipe.get_loss([without_kind], None)[0] - unknown) < 1e-6
        assert abs(pipe.get_loss([with_kind], None)[0] - unknown) < 1e-6
    finally:
        pipe.model.attrs["task_weights"] = weights
