"""Voting rules of the ensemble (seeds 002 and 003), on plain data.

A member's prediction is a mapping from a key to the member's confidence
that the key holds: for taggers the key is a span ``(start, end, label)``
(token offsets), for classifiers the key is a label. Nothing here touches a
Doc; ``clinie_ensemble`` (``pipeline/ensemble.py``) builds the mappings from
its members' docs and writes the result.

Methods
- ``hard``: each member votes for the keys it predicts (confidence ignored);
  a key is accepted with at least ``min_votes`` votes. The default is a
  strict majority, ``n // 2 + 1`` (2 of 3, 3 of 4, 3 of 5): a tie (2 of 4)
  does not pass. Score = vote share (votes / n).
- ``soft``: score = mean confidence over all members, a member that did not
  predict the key counting 0 (seed 002's P(1|model) for a label is the
  member's probability of it); accepted when score >= ``threshold``.
- ``weighted_soft``: as ``soft`` with per-member weights (seed 002 uses dev
  F1): score = sum(w_m * p_m) / sum(w_m).

Classifier voting (``vote_cats``): ``exclusive`` picks one label per doc.
Hard: each member votes for its argmax label (ties inside a member: the
first label in ``labels`` order); the label with most votes wins, a tie
between labels is broken by the labels' soft mean, then by ``labels``
order; the result is one-hot (a hard vote is a decision). Soft / weighted:
the mean probabilities, the winner being their argmax (ties: ``labels``
order). Multi-label: each label on its own, a member voting for it when its
probability is >= ``member_threshold``.
"""
from dataclasses import dataclass
from typing import Dict, Hashable, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar

from ..errors import Errors

K = TypeVar("K", bound=Hashable)
SpanKey = Tuple[int, int, str]

METHODS = ("hard", "soft", "weighted_soft")


@dataclass(frozen=True)
class Vote:
    """An accepted key: its ensemble score (vote share for ``hard``, mean
    confidence otherwise), how many members predicted it, and the members'
    unweighted mean confidence (missing = 0)."""

    score: float
    votes: int
    mean_confidence: float


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(Errors.E138.format(methods=METHODS, method=method))


def normalise_weights(n: int, weights: Optional[Sequence[float]], method: str) -> List[float]:
    """Per-member weights: uniform unless ``method`` is ``weighted_soft``,
    which needs one non-negative weight per member with a positive sum."""
    check_method(method)
    if method != "weighted_soft":
        return [1.0] * n
    if weights is None:
        raise ValueError(Errors.E139)
    weights = [float(w) for w in weights]
    if len(weights) != n:
        raise ValueError(Errors.E140.format(n_weights=len(weights), n=n))
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(Errors.E141.format(weights=weights))
    return weights


def member_scores(predictions: Iterable[Tuple[K, float]]) -> Dict[K, float]:
    """One member's (key, confidence) pairs as a mapping; a key predicted
    twice keeps its highest confidence; confidences are clipped to [0, 1]."""
    out: Dict[K, float] = {}
    for key, conf in predictions:
        conf = min(max(float(conf), 0.0), 1.0)
        out[key] = max(out.get(key, 0.0), conf)
    return out


def default_min_votes(n: int) -> int:
    """Strict majority of ``n`` members."""
    return n // 2 + 1


def vote(
    members: Sequence[Mapping[K, float]],
    method: str = "soft",
    *,
    weights: Optional[Sequence[float]] = None,
    threshold: float = 0.5,
    min_votes: Optional[int] = None,
) -> Dict[K, Vote]:
    """Accepted keys with their votes. ``members``: one mapping key ->
    confidence per member (an empty mapping: the member predicted nothing)."""
    if not members:
        raise ValueError(Errors.E142)
    n = len(members)
    w = normalise_weights(n, weights, method)
    total_w = sum(w)
    need = default_min_votes(n) if min_votes is None else int(min_votes)
    if method == "hard" and not 1 <= need <= n:
        raise ValueError(Errors.E143.format(n=n, need=need))
    keys = {k for m in members for k in m}
    out: Dict[K, Vote] = {}
    for key in keys:
        confs = [m.get(key) for m in members]
        votes = sum(c is not None for c in confs)
        mean = sum(c or 0.0 for c in confs) / n
        if method == "hard":
            if votes >= need:
                out[key] = Vote(votes / n, votes, mean)
        else:
            score = sum(wi * (c or 0.0) for wi, c in zip(w, confs)) / total_w
            if score >= threshold:
                out[key] = Vote(score, votes, mean)
    return out


def resolve_overlaps(accepted: Mapping[SpanKey, Vote]) -> Dict[SpanKey, Vote]:
    """Keep non-overlapping spans greedily: higher score first, then more
    votes, then longer, then earlier (members that disagree on boundaries
    can each pass the vote with overlapping spans)."""
    order = sorted(accepted.items(), key=lambda kv: (-kv[1].score, -kv[1].votes, -(kv[0][1] - kv[0][0]), kv[0]))
    taken: List[Tuple[int, int]] = []
    out: Dict[SpanKey, Vote] = {}
    for (start, end, label), v in order:
        if any(start < e and s < end for s, e in taken):
            continue
        taken.append((start, end))
        out[(start, end, label)] = v
    return out


def vote_spans(
    members: Sequence[Mapping[SpanKey, float]],
    method: str = "soft",
    *,
    weights: Optional[Sequence[float]] = None,
    threshold: float = 0.5,
    min_votes: Optional[int] = None,
    overlaps: bool = False,
) -> List[Tuple[SpanKey, Vote]]:
    """Span-level voting on exact (start, end, label); sorted by position.
    ``overlaps=False`` resolves overlapping accepted spans (``resolve_overlaps``)."""
    accepted = vote(members, method, weights=weights, threshold=threshold, min_votes=min_votes)
    if not overlaps:
        accepted = resolve_overlaps(accepted)
    return sorted(accepted.items(), key=lambda kv: kv[0])


def _argmax(scores: Mapping[str, float], labels: Sequence[str]) -> Optional[str]:
    best = None
    for label in labels:
        if label in scores and (best is None or scores[label] > scores[best]):
            best = label
    return best


def vote_cats(
    members: Sequence[Mapping[str, float]],
    labels: Sequence[str],
    method: str = "soft",
    *,
    exclusive: bool = True,
    weights: Optional[Sequence[float]] = None,
    threshold: float = 0.5,
    min_votes: Optional[int] = None,
    member_threshold: float = 0.5,
) -> Dict[str, float]:
    """Doc (or sentence) classifier voting; returns ``doc.cats`` for the
    ensemble. Soft methods: the (weighted) mean probability per label (a
    member without the label counts 0). Hard, exclusive: one-hot of the
    winning label; hard, multi-label: 1.0 where the label has ``min_votes``
    votes (default strict majority), else 0.0. ``threshold`` is not used by
    exclusive voting (the argmax wins) nor by hard voting."""
    if not members:
        raise ValueError(Errors.E142)
    labels = list(labels)
    if not labels:
        raise ValueError(Errors.E145)
    n = len(members)
    w = normalise_weights(n, weights, method)
    total_w = sum(w)
    mean = {lab: sum(wi * float(m.get(lab, 0.0)) for wi, m in zip(w, members)) / total_w for lab in labels}
    if method != "hard":
        return mean
    if exclusive:
        counts = {lab: 0 for lab in labels}
        for m in members:
            choice = _argmax(m, labels)
            if choice is not None:
                counts[choice] += 1
        top = max(counts.values())
        tied = [lab for lab in labels if counts[lab] == top]
        winner = _argmax({lab: mean[lab] for lab in tied}, tied)
        return {lab: 1.0 if lab == winner else 0.0 for lab in labels}
    need = default_min_votes(n) if min_votes is None else int(min_votes)
    if not 1 <= need <= n:
        raise ValueError(Errors.E143.format(n=n, need=need))
    return {
        lab: 1.0 if sum(float(m.get(lab, 0.0)) >= member_threshold for m in members) >= need else 0.0 for lab in labels
    }
