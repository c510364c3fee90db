"""Review instances: sentences (or windows of long sentences) of gold docs.

A reviewer judges a few dozen tokens at a time, not a whole drug-label
section, so each DATA doc is cut at sentence boundaries (spaCy's rule-based
``Sentencizer``) and long sentences into windows of at most ``max_tokens``.
A cut never falls inside a gold mention. Each instance is a small
stand-alone gold ``Doc`` (same tokens and whitespace, the mentions inside it
with their kind and relations), which is also what the tagger sees when the
app predicts it and what ``clinie refine`` trains on.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Set

from spacy.pipeline import Sentencizer
from spacy.tokens import Doc, Span

from ..extensions import MENTIONS_KEY, get_mentions, register_extensions, set_mention_attrs


@dataclass
class Instance:
    """One unit of review: tokens ``start:end`` of DATA doc ``doc_index``."""

    key: str  # stable id, ``<doc index>/<doc id>#<start>-<end>``; the store's key
    doc_index: int
    start: int
    end: int
    doc: Doc  # the gold window as a stand-alone Doc
    confidence: Optional[float] = None  # set when the review is ordered by confidence

    @property
    def words(self) -> List[str]:
        return [t.text for t in self.doc]

    @property
    def spaces(self) -> List[bool]:
        return [bool(t.whitespace_) for t in self.doc]


def _inside_mention(doc: Doc, key: str) -> Set[int]:
    """Token positions ``i`` where a cut between ``i - 1`` and ``i`` would
    split a gold mention."""
    inside: Set[int] = set()
    for span in get_mentions(doc, key):
        inside.update(range(span.start + 1, span.end))
    return inside


def cut_points(doc: Doc, max_tokens: int, key: str = MENTIONS_KEY) -> List[int]:
    """Boundaries ``[0, ..., len(doc)]``: sentence starts, plus window cuts in
    sentences longer than ``max_tokens``; none inside a mention (a mention
    longer than ``max_tokens`` stays whole)."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    inside = _inside_mention(doc, key)
    probe = Doc(doc.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])
    Sentencizer()(probe)  # on a copy: DATA docs keep their own sentence marks
    starts = [t.i for t in probe if t.is_sent_start and t.i not in inside] if len(probe) else []
    starts = sorted(set([0] + starts))
    bounds = [0]
    for s, e in zip(starts, starts[1:] + [len(doc)]):
        pos = s
        while e - pos > max_tokens:
            cut = pos + max_tokens
            while cut > pos + 1 and cut in inside:
                cut -= 1
            if cut in inside:  # the mention is longer than a window
                cut = pos + max_tokens
                while cut < e and cut in inside:
                    cut += 1
            bounds.append(cut)
            pos = cut
        if e > bounds[-1]:
            bounds.append(e)
    return bounds


def window_doc(doc: Doc, start: int, end: int, key: str = MENTIONS_KEY) -> Doc:
    """Tokens ``start:end`` as a new Doc with the gold mentions that lie
    inside (ids, kind, attributes kept) and the relations among them."""
    register_extensions()
    words = [t.text for t in doc[start:end]]
    spaces = [bool(t.whitespace_) for t in doc[start:end]]
    if spaces:
        spaces[-1] = False  # the window ends here
    out = Doc(doc.vocab, words=words, spaces=spaces)
    kept = []
    for span in get_mentions(doc, key):
        if span.start >= start and span.end <= end:
            new = Span(out, span.start - start, span.end - start, label=span.label_, span_id=span.id_)
            kept.append(new)
            if span.id_:
                store = (doc._.mention_attrs or {}).get(span.id_, {})
                set_mention_attrs(out, span.id_, **{k: v for k, v in store.items()})
    out.spans[key] = kept
    ids = {s.id_ for s in kept}
    out._.relations = [r for r in (doc._.relations or []) if r["head"] in ids and r["tail"] in ids]
    out._.doc_id = doc._.doc_id
    out._.label_id = doc._.label_id
    out._.section = doc._.section
    return out


def make_instances(docs: Sequence[Doc], max_tokens: int = 64, key: str = MENTIONS_KEY) -> List[Instance]:
    """All instances of ``docs`` in order; whitespace-only pieces are skipped."""
    out: List[Instance] = []
    for d, doc in enumerate(docs):
        bounds = cut_points(doc, max_tokens, key)
        for start, end in zip(bounds, bounds[1:]):
            if all(t.is_space for t in doc[start:end]):
                continue
            name = doc._.doc_id or f"doc{d}"
            out.append(Instance(f"{d}/{name}#{start}-{end}", d, start, end, window_doc(doc, start, end, key)))
    return out
