"""The LLM as a classifier member of clinie_ensemble (seed 002): first-token
confidence from the real local GGUF, voting with another member."""
import pytest
from spacy.util import registry
from spacy_llm.registry import registry as llm_registry

from spacy_clinie.pipeline.ensemble import MemberPrediction
from spacy_clinie.pipeline.voting import vote_cats
from spacy_clinie.tokenizer import make_blank


@pytest.fixture(scope="module")
def member():
    model = llm_registry.llm_models.get("clinie.LlamaCpp.v1")(n_ctx=1024, max_tokens=2)
    return registry.misc.get("clinie.LLMClassifierMember.v1")(model)


def test_llm_member_gives_probabilities_that_vote(member):
    nlp = make_blank()
    docs = [nlp.make_doc("Severe rash and hepatotoxicity occurred after the first dose."), nlp.make_doc("Store the tablets at room temperature.")]
    preds = member.predict(docs)
    assert len(preds) == 2 and all(isinstance(p, MemberPrediction) for p in preds)
    for p in preds:
        assert set(p.cats) == {"ADE", "NO_ADE"}
        assert 0.0 <= p.cats["ADE"] <= 1.0 and abs(sum(p.cats.values()) - 1.0) < 1e-6
    # soft voting with a confident textcat member
    voted = vote_cats([preds[0].cats, {"ADE": 0.9, "NO_ADE": 0.1}], ["ADE", "NO_ADE"], "soft")
    assert voted["ADE"] == pytest.approx((preds[0].cats["ADE"] + 0.9) / 2)


def test_probability_falls_back_to_the_answer_and_counts_garbage(member):
    assert member.probability("1") == 1.0 and member.probability(' "0"') == 0.0
    before = member.unreadable
    assert member.probability("maybe") is None and member.unreadable == before + 1
