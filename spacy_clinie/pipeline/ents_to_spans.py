"""``clinie_ents_to_spans``: copy ``doc.ents`` into ``doc.spans["mentions"]``.

Put it after a stock ``ner`` (or any component that writes ``doc.ents``) so
the ``clinie`` evaluator, scorers and downstream components (MedDRA linker,
ConText, ``clinie pipe``) see its entities as mentions, with ids ``M1``,
``M2``, ... as the soft-prompt tagger writes them. Its default scorer is
``clinie.mention_scorer.v1``, so ``spacy train`` can select a ``ner`` model on
``mentions_f`` (the overlapping gold mentions), the soft-prompt tagger's
criterion. See ``spacy_clinie/readers/ents.py`` for the reverse direction.
"""

from collections.abc import Callable, Iterable
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example

from ..extensions import MENTIONS_KEY, register_extensions


@Language.factory(
    "clinie_ents_to_spans",
    requires=["doc.ents"],
    assigns=["doc.spans"],
    default_config={
        "spans_key": MENTIONS_KEY,
        "labels": None,
        "overwrite": True,
        "scorer": {"@scorers": "clinie.mention_scorer.v1", "spans_key": MENTIONS_KEY},
    },
    default_score_weights={f"{MENTIONS_KEY}_f": 1.0, f"{MENTIONS_KEY}_p": 0.0, f"{MENTIONS_KEY}_r": 0.0},
)
def make_ents_to_spans(
    nlp: Language,
    name: str,
    spans_key: str,
    labels: list[str] | None,
    overwrite: bool,
    scorer: Callable[..., dict[str, Any]] | None,
) -> "EntsToSpans":
    return EntsToSpans(name, spans_key=spans_key, labels=labels, overwrite=overwrite, scorer=scorer)


class EntsToSpans:
    """Stateless: ``doc.spans[spans_key]`` = ``doc.ents`` (optionally only
    ``labels``). With ``overwrite = false`` docs that already have the key
    are left alone."""

    def __init__(
        self,
        name: str = "ents_to_spans",
        *,
        spans_key: str = MENTIONS_KEY,
        labels: list[str] | None = None,
        overwrite: bool = True,
        scorer: Callable[..., dict[str, Any]] | None = None,
    ) -> None:
        register_extensions()
        self.name = name
        self.spans_key = spans_key
        self.keep_labels = set(labels) if labels else None
        self.overwrite = overwrite
        self.scorer = scorer

    def __call__(self, doc: Doc) -> Doc:
        if self.spans_key in doc.spans and not self.overwrite:
            return doc
        spans = [
            Span(doc, ent.start, ent.end, label=ent.label, span_id=f"M{n + 1}")
            for n, ent in enumerate(e for e in doc.ents if self.keep_labels is None or e.label_ in self.keep_labels)
        ]
        doc.spans[self.spans_key] = spans
        doc._.mention_attrs = {}
        doc._.relations = doc._.relations or []
        return doc

    def pipe(self, docs: Iterable[Doc], batch_size: int = 128) -> Iterable[Doc]:
        for doc in docs:
            yield self(doc)

    def score(self, examples: Iterable[Example], **kwargs: Any) -> dict[str, Any]:
        return self.scorer(examples, **kwargs) if self.scorer is not None else {}

    # stateless: nothing to save, but spaCy calls these on every component
    def to_disk(self, path: Any, *, exclude: Iterable[str] = ()) -> None:
        pass

    def from_disk(self, path: Any, *, exclude: Iterable[str] = ()) -> "EntsToSpans":
        return self

    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        return b""

    def from_bytes(self, data: bytes, *, exclude: Iterable[str] = ()) -> "EntsToSpans":
        return self
