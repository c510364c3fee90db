"""Doc and Span extensions that carry clinical annotation through DocBin.

Span extension values live in ``doc.user_data`` keyed by character offsets
only, so two mentions with the same offsets but different labels would share
them. We therefore keep per-mention data in one Doc-level dict keyed by the
mention id (``span.id_``, which span groups serialise) and expose it on spans
through getters and setters. Everything is plain JSON-like data so that
``DocBin(store_user_data=True)`` round-trips it.

Doc level
- ``doc._.doc_id``      stable id of the document (e.g. ``ADCETRIS/S1``)
- ``doc._.label_id``    drug label / source document the section belongs to
- ``doc._.section``     section name, e.g. ``adverse reactions``
- ``doc._.reactions``   unique reaction strings with MedDRA normalisations
                        (the unit TAC 2017 annotates): list of dicts
                        ``{"id", "str", "normalizations": [...], ...}``
- ``doc._.relations``   list of ``{"id", "label", "head", "tail"}``, head and
                        tail being mention ids
- ``doc._.mention_attrs`` ``{mention_id: {...}}`` behind the span getters
- ``doc._.source``      format-specific extras kept for lossless writing
- ``doc._.tag_entropy`` per-token entropy (nats) of the tagger's concept tag
                        distribution: the confidence the LLM corrector and
                        ``clinie adapt`` sample on (seed 001)
- ``doc._.llm_corrections`` what the LLM corrector did to this doc (counts of
                        units prompted, parsed, unparseable, spans dropped)

Span level (mentions in ``doc.spans[MENTIONS_KEY]``, ``span.id_`` = mention id)
- ``span._.fragments``  exact character fragments ``[[start, end], ...]``;
                        more than one for a discontiguous mention
- ``span._.meddra``     list of normalisations ``{"meddra_pt", "meddra_pt_id",
                        "meddra_llt", "meddra_llt_id"}``
- ``span._.meddra_candidates`` top-k MedDRA candidates from the linker, best
                        first (same keys as ``meddra`` plus ``score``)
- ``span._.kind``       TAC re-release kind: human / animal / drug_class
- ``span._.projected``  True when the mention was projected from another
                        occurrence of the same annotated string
- ``span._.attributes`` brat attributes / context flags ``{name: value}``
"""
from typing import Any, Callable, Dict, List, Optional

from spacy.tokens import Doc, Span

MENTIONS_KEY = "mentions"

DOC_EXTENSIONS: Dict[str, Any] = {
    "doc_id": None,
    "label_id": None,
    "section": None,
    "reactions": None,
    "relations": None,
    "mention_attrs": None,
    "source": None,
    "tag_entropy": None,
    "llm_corrections": None,
}

# Facts about the input document rather than annotations: they travel with
# a text into a pipeline (the tagger's ``context`` reads the section).
DOC_META = ("doc_id", "label_id", "section")

SPAN_FIELDS: Dict[str, Callable[[], Any]] = {
    "fragments": lambda: None,
    "meddra": lambda: None,
    "meddra_candidates": lambda: None,
    "kind": lambda: None,
    "projected": lambda: False,
    "attributes": lambda: None,
    "notes": lambda: None,
}


_LISTS_FLAG = "clinie_lists"


def _lists(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    return value


def _ensure_lists(doc: Doc) -> None:
    """DocBin's msgpack gives tuples back for lists. Convert our values once
    per Doc object (the flag lives in ``user_hooks``, which is not serialised),
    so that what a reader wrote is what a user reads after a round trip."""
    if doc.user_hooks.get(_LISTS_FLAG):
        return
    for name in DOC_EXTENSIONS:
        key = ("._.", name, None, None)
        if key in doc.user_data:
            doc.user_data[key] = _lists(doc.user_data[key])
    doc.user_hooks[_LISTS_FLAG] = True


def _make_doc_accessors(name: str):
    key = ("._.", name, None, None)
    default = DOC_EXTENSIONS[name]

    def getter(doc: Doc) -> Any:
        _ensure_lists(doc)
        return doc.user_data.get(key, default)

    def setter(doc: Doc, value: Any) -> None:
        doc.user_data[key] = value

    return getter, setter


def _mention_store(doc: Doc) -> Dict[str, Dict[str, Any]]:
    store = doc._.mention_attrs
    if store is None:
        store = {}
        doc._.mention_attrs = store
    return store


def _make_span_accessors(field: str):
    default = SPAN_FIELDS[field]

    def getter(span: Span) -> Any:
        store = span.doc._.mention_attrs or {}
        return store.get(span.id_, {}).get(field, default())

    def setter(span: Span, value: Any) -> None:
        if not span.id_:
            raise ValueError(
                f"Span {span.text!r} has no id: give mentions an id "
                f"(span.id_) before setting span._.{field}"
            )
        _mention_store(span.doc).setdefault(span.id_, {})[field] = value

    return getter, setter


def register_extensions() -> None:
    """Register the extensions once; safe to call repeatedly."""
    for name in DOC_EXTENSIONS:
        if not Doc.has_extension(name):
            getter, setter = _make_doc_accessors(name)
            Doc.set_extension(name, getter=getter, setter=setter)
    for field in SPAN_FIELDS:
        if not Span.has_extension(field):
            getter, setter = _make_span_accessors(field)
            Span.set_extension(field, getter=getter, setter=setter)


# Every module that reads or writes the extensions imports this one: register
# them here, so that they exist wherever they are used.
register_extensions()


def get_mentions(doc: Doc, key: str = MENTIONS_KEY) -> List[Span]:
    return list(doc.spans[key]) if key in doc.spans else []


def mention_by_id(doc: Doc, key: str = MENTIONS_KEY) -> Dict[str, Span]:
    return {span.id_: span for span in get_mentions(doc, key)}


def reaction_strings(doc: Doc) -> List[str]:
    return [r["str"] for r in (doc._.reactions or [])]


def ensure_mention_ids(doc: Doc, spans_key: str) -> None:
    """Give every mention an id (``M<n>``, unused in the doc), keeping the
    group's order and the ids it has. A no-op when all have one."""
    if spans_key not in doc.spans:
        return
    group = doc.spans[spans_key]
    if all(span.id_ for span in group):
        return
    used = {span.id_ for span in group if span.id_}
    n = 0
    spans = []
    for span in group:
        if not span.id_:
            n += 1
            while f"M{n}" in used:
                n += 1
            used.add(f"M{n}")
            span = Span(doc, span.start, span.end, span.label, kb_id=span.kb_id, span_id=f"M{n}")
        spans.append(span)
    doc.spans[spans_key] = spans


def set_mention_attrs(doc: Doc, mention_id: str, **attrs: Optional[Any]) -> None:
    entry = _mention_store(doc).setdefault(mention_id, {})
    for key, value in attrs.items():
        if value is not None:
            entry[key] = value


def copy_doc_meta(src: Doc, dst: Doc) -> Doc:
    """Give ``dst`` the ``DOC_META`` values of ``src``; returns ``dst``."""
    register_extensions()
    for name in DOC_META:
        dst._.set(name, src._.get(name))
    return dst
