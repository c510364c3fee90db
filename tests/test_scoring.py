"""Evaluator checks on hand-computed cases."""
import pytest

from spacy_clinie.extensions import set_mention_attrs
from spacy_clinie.scoring import (
    approximate_randomization,
    evaluate_docs,
    paired_bootstrap,
    unit_counts,
    align_docs,
)

TEXT = "Severe nausea and vomiting with skin rash were seen; nausea resolved."
#       0      7     13  17       26   31   36   41   46   52    ...


def make(nlp, spans, *, doc_id="L1/S1", label_id="L1", reactions=None, relations=None, meddra=None):
    doc = nlp.make_doc(TEXT)
    doc._.doc_id, doc._.label_id = doc_id, label_id
    out = []
    for i, (start, end, label) in enumerate(spans):
        span = doc.char_span(start, end, label=label, span_id=f"M{i + 1}")
        assert span is not None, (start, end)
        out.append(span)
    doc.spans["mentions"] = out
    for i, codes in (meddra or {}).items():
        set_mention_attrs(doc, f"M{i + 1}", meddra=[{"meddra_pt_id": c} for c in codes])
    doc._.reactions = reactions
    doc._.relations = relations or []
    return doc


NAUSEA, VOMIT, RASH, SKIN_RASH, NAUSEA2, SEVERE = (7, 13), (18, 26), (37, 41), (32, 41), (53, 59), (0, 6)
ADR = "AdverseReaction"
GOLD_SPANS = [(*NAUSEA, ADR), (*VOMIT, ADR), (*SKIN_RASH, ADR), (*NAUSEA2, ADR), (*SEVERE, "Severity")]


@pytest.fixture
def gold(nlp):
    return make(nlp, GOLD_SPANS, relations=[{"id": "R1", "label": "Effect", "head": "M1", "tail": "M5"}], meddra={0: ["10028813"], 1: ["10047700"], 2: ["10037844"], 3: ["10028813"]})


def test_perfect_prediction_scores_one(nlp, gold):
    pred = make(nlp, GOLD_SPANS, relations=[{"id": "X", "label": "Effect", "head": "M1", "tail": "M5"}], meddra={0: ["10028813"], 1: ["10047700"], 2: ["10037844"], 3: ["10028813"]})
    scores = evaluate_docs([gold], [pred])
    for level in ("mention_strict", "mention_relaxed", "reaction", "pt", "relation"):
        assert scores[level]["micro"]["f"] == 1.0, level


def test_empty_prediction_scores_zero(nlp, gold):
    scores = evaluate_docs([gold], [make(nlp, [])])
    for level in ("mention_strict", "mention_relaxed", "reaction", "pt", "relation"):
        m = scores[level]["micro"]
        assert (m["p"], m["r"], m["f"]) == (0.0, 0.0, 0.0), level
    assert scores["mention_strict"]["micro"]["n_gold"] == 5


def test_partial_overlap_is_relaxed_not_strict(nlp, gold):
    # "rash" predicted where gold has "skin rash"; "nausea" found twice; vomiting missed
    pred = make(nlp, [(*NAUSEA, ADR), (*RASH, ADR), (*NAUSEA2, ADR), (*SEVERE, "Severity")])
    s = evaluate_docs([gold], [pred])
    strict, relaxed = s["mention_strict"], s["mention_relaxed"]
    # strict: 3 of 4 predictions right, 3 of 5 gold found
    assert strict["micro"]["p"] == pytest.approx(3 / 4)
    assert strict["micro"]["r"] == pytest.approx(3 / 5)
    assert strict["micro"]["f"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    # relaxed: "rash" overlaps "skin rash"
    assert relaxed["micro"]["p"] == pytest.approx(4 / 4)
    assert relaxed["micro"]["r"] == pytest.approx(4 / 5)
    assert strict["per_type"]["AdverseReaction"]["r"] == pytest.approx(2 / 4)
    assert strict["per_type"]["Severity"]["f"] == 1.0
    # reaction level: unique strings {nausea, vomiting, skin rash} vs {nausea, rash}
    r = s["reaction"]["per_type"]["AdverseReaction"]
    assert (r["tp"], r["n_pred"], r["n_gold"]) == (1, 2, 3)


def test_type_must_match(nlp, gold):
    pred = make(nlp, [(*NAUSEA, "Severity")])
    s = evaluate_docs([gold], [pred])
    assert s["mention_strict"]["micro"]["tp"] == 0
    assert s["mention_relaxed"]["micro"]["tp"] == 0


def test_reaction_gold_comes_from_entries(nlp):
    """Reaction-level gold includes entries that are not spans (discontiguous)."""
    gold = make(nlp, [(*NAUSEA, ADR)], reactions=[
        {"str": "Nausea", "normalizations": [{"meddra_pt_id": "1"}]},
        {"str": "severe  vomiting", "normalizations": [{"meddra_pt_id": "2"}], "start": None},
    ])
    pred = make(nlp, [(*NAUSEA, ADR), (*NAUSEA2, ADR)], meddra={0: ["1"], 1: ["1"]})
    s = evaluate_docs([gold], [pred])
    r = s["reaction"]["micro"]
    assert (r["tp"], r["n_pred"], r["n_gold"]) == (1, 1, 2)
    pt = s["pt"]["micro"]
    assert (pt["tp"], pt["n_pred"], pt["n_gold"]) == (1, 1, 2)


def test_label_unit_merges_sections(nlp):
    g1 = make(nlp, [(*NAUSEA, ADR)], doc_id="L1/S1")
    g2 = make(nlp, [(*NAUSEA2, ADR)], doc_id="L1/S2")
    p1 = make(nlp, [(*NAUSEA, ADR)], doc_id="L1/S1")
    p2 = make(nlp, [], doc_id="L1/S2")
    by_section = evaluate_docs([g1, g2], [p1, p2], unit="section")["reaction"]["micro"]
    by_label = evaluate_docs([g1, g2], [p1, p2], unit="label")["reaction"]["micro"]
    assert by_section["r"] == 0.5 and by_label["r"] == 1.0


def test_misaligned_corpora_raise(nlp, gold):
    other = nlp.make_doc("different text")
    with pytest.raises(ValueError, match="do not align"):
        align_docs([gold], [other])


def _systems(nlp, n=40):
    gold, good, bad = [], [], []
    for i in range(n):
        gold.append(make(nlp, GOLD_SPANS[:4], doc_id=f"L{i}/S"))
        good.append(make(nlp, GOLD_SPANS[:4], doc_id=f"L{i}/S"))
        bad.append(make(nlp, [(*RASH, ADR)], doc_id=f"L{i}/S"))
    return gold, good, bad


def test_significance_identical_systems(nlp):
    gold, good, _ = _systems(nlp, 10)
    a = unit_counts(align_docs(gold, good), "mention_strict")
    ar = approximate_randomization(a, a, n_shuffles=1000)
    assert ar["p_value"] == 1.0 and ar["delta_f"] == 0.0
    assert paired_bootstrap(a, a, n_samples=500)["delta_f"] == 0.0


def test_significance_different_systems(nlp):
    gold, good, bad = _systems(nlp)
    a = unit_counts(align_docs(gold, good), "mention_strict")
    b = unit_counts(align_docs(gold, bad), "mention_strict")
    ar = approximate_randomization(a, b, n_shuffles=10000, seed=1)
    assert ar["delta_f"] == pytest.approx(1.0)
    assert ar["p_value"] < 0.001
    bs = paired_bootstrap(a, b, n_samples=2000)
    assert bs["p_value"] == 0.0 and bs["ci95"][0] > 0.9
