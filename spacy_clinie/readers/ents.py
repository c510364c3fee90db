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

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from spacy.util import filter_spans, registry

from ..extensions import MENTIONS_KEY, register_extensions


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


@registry.readers("clinie.MentionEntsCorpus.v1")
def create_mention_ents_corpus(
    path: Path | None,
    spans_key: str = MENTIONS_KEY,
    limit: int = 0,
    max_length: int = 0,
) -> Callable[[Language], Iterable[Example]]:
    """Examples from a ``.spacy`` file (or a folder of them) whose reference
    docs carry the mentions of ``doc.spans[spans_key]`` as ``doc.ents``.
    ``max_length`` skips docs longer than that many tokens (0: keep all)."""

    def reader(nlp: Language) -> Iterator[Example]:
        if path is None:
            raise ValueError("clinie.MentionEntsCorpus.v1: no path given (set [paths] train / dev)")
        register_extensions()
        n = 0
        for doc in _read_docs(nlp, path):
            if max_length and len(doc) > max_length:
                continue
            if limit and n >= limit:
                break
            mentions_to_ents(doc, spans_key)
            n += 1
            yield Example(nlp.make_doc(doc.text), doc)

    return reader
