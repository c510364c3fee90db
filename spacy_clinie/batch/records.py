"""One JSON-ready record per processed document.

The record is the batch output's contract with downstream apps, so it has a
fixed set of keys whether or not a component filled them: a consumer can load
the JSONL straight into a dataframe. Mentions come from
``doc.spans[spans_key]`` with the span extensions of ``extensions.py``
(MedDRA codes, TAC kind, context attributes such as ``is_negated``) and
relations from ``doc._.relations``; ``meta`` holds facts about the input
record that the outputs need (patient id, drug, label id, section: see
``reactions.META_ROLES``), read from the fields the run names.
"""

from typing import Any, Dict, List, Optional

from spacy.language import Language
from spacy.tokens import Doc

from ..about import __version__
from ..extensions import MENTIONS_KEY, get_mentions, register_extensions

SPAN_KEYS = ("id", "start", "end", "label", "text", "fragments", "meddra", "kind", "attributes")
# "method": what made the relation (clinie_drug_ade_linker's ADE-Drug links:
# "relation_linker", "rule_all", ...); None for relations that do not say
RELATION_KEYS = ("id", "label", "head", "tail", "score", "method")


def model_version(nlp: Language) -> str:
    """``en_clinie_ade-0.1.0`` style name of a loaded pipeline, so every
    output record says which model produced it."""
    meta = nlp.meta
    return f"{meta.get('lang', 'xx')}_{meta.get('name', 'pipeline')}-{meta.get('version', '0.0.0')}"


def _span_record(span: Any) -> Dict[str, Any]:
    fragments = span._.fragments
    record = {
        "id": span.id_ or None,
        "start": span.start_char,
        "end": span.end_char,
        "label": span.label_,
        "text": span.text,
        "fragments": [list(f) for f in fragments] if fragments else None,
        "meddra": span._.meddra,
        "kind": span._.kind,
        "attributes": span._.attributes or {},
    }
    if span.kb_id_:  # e.g. a Drug mention's id (issue 25): only where set
        record["kb_id"] = span.kb_id_
    return record


def _relation_record(rel: Dict[str, Any]) -> Dict[str, Any]:
    return {key: rel.get(key) for key in RELATION_KEYS}


def doc_to_record(
    doc: Doc,
    doc_id: str,
    *,
    model: str,
    spans_key: str = MENTIONS_KEY,
    include_text: bool = False,
    meta: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """``{"id", "model", "clinie_version", "n_chars", "meta", "spans",
    "relations"}`` (plus ``"text"`` when asked: dumps are large and notes are
    sensitive, so the text is left out by default; offsets point into the
    input)."""
    register_extensions()
    spans: List[Dict[str, Any]] = [
        _span_record(s)
        for s in sorted(get_mentions(doc, spans_key), key=lambda s: (s.start_char, s.end_char, s.label_))
    ]
    record: Dict[str, Any] = {
        "id": doc_id,
        "model": model,
        "clinie_version": __version__,
        "n_chars": len(doc.text),
        "meta": dict(meta or {}),
        "spans": spans,
        "relations": [_relation_record(r) for r in (doc._.relations or [])],
    }
    if include_text:
        record["text"] = doc.text
    return record


def quarantine_record(index: int, doc_id: Optional[str], where: str, reason: str) -> Dict[str, Any]:
    """What the quarantine file says about a bad record: where it is and why,
    not its text (it may be huge, binary or sensitive)."""
    return {"index": index, "id": doc_id, "where": where, "reason": reason}
