"""Reaction-level scoring for ``spacy train`` and ``nlp.evaluate``: per doc,
the set of normalised reaction strings predicted vs gold (TAC's unit), the
score a reaction verifier is selected on."""
from functools import partial
from typing import Any, Callable, Dict, Iterable

import numpy
from spacy.training import Example
from spacy.util import registry

from ..extensions import MENTIONS_KEY, register_extensions
from .tac import ADR_LABEL, MICRO, gold_strings, pred_strings, prf, set_counts


def score_reactions(examples: Iterable[Example], *, spans_key: str = MENTIONS_KEY, label: str = ADR_LABEL, **_: Any) -> Dict[str, Any]:
    """Reaction-level P/R/F1: per doc, the set of normalised ``label``
    strings predicted vs gold (TAC's unit)."""
    register_extensions()
    vec = numpy.zeros(4)
    for eg in examples:
        vec += set_counts(gold_strings(eg.reference, spans_key), pred_strings(eg.predicted, spans_key), {label})[MICRO]
    s = prf(vec)
    return {"reactions_p": s["p"], "reactions_r": s["r"], "reactions_f": s["f"]}


@registry.scorers("clinie.reaction_scorer.v1")
def make_reaction_scorer(spans_key: str = MENTIONS_KEY, label: str = ADR_LABEL) -> Callable[..., Dict[str, Any]]:
    # a partial, not a closure, so that pipelines pickle
    return partial(score_reactions, spans_key=spans_key, label=label)
