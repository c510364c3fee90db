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


@Language.factory(
    "clinie_test_drug_links",
    default_config={"drugs": {"amoxicillin": "723", "lisinopril": "29046", "warfarin": "11289"}},
)
def make_drug_links(nlp: Language, name: str, drugs: dict):
    """Drug mentions, ADE-Drug links and confidences in the shape the drug
    and calibration components write them (issue 25's contract): ``Drug``
    spans with ``kb_id_`` and an ``rxnorm`` attribute, links ``{"id",
    "label": "ADE-Drug", "head": reaction id, "tail": drug id, "score",
    "method"}`` from each reaction to the nearest drug before it;
    ``attributes["confidence"]``; a mention after "possible" is
    hypothetical; MedDRA codes get their SOC; a note containing "glitch"
    gets a NaN confidence (no valid FHIR resource can hold it) and one
    containing "miscoded" a MedDRA code that is not a number."""
    register_extensions()

    def annotate(doc: Doc) -> Doc:
        reactions = [s for s in doc.spans.get("mentions", []) if s.label_ == "AdverseReaction"]
        drug_spans = []
        for token in doc:
            if token.lower_ in drugs:
                span = Span(doc, token.i, token.i + 1, label="Drug", span_id=f"d{len(drug_spans) + 1}",
                            kb_id=f"rxnorm:{drugs[token.lower_]}")
                drug_spans.append(span)
        doc.spans["mentions"] = list(doc.spans.get("mentions", [])) + drug_spans
        for span in drug_spans:
            span._.attributes = {"rxnorm": drugs[span.text.lower()]}
        relations = list(doc._.relations or [])
        for i, span in enumerate(reactions):
            if span._.meddra:
                coded = [dict(entry, soc="Gastrointestinal disorders", soc_id="10017947") for entry in span._.meddra]
                if "miscoded" in doc.text:
                    coded[0]["meddra_pt_id"] = "N/A"
                span._.meddra = coded
            attrs = dict(span._.attributes or {})
            attrs["confidence"] = float("nan") if "glitch" in doc.text else round(0.95 - 0.1 * (i % 4), 2)
            if span.start > 0 and doc[span.start - 1].lower_ == "possible":
                attrs["is_hypothetical"] = True
            span._.attributes = attrs
            before = [d for d in drug_spans if d.end <= span.start]
            if before:
                drug = before[-1]
                relations.append({"id": f"l{i + 1}", "label": "ADE-Drug", "head": span.id_, "tail": drug.id_,
                                  "score": round(1.0 / (1 + span.start - drug.end), 3), "method": "toy-nearest"})
        doc._.relations = relations
        return doc

    return annotate


@Language.factory("clinie_test_gold_copy", default_config={"gold": ""})
def make_gold_copy(nlp: Language, name: str, gold: str):
    """Copies gold mentions onto the doc whose text matches: a "pipeline"
    that reproduces a corpus's annotation, for testing outputs on real text
    without training. ``gold`` is a JSON file ``{text: [[start, end,
    label, meddra entry or null], ...]}``."""
    import json

    register_extensions()
    with open(gold, encoding="utf-8") as f:
        by_text = json.load(f)

    def copy(doc: Doc) -> Doc:
        spans, meddra = [], []
        for n, (start, end, label, entry) in enumerate(by_text.get(doc.text, [])):
            span = doc.char_span(start, end, label=label, span_id=f"M{n + 1}", alignment_mode="expand")
            if span is not None:
                spans.append(span)
                meddra.append(entry)
        doc.spans["mentions"] = spans
        for span, entry in zip(spans, meddra):
            if entry:
                span._.meddra = [entry]
        return doc

    return copy
