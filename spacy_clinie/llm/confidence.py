"""Confidence signals: the small model's mean token entropy per unit (seed
001's sampling criterion) and an LLM label's probability from the logits of
its first generated token (seed 002)."""
import math
from typing import Dict, List, Optional, Sequence, Tuple

from spacy.tokens import Doc

from ..sentences import sentence_units


def units(doc: Doc, max_tokens: int) -> List[Tuple[int, int]]:
    """Sentence-sized ``(start, end)`` token ranges covering the doc (the
    doc's own sentences, else spaCy's rule sentencizer without writing to
    the doc), long ones cut at ``max_tokens``: ``sentence_units`` without
    the line-break split."""
    return sentence_units(doc, split_newlines=False, max_tokens=max_tokens)


def unit_entropy(doc: Doc, start: int, end: int) -> float:
    """Mean tag entropy over the unit's non-space tokens; ``inf`` when the doc
    carries no entropies (no tagger ran: every unit is uncertain)."""
    ent = doc._.tag_entropy
    if not ent:
        return math.inf
    vals = [ent[i] for i in range(start, end) if not doc[i].is_space]
    return sum(vals) / len(vals) if vals else 0.0


def token_offsets(tokens: Sequence[Dict]) -> Tuple[List[int], str]:
    """Each generated token's character offset in the generated text, and that text."""
    offsets, pos = [], 0
    for tok in tokens:
        offsets.append(pos)
        pos += len(tok.get("token", ""))
    return offsets, "".join(t.get("token", "") for t in tokens)


def label_confidences(
    tokens: Optional[Sequence[Dict]], text: str, labels: Sequence[str], answer_labels: Sequence[str]
) -> List[Optional[float]]:
    """For each label string in ``answer_labels`` (in answer order), the
    probability the LLM gave the first token of that label where it was
    generated, renormalised over the first tokens of all ``labels`` that were
    among the top candidates (seed 002 softmaxes the logits of the "0" and
    "1" tokens). ``None`` where the backend gave no log-probabilities."""
    if not tokens:
        return [None] * len(answer_labels)
    offsets, generated = token_offsets(tokens)
    out: List[Optional[float]] = []
    cursor = 0
    for label in answer_labels:
        hit = generated.find(label, cursor)
        if hit < 0:
            out.append(None)
            continue
        cursor = hit + len(label)
        k = max(i for i, o in enumerate(offsets) if o <= hit)
        tok = tokens[k]
        top = dict(tok.get("top") or {})
        top.setdefault(tok["token"], tok["logprob"])
        chosen = tok["token"]
        rivals = {t: lp for t, lp in top.items() if any(lab.startswith(t.strip()) and t.strip() for lab in labels)}
        rivals.setdefault(chosen, tok["logprob"])
        z = sum(math.exp(lp) for lp in rivals.values())
        out.append(round(math.exp(rivals[chosen]) / z, 4) if z > 0 else None)
    return out


def first_token_probability(tokens: Optional[Sequence[Dict]], choices: Sequence[str]) -> Optional[Dict[str, float]]:
    """Seed 002's classifier confidence: softmax over the first generated
    token's log-probabilities of ``choices`` (e.g. "0"/"1", "yes"/"no");
    choices absent from the top candidates get probability 0."""
    if not tokens:
        return None
    first = tokens[0]
    top = dict(first.get("top") or {})
    top.setdefault(first["token"], first["logprob"])
    scores = {}
    for c in choices:
        lps = [lp for t, lp in top.items() if t.strip().lower() == c.lower()]
        scores[c] = math.exp(max(lps)) if lps else 0.0
    z = sum(scores.values())
    return {c: round(v / z, 4) for c, v in scores.items()} if z > 0 else {c: 0.0 for c in choices}


def string_confidences(tokens: Optional[Sequence[Dict]], strings: Sequence[str]) -> List[Optional[float]]:
    """For each string the answer named (in answer order), the probability
    of the generated token where that string starts: how sure the LLM was
    to name this text at all. ``None`` where the backend gave no
    log-probabilities or the string is not found in the generated text."""
    if not tokens:
        return [None] * len(strings)
    offsets, generated = token_offsets(tokens)
    out: List[Optional[float]] = []
    cursor = 0
    for text in strings:
        hit = generated.find(text, cursor) if text else -1
        if hit < 0:
            out.append(None)
            continue
        cursor = hit + len(text)
        k = max(i for i, o in enumerate(offsets) if o <= hit)
        out.append(round(math.exp(tokens[k]["logprob"]), 4))
    return out
