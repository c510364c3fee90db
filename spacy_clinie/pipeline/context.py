"""medspaCy's ConText and sectionizer on the ADE mentions.

medspaCy's own components do the work: ``medspacy_sectionizer`` and
``medspacy_context`` run with ``input_span_type = "group"`` on
``doc.spans["mentions"]`` and set ``span._.is_negated`` etc. Those flags are
offset-keyed ``Span`` extensions beside unserialisable objects
(``ConTextModifier``, ``Section``, the context graph), so
``clinie_context_attributes`` copies the flags and the section category into
``span._.attributes`` (the mention's exported attributes: brat ``A`` lines,
DocBin) and by default drops medspaCy's objects from ``doc.user_data`` so the
docs can be saved.

Beware: medspaCy registers global msgpack decoders that turn *any* dict with
a key ``section``, ``modifier``, ``modifiers`` or ``context_graph`` into its
own objects when a DocBin is read, so exported attribute names avoid those
keys (the section goes to ``section_category``).
"""
from typing import Any, Dict, List, Optional

import medspacy  # noqa: F401  (registers medspacy_context, medspacy_sectionizer and their extensions)
from spacy.language import Language
from spacy.tokens import Doc, Span

from ..extensions import MENTIONS_KEY, ensure_mention_ids, get_mentions, register_extensions

CONTEXT_FLAGS = ["is_negated", "is_uncertain", "is_historical", "is_hypothetical", "is_family"]
# medspaCy values that msgpack cannot store: (name, level) with level "doc",
# "span" (start and end offsets) or "token" (start offset only).
MEDSPACY_OBJECTS = [("context_graph", "doc"), ("sections", "doc"), ("modifiers", "span"), ("section", "token")]


@Language.factory(
    "clinie_context_attributes",
    requires=["doc.spans"],
    assigns=["span._.attributes"],
    default_config={
        "spans_key": MENTIONS_KEY,
        "flags": CONTEXT_FLAGS,
        "section_attr": "section_category",
        "keep_medspacy_objects": False,
    },
)
def make_context_attributes(
    nlp: Language,
    name: str,
    spans_key: str,
    flags: List[str],
    section_attr: Optional[str],
    keep_medspacy_objects: bool,
) -> "ContextAttributes":
    return ContextAttributes(
        name, spans_key=spans_key, flags=flags, section_attr=section_attr, keep_medspacy_objects=keep_medspacy_objects
    )


class ContextAttributes:
    """Copy ConText flags (only the true ones, as brat binary attributes) and
    the sectionizer's category of each mention into ``span._.attributes``.
    Idempotent: flags that are no longer set are removed. Mentions without an
    id get one (``M<n>``), as in the relation linker."""

    def __init__(
        self,
        name: str = "clinie_context_attributes",
        *,
        spans_key: str = MENTIONS_KEY,
        flags: List[str] = CONTEXT_FLAGS,
        section_attr: Optional[str] = "section_category",
        keep_medspacy_objects: bool = False,
    ) -> None:
        register_extensions()
        self.name = name
        self.spans_key = spans_key
        self.flags = list(flags)
        self.section_attr = section_attr
        self.keep_medspacy_objects = keep_medspacy_objects

    def __call__(self, doc: Doc) -> Doc:
        ensure_mention_ids(doc, self.spans_key)  # attributes are stored by mention id
        # without the sectionizer's output (not run, or dropped by an earlier
        # call) the exported section is left as it is
        has_sections = ("._.", "sections", None, None) in doc.user_data
        for span in get_mentions(doc, self.spans_key):
            attrs: Dict[str, Any] = dict(span._.attributes or {})
            for flag in self.flags:
                if Span.has_extension(flag) and getattr(span._, flag):
                    attrs[flag] = True
                else:
                    attrs.pop(flag, None)
            if self.section_attr and has_sections:
                category = _section_category(span)
                if category:
                    attrs[self.section_attr] = category
                else:
                    attrs.pop(self.section_attr, None)
            span._.attributes = attrs or None
        if not self.keep_medspacy_objects:
            drop_medspacy_objects(doc)
        return doc


def _section_category(span: Span) -> Optional[str]:
    if not Span.has_extension("section_category"):
        return None
    try:
        return span._.section_category
    except (AttributeError, TypeError):  # no sectionizer ran on this doc
        return None


def drop_medspacy_objects(doc: Doc) -> None:
    """Remove medspaCy's non-serialisable values from ``doc.user_data``
    (``DocBin(store_user_data=True)`` would fail on them). Our own Doc
    extension ``section`` (doc level) is a different key and stays."""
    for key in list(doc.user_data):
        if not (isinstance(key, tuple) and len(key) == 4 and key[0] == "._."):
            continue
        _, name, start, end = key
        for obj_name, level in MEDSPACY_OBJECTS:
            if name != obj_name:
                continue
            if (
                (level == "doc" and start is None)
                or (level == "span" and start is not None and end is not None)
                or (level == "token" and start is not None and end is None)
            ):
                del doc.user_data[key]


def add_context_pipes(
    nlp: Language,
    *,
    spans_key: str = MENTIONS_KEY,
    sentencizer: Optional[str] = "sentencizer",
    sectionizer: bool = True,
    context_config: Optional[Dict[str, Any]] = None,
    before: Optional[str] = None,
) -> List[str]:
    """Add (sentencizer,) ``medspacy_sectionizer``, ``medspacy_context`` and
    ``clinie_context_attributes`` reading ``doc.spans[spans_key]``. ConText
    scopes modifiers by sentence, so a sentence splitter is needed:
    ``"sentencizer"`` (spaCy), ``"medspacy_pyrush"`` or None when the
    pipeline already sets sentences. Returns the names added."""
    group = {"input_span_type": "group", "span_group_name": spans_key}
    added = []
    where = {"before": before} if before else {}
    if sentencizer and sentencizer not in nlp.pipe_names:
        nlp.add_pipe(sentencizer, **where)
        added.append(sentencizer)
    if sectionizer:
        nlp.add_pipe("medspacy_sectionizer", config=group, **where)
        added.append("medspacy_sectionizer")
    nlp.add_pipe("medspacy_context", config={**group, **(context_config or {})}, **where)
    added.append("medspacy_context")
    nlp.add_pipe("clinie_context_attributes", config={"spans_key": spans_key}, **where)
    added.append("clinie_context_attributes")
    return added
