"""Seed 001's rule-based resolver: LLM labels and strings -> the pipeline's
label space and token spans. What cannot be mapped is dropped and counted."""
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from spacy.tokens import Doc

DEFAULT_SYNONYMS: Dict[str, List[str]] = {
    "AdverseReaction": [
        "adr", "ade", "adverse reaction", "adverse drug reaction", "adverse event",
        "adverse drug event", "side effect", "reaction", "adversereaction", "ae",
    ],
}


def _norm(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", label.lower())


class LabelResolver:
    """Maps a free-text label to one of ``labels``: exact, case/punctuation
    insensitive, then configured synonyms; ``None`` when nothing fits."""

    def __init__(self, labels: Sequence[str], synonyms: Optional[Dict[str, Iterable[str]]] = None) -> None:
        self.labels = list(labels)
        self._map: Dict[str, str] = {}
        for label in self.labels:
            self._map[_norm(label)] = label
            b = re.sub(r"(?<!^)([A-Z])", r" \1", label)  # AdverseReaction -> Adverse Reaction
            self._map[_norm(b)] = label
        for label, words in (synonyms or {}).items():
            if label in self.labels:
                for w in words:
                    self._map.setdefault(_norm(w), label)

    def __call__(self, label: str) -> Optional[str]:
        key = _norm(label)
        if key.startswith(("b", "i")) and key[1:] in self._map and label[:2].upper() in ("B-", "I-"):
            key = key[1:]
        return self._map.get(key)


def locate_entities(
    doc: Doc, start: int, end: int, entities: Sequence[Tuple[str, str]]
) -> Tuple[List[Tuple[int, int, str]], int, List[int]]:
    """Token spans inside ``doc[start:end]`` for ``(text, label)`` pairs, found
    in answer order (each search starts after the previous hit, then wraps),
    exact first, then case-insensitive. Returns (spans, n_not_found, the
    index in ``entities`` of each span)."""
    unit = doc[start:end]
    text, offset = unit.text, unit.start_char
    lower = text.lower()
    spans: List[Tuple[int, int, str]] = []
    found: List[int] = []
    missing, cursor = 0, 0
    for n, (ent_text, label) in enumerate(entities):
        needle = ent_text.strip().strip('"').strip()
        hit = -1
        if needle:
            for hay, pat in ((text, needle), (lower, needle.lower())):
                hit = hay.find(pat, cursor)
                if hit < 0:
                    hit = hay.find(pat)
                if hit >= 0:
                    break
        span = doc.char_span(offset + hit, offset + hit + len(needle), label=label, alignment_mode="strict") if hit >= 0 else None
        if span is None and hit >= 0:
            span = doc.char_span(offset + hit, offset + hit + len(needle), label=label, alignment_mode="contract")
        if span is None or not len(span):
            missing += 1
            continue
        spans.append((span.start, span.end, label))
        found.append(n)
        cursor = hit + len(needle)
    return spans, missing, found


def index_spans(
    doc: Doc, start: int, end: int, lines: Sequence[Tuple[int, str, str]], resolve: LabelResolver
) -> Tuple[List[Tuple[int, int, str]], int]:
    """Token spans from ``(index, token, label)`` lines (index relative to the
    unit's non-space tokens); consecutive indices with one label form a span."""
    words = [i for i in range(start, end) if not doc[i].is_space]
    tagged: Dict[int, str] = {}
    dropped = 0
    for idx, _tok, raw in lines:
        label = resolve(raw)
        if label is None or not 0 <= idx < len(words):
            dropped += 1
            continue
        tagged[idx] = label
    spans: List[Tuple[int, int, str]] = []
    for idx in sorted(tagged):
        label = tagged[idx]
        if spans and spans[-1][2] == label and idx - 1 in tagged and tagged[idx - 1] == label:
            s, _, lab = spans[-1]
            spans[-1] = (s, words[idx] + 1, lab)
        else:
            spans.append((words[idx], words[idx] + 1, label))
    return spans, dropped
