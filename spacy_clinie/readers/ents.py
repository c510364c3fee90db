"""Mentions as ``doc.ents``, for spaCy's stock ``ner``.

Our gold mentions live in ``doc.spans["mentions"]`` and may overlap;
``doc.ents`` may not. ``clinie.MentionEntsCorpus.v1`` reads a ``.spacy`` file
(as ``spacy.Corpus.v1`` does) and sets the reference docs' entities from the
non-overlapping mentions, longest first (``spacy.util.filter_spans``), so a
stock ``ner`` trains on the same data as the span-based taggers. The
``clinie_ents_to_spans`` component does the reverse after prediction, so the
``clinie`` evaluator and scorers see the ``ner`` output where they look.

    [corpora.train]
    @readers = "clinie.MentionEntsCorpus.v1"
    path = ${paths.train}
"""

import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from spacy.util import filter_spans, registry

from ..errors import Warnings
from ..extensions import MENTIONS_KEY, register_extensions
from ._util import Report


def mentions_to_ents(doc: Doc, spans_key: str = MENTIONS_KEY) -> int:
    """Set ``doc.ents`` from ``doc.spans[spans_key]``: longest first, then
    earliest, overlapping shorter ones dropped. Returns how many were dropped.
    Tokens outside every entity are marked ``O`` (annotated), not missing."""
    spans: list[Span] = list(doc.spans[spans_key]) if spans_key in doc.spans else []
    kept = filter_spans(spans)
    doc.set_ents(kept, default="outside")
    return len(spans) - len(kept)


def _read_docs(nlp: Language, path: str | Path) -> Iterator[Doc]:
    path = Path(path)
    files = sorted(path.glob("**/*.spacy")) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"clinie.MentionEntsCorpus.v1: no .spacy files at {path}")
    for f in files:
        yield from DocBin().from_disk(f).get_docs(nlp.vocab)


class MentionEntsCorpus:
    """The reader ``clinie.MentionEntsCorpus.v1`` returns; spaCy calls it once
    per epoch. ``report`` holds the counts of the last complete pass:
    mentions read and those left out of ``doc.ents`` because they overlap a
    longer one (a stock ``ner`` cannot learn those). The first pass that
    drops any warns once (W002); later epochs do not repeat it."""

    def __init__(self, path: Path | None, spans_key: str, limit: int, max_length: int) -> None:
        self.path = path
        self.spans_key = spans_key
        self.limit = limit
        self.max_length = max_length
        self.report = Report()
        self._warned = False

    def __call__(self, nlp: Language) -> Iterator[Example]:
        if self.path is None:
            raise ValueError("clinie.MentionEntsCorpus.v1: no path given (set [paths] train / dev)")
        register_extensions()
        counts: Counter = Counter()
        n = 0
        for doc in _read_docs(nlp, self.path):
            if self.max_length and len(doc) > self.max_length:
                continue
            if self.limit and n >= self.limit:
                break
            n_spans = len(doc.spans[self.spans_key]) if self.spans_key in doc.spans else 0
            dropped = mentions_to_ents(doc, self.spans_key)
            counts["docs"] += 1
            counts["mentions"] += n_spans
            counts["mentions_dropped_overlapping"] += dropped
            counts["docs_with_dropped_overlaps"] += dropped > 0
            n += 1
            yield Example(nlp.make_doc(doc.text), doc)
        self.report = Report(counts=counts)
        if counts["mentions_dropped_overlapping"] and not self._warned:
            self._warned = True
            warnings.warn(
                Warnings.W002.format(
                    path=self.path,
                    n=counts["mentions_dropped_overlapping"],
                    total=counts["mentions"],
                    docs=counts["docs_with_dropped_overlaps"],
                ),
                stacklevel=2,
            )


@registry.readers("clinie.MentionEntsCorpus.v1")
def create_mention_ents_corpus(
    path: Path | None,
    spans_key: str = MENTIONS_KEY,
    limit: int = 0,
    max_length: int = 0,
) -> MentionEntsCorpus:
    """Examples from a ``.spacy`` file (or a folder of them) whose reference
    docs carry the mentions of ``doc.spans[spans_key]`` as ``doc.ents``.
    ``max_length`` skips docs longer than that many tokens (0: keep all)."""
    return MentionEntsCorpus(path, spans_key, limit, max_length)
