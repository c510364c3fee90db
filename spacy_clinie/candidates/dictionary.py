"""Known reaction strings and how often each is an ADE where it appears.

A string the tagger finds is often a real ADE term that is not an ADE of
*this* drug in *this* section (a background rate, the indication, a
negated mention). How often a string is annotated where it occurs, across
other labels, is the strongest single evidence for that: "anemia" is
annotated in most sections it occurs in, "infection" in far fewer. The
dictionary keeps, per string, the number of sections it occurs in and is
annotated in, per drug label, so that the rate for a document can leave
out that document's own label (its gold would otherwise leak into its
features when the verifier is trained on the same labels), and it matches
its strings in new text (case-insensitive, on token boundaries) to propose
the reactions a tagger missed.
"""

from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

import srsly
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from ..extensions import MENTIONS_KEY
from ..scoring import ADR_LABEL, gold_strings, normalize_string

# per string: {label_id: [sections where it occurs, sections where it is gold]}
Counts = Dict[str, Dict[str, List[int]]]


def gold_reaction_strings(doc: Doc, label: str = ADR_LABEL, spans_key: str = MENTIONS_KEY) -> Set[str]:
    """The normalised ``label`` strings a reference doc lists (``scoring.gold_strings``:
    ``doc._.reactions`` when present, discontiguous entries included, else its spans)."""
    return gold_strings(doc, spans_key).get(label, set())


class TermDictionary:
    """Reaction strings with per-label occurrence and annotation counts."""

    def __init__(self, vocab: Vocab, *, min_words: int = 1, max_words: int = 8) -> None:
        self.vocab = vocab
        self.min_words = min_words
        self.max_words = max_words
        self.counts: Counts = {}
        self._matcher: Optional[PhraseMatcher] = None

    def __len__(self) -> int:
        return len(self.counts)

    def __contains__(self, text: str) -> bool:
        return normalize_string(text) in self.counts

    def strings(self) -> List[str]:
        return sorted(self.counts)

    # ------------------------------------------------------------ building

    def build(
        self, docs: Iterable[Doc], make_doc: Callable[[str], Doc], *, label: str = ADR_LABEL
    ) -> "TermDictionary":
        """Collect the gold strings of ``docs``, then count, per label, the
        sections each string occurs in and is gold in. Two passes: the
        matcher needs the full string list before it can count."""
        docs = list(docs)
        golds = [gold_reaction_strings(d, label) for d in docs]
        strings = {s for g in golds for s in g if self.min_words <= len(s.split()) <= self.max_words}
        self.counts = {s: {} for s in strings}
        self._build_matcher(make_doc)
        for doc, gold in zip(docs, golds):
            lab = str(doc._.label_id or doc._.doc_id or id(doc))
            seen = {normalize_string(sp.text) for sp in self.match(doc)} | (gold & strings)
            for s in seen:
                c = self.counts[s].setdefault(lab, [0, 0])
                c[0] += 1
                c[1] += int(s in gold)
        return self

    def _build_matcher(self, make_doc: Callable[[str], Doc]) -> None:
        matcher = PhraseMatcher(self.vocab, attr="LOWER")
        patterns = [make_doc(s) for s in sorted(self.counts)]
        for start in range(0, len(patterns), 1000):
            matcher.add("TERM", patterns[start : start + 1000])
        self._matcher = matcher

    # ------------------------------------------------------------ use

    def match(self, doc: Doc) -> List[Span]:
        """Every occurrence of a known string (overlaps kept: the verifier
        decides between "pain" and "abdominal pain")."""
        if self._matcher is None:
            return []
        out = []
        for _, start, end in self._matcher(doc):
            span = doc[start:end]
            if normalize_string(span.text) in self.counts:
                out.append(span)
        return out

    def rate(self, text: str, exclude_label: Optional[str] = None) -> Tuple[int, int]:
        """(sections it occurs in, sections it is annotated in), over every
        label but ``exclude_label``."""
        occurs = gold = 0
        for lab, (a, g) in self.counts.get(normalize_string(text), {}).items():
            if lab != exclude_label:
                occurs += a
                gold += g
        return occurs, gold

    # ------------------------------------------------------------ serialisation

    def to_bytes(self) -> bytes:
        return srsly.msgpack_dumps(
            {"counts": self.counts, "min_words": self.min_words, "max_words": self.max_words}
        )

    def from_bytes(self, data: bytes, make_doc: Callable[[str], Doc]) -> "TermDictionary":
        msg = srsly.msgpack_loads(data)
        self.counts = {s: {lab: list(v) for lab, v in labs.items()} for s, labs in msg["counts"].items()}
        self.min_words = msg.get("min_words", self.min_words)
        self.max_words = msg.get("max_words", self.max_words)
        self._build_matcher(make_doc)
        return self
