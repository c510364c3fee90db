"""Reaction candidates of a document and the features a verifier judges them by.

A *reaction* is what TAC scores and users consume: a distinct normalised
string per section. A candidate gathers every occurrence of one string,
from whichever sources proposed it (the tagger's spans, dictionary matches,
coordination expansions, and in training the gold spans and their boundary
perturbations, so that the verifier sees the fragments a tagger produces).

The features describe the string where it occurs and how often it is
annotated elsewhere; they deliberately leave out the tagger's own scores:
the verifier is trained on the training labels, where the tagger's
predictions are in-sample and would look better than they are.
"""

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy
from spacy.tokens import Doc, Span

from ..extensions import MENTIONS_KEY, get_mentions
from ..scoring import ADR_LABEL, normalize_string
from .coordination import CoordinationCandidate
from .dictionary import TermDictionary

SOURCES = ("tagger", "dictionary", "coordination", "perturbation", "gold", "broken", "split")
SECTIONS = ("adverse reactions", "warnings and precautions", "boxed warnings")
NEGATION_CUES = frozenset("no not without absence absent denied never none neither nor".split())
HEDGE_CUES = frozenset(
    "risk may might if monitor monitoring history treatment treat indicated prevent prevention"
    " predisposed suspected consider unless".split()
)
# (left, right) token shifts that make a perturbation of a gold span
PERTURBATIONS = ((-1, 0), (0, 1), (1, 0), (0, -1))
FEATURE_NAMES = (
    "log_occurrences",
    "first_position",
    "n_words",
    "log_sections_elsewhere",
    "annotated_rate_elsewhere",
    "annotated_elsewhere",
    "seen_elsewhere",
    "negation_before",
    "hedge_before",
    "after_open_paren",
    "before_number",
    "section_adverse_reactions",
    "section_warnings",
    "section_boxed",
    "from_coordination",
    "sentence_start",
    "all_caps",
)
N_FEATURES = len(FEATURE_NAMES)


@dataclass
class ReactionCandidate:
    """One normalised string of a doc with its occurrences and sources."""

    key: str
    spans: List[Span] = field(default_factory=list)
    sources: Set[str] = field(default_factory=set)
    fragments: Optional[Tuple[Tuple[int, int], ...]] = None  # a coordination candidate's
    kind: Optional[str] = None

    def add(self, span: Span, source: str) -> None:
        if all((s.start, s.end) != (span.start, span.end) for s in self.spans):
            self.spans.append(span)
        self.sources.add(source)


def perturbations(span: Span) -> List[Span]:
    """Spans one token longer or shorter at either end (the tagger's usual
    boundary errors); none that start or end on punctuation."""
    doc = span.doc
    out = []
    for left, right in PERTURBATIONS:
        a, b = span.start + left, span.end + right
        if 0 <= a < b <= len(doc) and (a, b) != (span.start, span.end):
            if doc[a].is_punct or doc[b - 1].is_punct or doc[a].is_space or doc[b - 1].is_space:
                continue
            out.append(doc[a:b])
    return out


def is_break(token) -> bool:
    """A line break or a gap of three or more spaces (a table's columns);
    a double space inside a term ("Staphylococcal  bacteremia") is not."""
    return token.is_space and ("\n" in token.text or len(token.text) >= 2)


def split_at_breaks(span: Span) -> List[Span]:
    """The pieces of ``span`` between breaks, without edge punctuation; the
    span itself when it has no break."""
    if not any(is_break(t) for t in span):
        return [span]
    doc, pieces, start = span.doc, [], span.start
    for i in range(span.start, span.end + 1):
        if i == span.end or is_break(doc[i]):
            a, b = start, i
            while a < b and (doc[a].is_punct or doc[a].is_space):
                a += 1
            while b > a and (doc[b - 1].is_punct or doc[b - 1].is_space):
                b -= 1
            if b > a:
                pieces.append(doc[a:b])
            start = i + 1
    return pieces


def gather_candidates(
    doc: Doc,
    *,
    dictionary: Optional[TermDictionary] = None,
    coordination: Optional[Callable[[Doc, Iterable[Span]], List[CoordinationCandidate]]] = None,
    reference: Optional[Doc] = None,
    spans_key: str = MENTIONS_KEY,
    label: str = ADR_LABEL,
    split_breaks: bool = False,
) -> List[ReactionCandidate]:
    """Candidates of ``doc``: its ``label`` spans (the tagger's), dictionary
    matches and coordination expansions of the spans; with a ``reference``
    (training) also the gold spans and their perturbations, mapped onto
    ``doc`` by character offsets. With ``split_breaks``, a tagger span
    that runs across a line break or a table's column gap is a "broken"
    candidate (dropped) and its pieces are "split" candidates, judged like
    the tagger's own.
    """
    by_key: Dict[str, ReactionCandidate] = {}

    def get(key: str) -> ReactionCandidate:
        if key not in by_key:
            by_key[key] = ReactionCandidate(key)
        return by_key[key]

    seeds = [s for s in get_mentions(doc, spans_key) if s.label_ == label]
    for span in seeds:
        if span._.fragments and len(span._.fragments) > 1:
            continue  # a discontiguous span: not a string of the text (kept by the pipe)
        pieces = split_at_breaks(span) if split_breaks else [span]
        if len(pieces) > 1 or (pieces and pieces[0] is not span):
            get(normalize_string(span.text)).add(span, "broken")
            for piece in pieces:
                get(normalize_string(piece.text)).add(piece, "split")
        else:
            get(normalize_string(span.text)).add(span, "tagger")
    if reference is not None:
        for ref in get_mentions(reference, spans_key):
            if ref.label_ != label or (ref._.fragments and len(ref._.fragments) > 1):
                continue
            span = doc.char_span(ref.start_char, ref.end_char)
            if span is None:
                continue
            seeds.append(span)
            get(normalize_string(span.text)).add(span, "gold")
            for p in perturbations(span):
                get(normalize_string(p.text)).add(p, "perturbation")
    if dictionary is not None:
        for span in dictionary.match(doc):
            get(normalize_string(span.text)).add(span, "dictionary")
    if coordination is not None and seeds:
        for cand in coordination(doc, seeds):
            key = normalize_string(cand.text)
            if key in by_key:
                continue
            first = doc.char_span(cand.fragments[0][0], cand.fragments[0][1], alignment_mode="expand")
            if first is None:
                continue
            c = get(key)
            c.add(first, "coordination")
            c.fragments = tuple(tuple(f) for f in cand.fragments)
            c.kind = cand.kind
    return [c for c in by_key.values() if c.key and c.spans]


def candidate_features(
    doc: Doc,
    candidates: Sequence[ReactionCandidate],
    dictionary: Optional[TermDictionary] = None,
    *,
    exclude_label: Optional[str] = None,
    context: int = 4,
) -> numpy.ndarray:
    """One row of ``FEATURE_NAMES`` per candidate (float32). ``exclude_label``
    leaves a label's own counts out of the dictionary rates."""
    rows = numpy.zeros((len(candidates), N_FEATURES), dtype="float32")
    n_tokens = max(1, len(doc))
    section = (doc._.section or "").lower()
    for i, cand in enumerate(candidates):
        spans = sorted(cand.spans, key=lambda s: s.start)
        occurs, gold = dictionary.rate(cand.key, exclude_label) if dictionary is not None else (0, 0)
        before = [doc[max(0, s.start - context) : s.start] for s in spans]
        n = len(spans)
        rows[i] = (
            math.log1p(n),
            spans[0].start / n_tokens,
            min(len(cand.key.split()), 10) / 10.0,
            math.log1p(occurs),
            (gold + 1.0) / (occurs + 2.0),
            float(gold > 0),
            float(occurs > 0),
            sum(any(t.lower_ in NEGATION_CUES for t in b) for b in before) / n,
            sum(any(t.lower_ in HEDGE_CUES for t in b) for b in before) / n,
            sum(s.start > 0 and doc[s.start - 1].text == "(" for s in spans) / n,
            sum(s.end < len(doc) and (doc[s.end].like_num or doc[s.end].text in {"%", "("}) for s in spans)
            / n,
            float(section == SECTIONS[0]),
            float(section == SECTIONS[1]),
            float(section == SECTIONS[2]),
            float("coordination" in cand.sources and len(cand.sources) == 1),
            sum(
                s.start == 0 or doc[s.start - 1].text in {".", ":", "\n"} or doc[s.start - 1].is_space
                for s in spans
            )
            / n,
            float(any(s.text.isupper() and len(s.text) > 3 for s in spans)),
        )
    return rows


def gold_labels(candidates: Sequence[ReactionCandidate], gold: Set[str]) -> numpy.ndarray:
    return numpy.asarray([[float(c.key in gold)] for c in candidates], dtype="float32").reshape(-1, 1)
