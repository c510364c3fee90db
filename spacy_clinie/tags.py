"""Mention labels and BIO tags shared by readers, pipes, review and scorers
(cf. ``spacy/training/iob_utils.py``): the lowest module that all of them
can import, so that each has one definition."""
from typing import Iterable, List, Tuple

# TAC 2017's adverse reaction mention type: the unit of the reaction and
# MedDRA PT levels, and the type the MedDRA linker codes by default
ADR_LABEL = "AdverseReaction"


def bio_tags(labels: List[str]) -> List[str]:
    """The tag set of ``labels``: ``O``, then ``B-``/``I-`` per label."""
    return ["O"] + [f"{p}-{label}" for label in labels for p in ("B", "I")]


def spans_to_bio(n_tokens: int, spans: Iterable[Tuple[int, int, str]], tags: List[str]) -> List[int]:
    """Token tag indices; overlapping spans: the longest wins, then the earliest."""
    index = {t: i for i, t in enumerate(tags)}
    out = [0] * n_tokens
    taken = [False] * n_tokens
    for start, end, label in sorted(spans, key=lambda s: (-(s[1] - s[0]), s[0])):
        if any(taken[start:end]) or f"B-{label}" not in index:
            continue
        out[start] = index[f"B-{label}"]
        for i in range(start + 1, end):
            out[i] = index[f"I-{label}"]
        for i in range(start, end):
            taken[i] = True
    return out


def bio_to_spans(tags: List[str]) -> List[Tuple[int, int, str]]:
    """Spans from a BIO sequence; a stray ``I-X`` starts a new span."""
    spans = []
    start, label = None, None
    for i, tag in enumerate(tags + ["O"]):
        if tag == "O" or tag.startswith("B-") or (tag.startswith("I-") and tag[2:] != label):
            if start is not None:
                spans.append((start, i, label))
            start, label = (i, tag[2:]) if tag != "O" else (None, None)
    return spans


__all__ = ["ADR_LABEL", "bio_tags", "bio_to_spans", "spans_to_bio"]
