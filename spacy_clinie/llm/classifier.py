"""An LLM as a document/sentence classifier member of ``clinie_ensemble``
(seed 002): the prompt asks for "1" or "0", decoding is constrained to those
two answers, and the confidence is the softmax of the first generated
token's log-probabilities over "0" and "1"."""
from typing import Any, Dict, List, Optional

from spacy.tokens import Doc
from spacy.util import registry

from ..pipeline.ensemble import MemberPrediction
from .confidence import first_token_probability
from .types import Prompt

DEFAULT_QUESTION = (
    "Does the following text from a drug label or clinical note report an adverse drug event "
    "(a harmful effect of a drug)? Output ONLY 1 or 0."
)


class LLMClassifierMember:
    def __init__(self, model: Any, *, positive: str, negative: str, question: str, system: Optional[str], max_chars: int) -> None:
        self.model = model
        self.positive, self.negative = positive, negative
        self.question = question
        self.system = system
        self.max_chars = max_chars
        self.unreadable = 0

    def prompt(self, doc: Doc) -> Prompt:
        text = doc.text[: self.max_chars]
        return Prompt(f"{self.question}\nText:\n{text}\n", system=self.system, json_schema={"enum": ["1", "0"]})

    def probability(self, response: Any) -> Optional[float]:
        """P(positive): first-token softmax over "1"/"0" when the backend gave
        log-probabilities, else the answer itself (1.0 / 0.0)."""
        probs = first_token_probability(getattr(response, "tokens", None), ["1", "0"])
        if probs and sum(probs.values()) > 0:
            return probs["1"]
        answer = str(response).strip().strip('"')
        if answer[:1] in ("0", "1"):
            return float(answer[:1])
        self.unreadable += 1
        return None

    def predict(self, docs: List[Doc]) -> List[MemberPrediction]:
        responses = self.model([[self.prompt(doc)] for doc in docs])
        out = []
        for (response,) in responses:
            p = self.probability(response)
            cats: Dict[str, float] = {} if p is None else {self.positive: p, self.negative: 1.0 - p}
            out.append(MemberPrediction(cats=cats))
        return out


@registry.misc("clinie.LLMClassifierMember.v1")
def make_llm_classifier_member(
    model: Any,
    positive: str = "ADE",
    negative: str = "NO_ADE",
    question: str = DEFAULT_QUESTION,
    system: Optional[str] = "You are an intelligent clinical language model.",
    max_chars: int = 4000,
) -> LLMClassifierMember:
    """An ``extra_members`` entry for clinie_ensemble: ``model`` is any clinie
    LLM backend (``clinie.LlamaCpp.v1``, ``clinie.OpenAICompatible.v1``)."""
    return LLMClassifierMember(model, positive=positive, negative=negative, question=question, system=system, max_chars=max_chars)
