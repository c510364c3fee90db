"""The scorers that the pipes name in their default configs
(``clinie.relation_scorer.v1``, ``clinie.ensemble_scorer.v1``,
``clinie.sentence_filter_scorer.v1``); the mention scorer is in ``tac.py``.
They live here rather than beside the pipes, so that scoring code has one
home and a scorer can be used without its pipe."""
from functools import partial
from typing import Any, Callable, Dict, Iterable, Optional

import numpy
from spacy.scorer import Scorer
from spacy.training import Example
from spacy.util import registry

from ..extensions import MENTIONS_KEY, register_extensions
from ..sentences import SENTENCES_KEY, unit_has_span
from .tac import MICRO, prf, relation_tuples, score_mentions, set_counts

# ---------------------------------------------------------------- relations


def score_relations(examples: Iterable[Example], *, spans_key: str = MENTIONS_KEY, **_: Any) -> Dict[str, Any]:
    """Relation P/R/F1: a relation is correct when its label and its head
    and tail spans (offsets and type) match a gold relation."""
    register_extensions()
    total: Dict[str, numpy.ndarray] = {}
    for eg in examples:
        for label, vec in set_counts(relation_tuples(eg.reference, spans_key), relation_tuples(eg.predicted, spans_key), None).items():
            total[label] = total.get(label, numpy.zeros(4)) + vec
    micro = prf(total.get(MICRO, numpy.zeros(4)))
    return {
        "relations_p": micro["p"],
        "relations_r": micro["r"],
        "relations_f": micro["f"],
        "relations_per_type": {k: {m: prf(v)[m] for m in "prf"} for k, v in sorted(total.items()) if k != MICRO},
    }


@registry.scorers("clinie.relation_scorer.v1")
def make_relation_scorer(spans_key: str = MENTIONS_KEY) -> Callable[..., Dict[str, Any]]:
    # a partial, not a closure, so that pipelines pickle
    return partial(score_relations, spans_key=spans_key)


# ---------------------------------------------------------------- ensemble


def score_ensemble(examples: Iterable[Example], *, spans_key: Optional[str] = MENTIONS_KEY, cat_labels=None, exclusive_cats=None, **_: Any) -> Dict[str, Any]:
    """Mention scores (``clinie.mention_scorer.v1``) and, when the ensemble
    votes on cats, spaCy's textcat scores."""
    examples = list(examples)
    scores: Dict[str, Any] = {}
    if spans_key:
        scores.update(score_mentions(examples, spans_key=spans_key))
    if cat_labels:
        scores.update(Scorer.score_cats(examples, "cats", labels=cat_labels, multi_label=not (exclusive_cats is not False)))
    return scores


@registry.scorers("clinie.ensemble_scorer.v1")
def make_ensemble_scorer() -> Callable[..., Dict[str, Any]]:
    return score_ensemble


# ---------------------------------------------------------------- sentence filter


def score_sentence_filter(
    examples: Iterable[Example], *, sentences_key: str = SENTENCES_KEY, gold_key: str = MENTIONS_KEY, **_: Any
) -> Dict[str, Any]:
    """Unit-level P/R/F1 of the kept units against the units that hold a gold
    mention (``gold_key``), the share of gold mentions wholly inside kept
    units (the recall ceiling the filter leaves the tagger) and the share of
    tokens kept (what the tagger still encodes)."""
    tp = n_pred = n_gold = 0
    mentions = mentions_kept = 0
    tokens = tokens_kept = 0
    for eg in examples:
        pred = eg.predicted
        if sentences_key not in pred.spans:
            continue
        kept = [(s.start, s.end) for s in pred.spans[sentences_key]]
        units = [(u[0], u[1]) for u in pred.spans[sentences_key].attrs.get("units", [])] or kept
        gold = eg.get_aligned_spans_y2x(list(eg.reference.spans.get(gold_key, [])), allow_overlap=True)
        kept_set = set(kept)
        for u in units:
            positive = unit_has_span(u, gold)
            n_gold += positive
            n_pred += u in kept_set
            tp += positive and u in kept_set
        covered = set()
        for s, e in kept:
            covered.update(range(s, e))
        for span in gold:
            mentions += 1
            mentions_kept += all(i in covered for i in range(span.start, span.end))
        tokens += sum(1 for t in pred if not t.is_space)
        tokens_kept += sum(1 for i in covered if not pred[i].is_space)
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return {
        "sentences_p": p,
        "sentences_r": r,
        "sentences_f": 2 * p * r / (p + r) if p + r else 0.0,
        "sentences_mention_recall": mentions_kept / mentions if mentions else 0.0,
        "sentences_kept_tokens": tokens_kept / tokens if tokens else 0.0,
    }


@registry.scorers("clinie.sentence_filter_scorer.v1")
def make_sentence_filter_scorer(gold_key: str = MENTIONS_KEY) -> Callable[..., Dict[str, Any]]:
    def scorer(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        kwargs.setdefault("gold_key", gold_key)
        return score_sentence_filter(examples, **kwargs)

    return scorer
