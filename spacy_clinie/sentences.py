"""Sentence units: what the sentence classifier is trained on and what the
sentence filter classifies (seed 003 filters sentences before tagging).

A unit is a sentence (the doc's own boundaries when a sentencizer or parser
ran, else spaCy's rule-based ``Sentencizer``) further split after every
whitespace token holding a line break: drug labels are bullet lists and
tables, whose rows rarely end in a full stop (TAC 2017 train: 7,364
sentencizer sentences of up to 1,096 tokens; 13,694 units of at most 155
tokens with line breaks, none of which cuts a mention). Units made only of
whitespace are dropped; trailing whitespace stays with its unit.
"""
import itertools
from typing import List, Optional, Sequence, Tuple

from spacy.pipeline import Sentencizer
from spacy.tokens import Doc, Span

_SENTENCIZER = Sentencizer()

# the span group where clinie_sentence_filter writes the kept units
SENTENCES_KEY = "ade_sentences"


def sentence_starts(doc: Doc, *, use_doc_sents: bool = True) -> List[bool]:
    if use_doc_sents and doc.has_annotation("SENT_START"):
        return [bool(t.is_sent_start) for t in doc]
    return list(_SENTENCIZER.predict([doc])[0])


def sentence_units(
    doc: Doc,
    *,
    split_newlines: bool = True,
    max_tokens: int = 0,
    use_doc_sents: bool = True,
) -> List[Tuple[int, int]]:
    """Token ranges ``(start, end)`` of the units of ``doc`` in order.
    ``max_tokens`` > 0 cuts longer units into pieces of at most that many
    tokens (0: no cap)."""
    if not len(doc):
        return []
    starts = sentence_starts(doc, use_doc_sents=use_doc_sents)
    starts[0] = True
    if split_newlines:
        for t in doc[:-1]:
            if t.is_space and "\n" in t.text:
                starts[t.i + 1] = True
    bounds = [i for i, s in enumerate(starts) if s] + [len(doc)]
    units = []
    for s, e in itertools.pairwise(bounds):
        if max_tokens > 0:
            pieces = [(a, min(a + max_tokens, e)) for a in range(s, e, max_tokens)]
        else:
            pieces = [(s, e)]
        units.extend(p for p in pieces if any(not t.is_space for t in doc[p[0] : p[1]]))
    return units


def unit_has_span(unit: Tuple[int, int], spans: Sequence[Span]) -> bool:
    """Whether any span overlaps the unit."""
    s, e = unit
    return any(sp.start < e and sp.end > s for sp in spans)


def unit_doc(doc: Doc, start: int, end: int, vocab: Optional[object] = None) -> Doc:
    """A new Doc with the tokens ``doc[start:end]`` (same words and spaces),
    in ``vocab`` (default: the doc's); no annotations are copied."""
    tokens = doc[start:end]
    words = [t.text for t in tokens]
    spaces = [bool(t.whitespace_) for t in tokens]
    if spaces:
        spaces[-1] = False
    return Doc(vocab or doc.vocab, words=words, spaces=spaces)


def tokens_doc(doc: Doc, indices: Sequence[int], vocab: Optional[object] = None) -> Doc:
    """A new Doc of the tokens at ``indices`` (ascending) of ``doc``, e.g. the
    tokens of the kept sentences; a token keeps its trailing space, and a gap
    in ``indices`` gets one."""
    words, spaces = [], []
    for n, i in enumerate(indices):
        t = doc[i]
        words.append(t.text)
        gap = n + 1 < len(indices) and indices[n + 1] != i + 1
        spaces.append(bool(t.whitespace_) or gap)
    return Doc(vocab or doc.vocab, words=words, spaces=spaces)


def kept_token_indices(doc: Doc, sentences_key: Optional[str]) -> Optional[List[int]]:
    """Token indices of the sentences a ``clinie_sentence_filter`` kept
    (``doc.spans[sentences_key]``), ascending; None when the doc has no such
    group (no filter ran: use the whole doc)."""
    if not sentences_key or sentences_key not in doc.spans:
        return None
    keep = set()
    for span in doc.spans[sentences_key]:
        keep.update(range(span.start, span.end))
    return sorted(keep)
