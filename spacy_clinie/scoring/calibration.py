"""How far a confidence is from the frequency it claims: the outcomes that
calibration is fitted on and scored against, expected calibration error (ECE)
and reliability bins.

A *mention* outcome is whether a predicted span matches a gold span exactly
(boundaries and type: the strict mention level). A *reaction* outcome is
whether a predicted (type, normalised string) of a section is among the gold
strings of that section (the reaction level); its raw score is the highest
confidence of the mentions that spell it.
"""
from typing import Dict, List, Sequence, Tuple

import numpy
from spacy.tokens import Doc

from ..extensions import MENTIONS_KEY, get_mentions
from .tac import align_docs, gold_strings, normalize_string, span_text

CONFIDENCE = "confidence"
RAW_CONFIDENCE = "confidence_raw"
REACTION_CONFIDENCE = "reaction_confidence"


def raw_confidence(attributes: Dict) -> float:
    """The uncalibrated score of a mention: ``confidence_raw`` once a
    calibrator has run, else ``confidence`` (1.0 when the producer gave none,
    e.g. a dictionary match)."""
    value = attributes.get(RAW_CONFIDENCE, attributes.get(CONFIDENCE, 1.0))
    return float(value)


def reaction_scores(doc: Doc, spans_key: str = MENTIONS_KEY) -> Dict[Tuple[str, str], float]:
    """``{(label, normalised string): highest raw confidence}`` of a doc."""
    out: Dict[Tuple[str, str], float] = {}
    for span in get_mentions(doc, spans_key):
        key = (span.label_, normalize_string(span_text(span)))
        out[key] = max(out.get(key, 0.0), raw_confidence(span._.attributes or {}))
    return out


def mention_outcomes(
    gold: Sequence[Doc], pred: Sequence[Doc], spans_key: str = MENTIONS_KEY
) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Raw confidence and strict correctness (0/1) of every predicted mention."""
    scores: List[float] = []
    hits: List[int] = []
    for g, p in align_docs(gold, pred):
        gold_keys = {(s.start_char, s.end_char, s.label_) for s in get_mentions(g, spans_key)}
        for span in get_mentions(p, spans_key):
            scores.append(raw_confidence(span._.attributes or {}))
            hits.append(int((span.start_char, span.end_char, span.label_) in gold_keys))
    return numpy.asarray(scores, dtype="float64"), numpy.asarray(hits, dtype="float64")


def reaction_outcomes(
    gold: Sequence[Doc], pred: Sequence[Doc], spans_key: str = MENTIONS_KEY
) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Raw score and correctness (0/1) of every predicted reaction of every
    section."""
    scores: List[float] = []
    hits: List[int] = []
    for g, p in align_docs(gold, pred):
        truth = gold_strings(g, spans_key)
        for (label, text), score in reaction_scores(p, spans_key).items():
            scores.append(score)
            hits.append(int(text in truth.get(label, set())))
    return numpy.asarray(scores, dtype="float64"), numpy.asarray(hits, dtype="float64")


def reliability_bins(probs: Sequence[float], outcomes: Sequence[float], n_bins: int = 10) -> List[Dict[str, float]]:
    """Equal-width bins over [0, 1]: count, mean confidence and observed
    frequency of each non-empty bin (the points of a reliability diagram)."""
    p = numpy.clip(numpy.asarray(probs, dtype="float64"), 0.0, 1.0)
    y = numpy.asarray(outcomes, dtype="float64")
    if p.shape != y.shape:
        raise ValueError(f"{len(p)} confidences but {len(y)} outcomes")
    edges = numpy.linspace(0.0, 1.0, n_bins + 1)
    index = numpy.clip(numpy.digitize(p, edges[1:-1], right=True), 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = index == b
        if mask.any():
            bins.append(
                {
                    "lo": float(edges[b]),
                    "hi": float(edges[b + 1]),
                    "n": int(mask.sum()),
                    "confidence": float(p[mask].mean()),
                    "frequency": float(y[mask].mean()),
                }
            )
    return bins


def expected_calibration_error(probs: Sequence[float], outcomes: Sequence[float], n_bins: int = 10) -> float:
    """ECE: the count-weighted mean gap between confidence and observed
    frequency over equal-width bins (0 is perfectly calibrated)."""
    bins = reliability_bins(probs, outcomes, n_bins)
    total = sum(b["n"] for b in bins)
    if not total:
        return 0.0
    return float(sum(b["n"] * abs(b["confidence"] - b["frequency"]) for b in bins) / total)
