"""Feedback as training data: ``.spacy`` docs and JSON.

An instance becomes a training doc once every task has a current decision:
the concepts labels give the mentions (BIO, as the tagger decodes them) and
the aux labels what the tagger's aux task learns from: ``span._.kind`` for
``aux_task = "kind"``; for ``"relations"`` a mention tagged ``*_rel`` gets a
self-relation labelled ``reviewed_rel`` (the tagger only asks whether a
mention takes part in any relation; the pairs themselves are the relation
linker's job and are not reviewed here). Partly reviewed instances are left
out and counted.
"""
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import srsly
from spacy.tokens import Doc, DocBin, Span
from spacy.vocab import Vocab

from ..extensions import MENTIONS_KEY, register_extensions, set_mention_attrs
from ..tags import bio_to_spans
from .store import FeedbackStore

REVIEWED_REL = "reviewed_rel"


def _instances(store: FeedbackStore) -> Tuple[List[Dict[str, Dict[str, Any]]], int]:
    """Complete instances as ``{task: row}`` in review order, and how many
    were left out as incomplete."""
    tasks = list((store.get_meta().get("tag_names") or {}).keys())
    by_instance: Dict[str, Dict[str, Any]] = {}
    for row in store.feedback():
        by_instance.setdefault(row["instance"], {})[row["task"]] = row
    complete = [rows for rows in by_instance.values() if tasks and all(t in rows for t in tasks)]
    complete.sort(key=lambda rows: next(iter(rows.values()))["position"])
    return complete, len(by_instance) - len(complete)


def feedback_doc(vocab: Vocab, rows: Dict[str, Dict[str, Any]], aux_task: str, key: str = MENTIONS_KEY) -> Doc:
    """One instance's decisions as a gold Doc."""
    register_extensions()
    first = rows["concepts"]
    doc = Doc(vocab, words=first["words"], spaces=first["spaces"])
    spans, relations = [], []
    aux = rows.get("aux", {}).get("labels")
    for n, (start, end, label) in enumerate(bio_to_spans(list(first["labels"]))):
        span = Span(doc, start, end, label=label, span_id=f"M{n + 1}")
        spans.append(span)
        values = [t[2:] for t in (aux or [])[start:end] if t != "O"]
        if not values:
            continue
        value = Counter(values).most_common(1)[0][0]
        if aux_task == "kind":
            set_mention_attrs(doc, span.id_, kind=value)
        elif aux_task == "relations" and value.endswith("_rel") and not value.endswith("_no_rel"):
            relations.append({"id": f"R{len(relations) + 1}", "label": REVIEWED_REL, "head": span.id_, "tail": span.id_})
    doc.spans[key] = spans
    doc._.relations = relations
    doc._.doc_id = first["instance"]
    doc._.source = {"review": {t: {"action": r["action"], "reviewer": r["reviewer"], "created": r["created"]} for t, r in rows.items()}}
    return doc


def feedback_docs(store: FeedbackStore, vocab: Optional[Vocab] = None) -> Tuple[List[Doc], int]:
    """Training docs from the current decisions, and the count left out."""
    from ..tokenizer import make_blank

    vocab = vocab or make_blank().vocab
    aux_task = store.get_meta().get("aux_task", "none")
    complete, skipped = _instances(store)
    return [feedback_doc(vocab, rows, aux_task) for rows in complete], skipped


def feedback_json(store: FeedbackStore) -> Dict[str, Any]:
    """Everything a reviewer decided, grouped by instance (current decision
    per task) plus the full history."""
    grouped: Dict[str, Dict[str, Any]] = {}
    for row in store.feedback():
        item = grouped.setdefault(
            row["instance"],
            {"instance": row["instance"], "doc_id": row["doc_id"], "position": row["position"],
             "tokens": row["words"], "spaces": row["spaces"], "tasks": {}},
        )
        item["tasks"][row["task"]] = {k: row[k] for k in ("action", "labels", "predicted", "gold", "reviewer", "created")}
    return {
        "meta": store.get_meta(),
        "instances": sorted(grouped.values(), key=lambda i: i["position"]),
        "history": [{k: v for k, v in r.items() if k not in ("words", "spaces")} for r in store.history()],
    }


def export_feedback(store: FeedbackStore, output: Union[str, Path]) -> Dict[str, Any]:
    """Write ``output`` as ``.spacy`` (complete instances) or ``.json``."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".spacy":
        docs, skipped = feedback_docs(store)
        DocBin(docs=docs, store_user_data=True).to_disk(output)
        return {"path": str(output), "docs": len(docs), "incomplete_skipped": skipped}
    if output.suffix == ".json":
        data = feedback_json(store)
        srsly.write_json(output, data)
        return {"path": str(output), "instances": len(data["instances"])}
    raise ValueError(f"{output}: export to .spacy or .json")
