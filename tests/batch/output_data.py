"""Inputs and small pipelines for the table / FHIR / report tests.

- Synthetic notes with patient ids, run through a light pipeline
  (span_ruler + ``clinie_test_annotate`` + ``clinie_test_drug_links``):
  reactions with MedDRA codes and SOC, negation, hypothetical mentions,
  confidences, Drug mentions and ADE-Drug links.
- Real drug-label sections of TAC 2017 (the shared corpus), run through a
  pipeline that copies their gold mentions and MedDRA codes
  (``clinie_test_gold_copy``): real text and codes, no training.

Each input also holds one deliberately bad record per failure mode of the
outputs (``NOTE_FAILURES`` / ``LABEL_FAILURES``: id -> what the quarantine
reason must say).
"""

import json
from pathlib import Path
from typing import Dict, List

import spacy

from spacy_clinie.readers.tac_onsides import read_onsides
from spacy_clinie.scoring import normalize_string

from . import toy_components  # noqa: F401  (registers the toy factories)
from .conftest import TERMS

ROOT = Path(__file__).resolve().parents[2]
TAC_TEST = ROOT.parent / "shared" / "corpus" / "tac2017_adr" / "test.json"
DRUGS = ("amoxicillin", "lisinopril", "warfarin")

NOTE_FAILURES = {
    "bad-no-patient": "no patient id (field 'patient_id')",
    "bad-patient-id": "is not a FHIR id",
    "bad-drug-field": "drug field 'drug' holds dict",
    "bad-confidence": "invalid AdverseEvent: extension",
    "bad-meddra-code": "MedDRA code meddra_pt_id='N/A' is not a number",
}
# the failures a table row has too (the others are FHIR's)
TABLE_FAILURES = ("bad-drug-field", "bad-meddra-code")
LABEL_FAILURES = {
    "BAD LABEL/adverse reactions": "label id 'BAD LABEL' is not a FHIR id",
    "BADCODE/adverse reactions": "MedDRA code meddra_pt_id='n/a' is not a number",
}


def build_notes_pipeline(path: Path) -> Path:
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("span_ruler", config={"spans_key": "mentions"})
    ruler.add_patterns([{"label": "AdverseReaction", "pattern": [{"LOWER": t}]} for t in TERMS])
    nlp.add_pipe("clinie_test_annotate")
    nlp.add_pipe("clinie_test_drug_links")
    nlp.meta["name"] = "notes"
    nlp.meta["version"] = "0.3.0"
    nlp.to_disk(path)
    return path


def note_text(i: int) -> str:
    drug = DRUGS[i % 3]
    neg = "no " if i % 4 == 0 else ""
    maybe = "possible " if i % 5 == 1 else ""
    return f"Started {drug} on day {i}. Developed {maybe}{TERMS[i % 3]} and {neg}nausea; rash again later."


def note_records(n: int = 30) -> List[Dict]:
    """Good notes (some with a drug field and no drug mention), then one bad
    record per failure mode."""
    rows = []
    for i in range(n):
        row = {"id": f"note-{i}", "patient_id": f"pt-{i % 7}", "text": note_text(i)}
        if i % 6 == 2:  # no drug in the text: the drug field is the suspect
            row["text"] = f"Complained of {TERMS[i % 3]} at visit {i}."
            row["drug"] = "ibuprofen"
        rows.append(row)
    rows += [
        {"id": "bad-no-patient", "text": "Started warfarin; nausea."},
        {"id": "bad-patient-id", "patient_id": "MRN 12/34", "text": "Started warfarin; nausea."},
        {"id": "bad-drug-field", "patient_id": "pt-1", "drug": {"name": "x"}, "text": "Rash."},
        {"id": "bad-confidence", "patient_id": "pt-2", "text": "glitch: warfarin then nausea"},
        {"id": "bad-meddra-code", "patient_id": "pt-3", "text": "miscoded: warfarin then nausea"},
        {"id": "note-empty", "patient_id": "pt-4", "text": "Nothing of note."},
    ]
    return rows


def nan_free(rows: List[Dict]) -> List[Dict]:
    """NaN != NaN: the "glitch" note's confidence, made comparable."""
    return [{k: "NaN" if v != v else v for k, v in r.items()} for r in rows]


def write_jsonl(path: Path, rows: List[Dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def tac_label_input(tmp: Path, n_sections: int = 8):
    """The first ``n_sections`` sections of the TAC 2017 test split as
    ``clinie pipe`` input (id, label_id, section, text), their gold as the
    gold-copy component's file, and a pipeline that copies it; plus a
    section under a label id FHIR cannot take and one with a bad code.
    Returns the input, the pipeline, the docs and the expected (document,
    reaction) pairs: the gold strings as the copy's tokens cover them (the
    reader splits tokens at mention edges, a blank pipeline does not)."""
    nlp = spacy.blank("en")
    docs = list(read_onsides(nlp, TAC_TEST))[:n_sections]
    gold: Dict[str, list] = {}
    rows = []
    want = set()
    for doc in docs:
        gold[doc.text] = [
            [s.start_char, s.end_char, s.label_, (s._.meddra or [None])[0]] for s in doc.spans["mentions"]
        ]
        fresh = nlp.make_doc(doc.text)
        for s in doc.spans["mentions"]:
            want.add((doc._.doc_id, normalize_string(fresh.char_span(s.start_char, s.end_char, alignment_mode="expand").text)))
        rows.append({"id": doc._.doc_id, "label_id": doc._.label_id, "section": doc._.section, "text": doc.text})
    first = docs[0]
    rows.append({"id": "BAD LABEL/adverse reactions", "label_id": "BAD LABEL", "section": "adverse reactions",
                 "text": first.text})
    bad_text = "Rash and pruritus were reported in 3% of patients."
    gold[bad_text] = [[0, 4, "AdverseReaction", {"meddra_pt": "Rash", "meddra_pt_id": "n/a",
                                                  "meddra_llt": "Rash", "meddra_llt_id": "10037844"}]]
    rows.append({"id": "BADCODE/adverse reactions", "label_id": "BADCODE", "section": "adverse reactions",
                 "text": bad_text})
    gold_path = tmp / "gold.json"
    gold_path.write_text(json.dumps(gold), encoding="utf-8")
    model = spacy.blank("en")
    model.add_pipe("clinie_test_gold_copy", config={"gold": str(gold_path)})
    model.meta["name"] = "gold_copy"
    model.to_disk(tmp / "gold_model")
    return write_jsonl(tmp / "labels.jsonl", rows), tmp / "gold_model", docs, want
