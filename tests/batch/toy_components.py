"""Tiny deterministic components for the batch tests, loadable with
``--code`` in subprocesses and Ray workers. ``clinie_test_annotate`` fills
every field a batch record carries (mention ids, MedDRA codes, context
attributes, relations) so the tests compare real content; ``sleep`` slows a
run down enough to be killed in the middle."""

import time

from spacy.language import Language
from spacy.tokens import Doc, Span

from spacy_clinie.extensions import register_extensions

NAUSEA = {
    "meddra_pt": "Nausea",
    "meddra_pt_id": "10028813",
    "meddra_llt": "Nausea",
    "meddra_llt_id": "10028813",
}


@Language.factory("clinie_test_annotate", default_config={"sleep": 0.0})
def make_annotate(nlp: Language, name: str, sleep: float):
    register_extensions()

    def annotate(doc: Doc) -> Doc:
        if sleep:
            time.sleep(sleep)
        spans = [
            Span(doc, s.start, s.end, label=s.label_, span_id=f"m{i + 1}")
            for i, s in enumerate(doc.spans.get("mentions", []))
        ]
        doc.spans["mentions"] = spans
        relations = []
        for span in doc.spans["mentions"]:
            if span.text.lower() == "nausea":
                span._.meddra = [dict(NAUSEA)]
            if span.start > 0 and doc[span.start - 1].lower_ == "no":
                span._.attributes = {"is_negated": True}
        if len(spans) > 1:
            relations.append({"id": "r1", "label": "Cooccurs", "head": "m1", "tail": "m2", "score": 0.5})
        doc._.relations = relations
        return doc

    return annotate


class SimulatedCrash(RuntimeError):
    pass


@Language.factory("clinie_test_crash", default_config={"prefix": "Patient 77 "})
def make_crash(nlp: Language, name: str, prefix: str):
    """Dies on the first doc starting with ``prefix``: a run that fails
    part-way, after writing past its last commit."""

    def crash(doc: Doc) -> Doc:
        if doc.text.startswith(prefix):
            raise SimulatedCrash(f"simulated crash at {doc.text[:20]!r}")
        return doc

    return crash
