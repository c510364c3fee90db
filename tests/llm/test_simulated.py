"""clinie.SimulatedAnnotator.v1 (issue 20, item 4): a seeded simulation
that answers correction prompts from hidden gold, for planning only."""
import pytest
from spacy.tokens import DocBin
from spacy_llm.registry import registry

from spacy_clinie.llm.models.simulated import SimulatedAnnotator, annotator_scores
from spacy_clinie.tokenizer import make_blank

SENTENCES = [
    (f"Patient {n} reported {a} and severe {b} after dose {n}.", [a, f"severe {b}"])
    for n, (a, b) in enumerate([("nausea", "headache"), ("rash", "pruritus"), ("vomiting", "dizziness"), ("fatigue", "insomnia")] * 50)
]


def gold_docs(nlp, sentences=SENTENCES, per_doc=10):
    docs = []
    for i in range(0, len(sentences), per_doc):
        chunk = sentences[i : i + per_doc]
        text = " ".join(t for t, _ in chunk)
        doc = nlp.make_doc(text)
        spans, pos = [], 0
        for t, ents in chunk:
            base = text.index(t, pos)
            for e in ents:
                a = base + t.index(e)
                spans.append(doc.char_span(a, a + len(e), label="AdverseReaction"))
            pos = base + len(t)
        doc.spans["mentions"] = spans
        docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def nlp():
    return make_blank()


def answers(model, units, candidates=None):
    return [model.answer(u, candidates(u) if candidates else ()) for u in units]


def ngrams(unit):
    words = unit.rstrip(".").split()
    return [" ".join(words[i : i + n]) for n in (1, 2) for i in range(len(words) - n + 1)]


def test_perfect_annotator_returns_the_gold(nlp):
    model = SimulatedAnnotator(gold_docs(nlp))
    for text, ents in SENTENCES[:8]:
        assert sorted(t for t, _ in model.answer(text, ngrams(text))) == sorted(ents)


def test_deterministic_under_a_seed_whatever_the_order(nlp):
    units = [t for t, _ in SENTENCES]
    rates = dict(miss_rate=0.3, spurious_rate=0.3, boundary_rate=0.3)
    a = answers(SimulatedAnnotator(gold_docs(nlp), seed=7, **rates), units, ngrams)
    b = answers(SimulatedAnnotator(gold_docs(nlp), seed=7, **rates), units, ngrams)
    c = answers(SimulatedAnnotator(gold_docs(nlp), seed=7, **rates), units[::-1], ngrams)[::-1]
    d = answers(SimulatedAnnotator(gold_docs(nlp), seed=8, **rates), units, ngrams)
    assert a == b == c
    assert a != d


def test_error_rates_are_what_they_say(nlp):
    docs = gold_docs(nlp)
    units = [t for t, _ in SENTENCES]
    gold = {t: set(e) for t, e in SENTENCES}
    n_gold = sum(len(e) for e in gold.values())
    missed = answers(SimulatedAnnotator(docs, miss_rate=0.3), units)
    kept = sum(len({t for t, _ in ans} & gold[u]) for u, ans in zip(units, missed))
    assert 0.6 < kept / n_gold < 0.8
    moved = answers(SimulatedAnnotator(docs, boundary_rate=0.5), units)
    wrong = sum(len({t for t, _ in ans} - gold[u]) for u, ans in zip(units, moved))
    assert sum(len(a) for a in moved) == n_gold and 0.35 < wrong / n_gold < 0.65
    noisy = answers(SimulatedAnnotator(docs, spurious_rate=0.5), units, ngrams)
    extra = sum(len({t for t, _ in ans} - gold[u]) for u, ans in zip(units, noisy))
    assert 0.6 < extra / len(units) < 1.4  # geometric: 0.5 / (1 - 0.5) = 1 spurious span per unit on average
    assert all(not (set(t.split()) & set(" ".join(gold[u]).split())) for u, ans in zip(units, noisy) for t, _ in ans if t not in gold[u])
    assert answers(SimulatedAnnotator(docs, miss_rate=1.0), units[:5]) == [[]] * 5


def test_unknown_unit_and_bad_settings_are_clear_errors(nlp, tmp_path):
    model = SimulatedAnnotator(gold_docs(nlp))
    with pytest.raises(ValueError, match="in none of its 20 gold docs"):
        model.answer("A sentence the gold does not hold.")
    with pytest.raises(ValueError, match="miss_rate must be between 0 and 1"):
        SimulatedAnnotator(gold_docs(nlp), miss_rate=1.5)
    with pytest.raises(ValueError, match="spurious_rate must be between 0 and 0.95"):
        SimulatedAnnotator(gold_docs(nlp), spurious_rate=1.0)
    with pytest.raises(ValueError, match="needs gold docs"):
        SimulatedAnnotator([])
    with pytest.raises(ValueError, match="cannot read gold_path"):
        registry.llm_models.get("clinie.SimulatedAnnotator.v1")(gold_path=str(tmp_path / "missing.spacy"))
    with pytest.raises(ValueError, match="clinie.ADECorrect prompts only"):
        model.generate("a plain string prompt")


def test_answers_clinie_prompts_through_the_registry(nlp, tmp_path):
    """Registered model + the real correction task: the answer the task reads
    back is the gold of the unit, as token spans."""
    docs = gold_docs(nlp)
    path = tmp_path / "gold.spacy"
    DocBin(docs=docs).to_disk(path)
    model = registry.llm_models.get("clinie.SimulatedAnnotator.v1")(gold_path=str(path))
    task = registry.llm_tasks.get("clinie.ADECorrect.v2")(gate_mode="off")
    doc = nlp.make_doc(docs[0].text)
    (start, end), = [(s, e) for s, e in [(0, len(nlp.make_doc(SENTENCES[0][0])))]]
    prompt = task.render(doc, start, end)
    assert prompt.unit == SENTENCES[0][0]
    response = list(model([[prompt]]))[0][0]
    spans, _, dropped = task.read_answer(doc, start, end, response)
    assert dropped == 0
    assert sorted(doc[a:b].text for a, b, _ in spans) == sorted(SENTENCES[0][1])


def test_annotator_scores():
    s = annotator_scores([([(0, 1, "A"), (2, 3, "A")], [(0, 1, "A"), (4, 5, "A")]), ([], [(1, 2, "A")])])
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 2)
    assert s["p"] == 0.5 and s["r"] == round(1 / 3, 4) and s["f"] == 0.4
