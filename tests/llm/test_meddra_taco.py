"""Seed 004's TACO coding task: prompt with the linker's suggested terms,
regex distillation of messy answers, recoding, and one real generation."""
import pytest
from spacy.tokens import Span
from spacy_llm.registry import registry

from spacy_clinie.llm.tasks.meddra_taco import parse_taco
from spacy_clinie.tokenizer import make_blank

NAUSEA = {"meddra_pt": "Nausea", "meddra_pt_id": "10028813", "meddra_llt": "Nausea", "meddra_llt_id": "10028813"}
VOMIT = {"meddra_pt": "Vomiting", "meddra_pt_id": "10047700", "meddra_llt": "Vomiting", "meddra_llt_id": "10047700"}
RASH = {"meddra_pt": "Rash", "meddra_pt_id": "10037844", "meddra_llt": "Rash", "meddra_llt_id": "10037844"}


def coded_doc():
    nlp = make_blank()
    doc = nlp.make_doc("Patients had queasiness and a blotchy rash. Take with food.")
    q = Span(doc, 2, 3, "AdverseReaction", span_id="M1")
    r = Span(doc, 5, 7, "AdverseReaction", span_id="M2")
    doc.spans["mentions"] = [q, r]
    q._.meddra = [dict(VOMIT)]  # the linker's (wrong) first choice
    q._.meddra_candidates = [dict(VOMIT, score=0.6), dict(NAUSEA, score=0.55)]
    r._.meddra = [dict(RASH)]
    r._.meddra_candidates = [dict(RASH, score=0.9)]
    return doc


def test_parse_taco_clean_messy_and_garbage():
    assert parse_taco('{"Nausea": ["queasiness"], "Rash": ["none"]}') == {"Nausea": ["queasiness"], "Rash": ["none"]}
    messy = 'Sure. Output:\n{"Nausea": ["queasiness", "sick"], "Rash": ["blotchy rash"]\nThanks'
    assert parse_taco(messy) == {"Nausea": ["queasiness", "sick"], "Rash": ["blotchy rash"]}
    assert parse_taco('{"Nausea": ["queasi') == {"Nausea": []}  # truncated: the term survives, the cut item does not
    assert parse_taco("no idea") is None


def test_prompt_lists_suggested_terms_in_order_with_a_schema():
    task = registry.llm_tasks.get("clinie.MeddraTaco.v1")()
    doc = coded_doc()
    assert task.select(doc) == [(0, 8)]
    prompt = task.render(doc, 0, 8)
    assert "Please follow the order of this list: [Vomiting, Nausea, Rash]" in str(prompt)
    assert "Clinical text: {'Patients had queasiness and a blotchy rash.'}" in str(prompt)
    assert prompt.json_schema["required"] == ["Vomiting", "Nausea", "Rash"]
    assert prompt.json_schema["properties"]["Nausea"]["items"]["enum"] == ["blotchy rash", "queasiness", "none"]


def test_apply_recodes_mentions_the_llm_assigns():
    task = registry.llm_tasks.get("clinie.MeddraTaco.v1")()
    doc = coded_doc()
    task.apply(doc, task.select(doc), ['{"Vomiting": ["none"], "Nausea": ["queasiness"], "Rash": ["blotchy rash"], "Headache": ["x"]}'])
    q, r = doc.spans["mentions"]
    assert q._.meddra[0]["meddra_pt"] == "Nausea" and q._.attributes["meddra_source"] == "llm"
    assert r._.meddra[0]["meddra_pt"] == "Rash"
    stats = doc._.llm_corrections
    assert stats["taco_recoded"] == 1 and stats["taco_unknown_terms"] == 1
    # garbage keeps the linker's codes
    doc = coded_doc()
    task.apply(doc, task.select(doc), ["I don't know"])
    assert doc.spans["mentions"][0]._.meddra[0]["meddra_pt"] == "Vomiting"
    assert doc._.llm_corrections["taco_unparseable"] == 1


@pytest.mark.filterwarnings("ignore")
def test_real_generation_is_valid_taco_json():
    model = registry.llm_models.get("clinie.LlamaCpp.v1")(n_ctx=2048, max_tokens=96)
    task = registry.llm_tasks.get("clinie.MeddraTaco.v1")()
    doc = coded_doc()
    [[answer]] = model([[task.render(doc, 0, 8)]])
    parsed = parse_taco(answer)
    assert parsed is not None and set(parsed) == {"Vomiting", "Nausea", "Rash"}, answer
    task.apply(doc, task.select(doc), [answer])
    assert doc._.llm_corrections["taco_unparseable"] == 0
