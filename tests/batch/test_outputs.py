"""``clinie pipe --format table`` and ``--format fhir``: rows and resources
read back equal the JSONL of the same run, every FHIR resource passes the
fhir.resources models, each failure mode lands in the quarantine with its
reason, the suspect drug comes from ADE-Drug links, and a killed run
resumes to the same files."""

import json
from typing import Dict, Set, Tuple

import pyarrow.parquet as pq
import pytest
import spacy
from fhir.resources import get_fhir_model_class as r5_model  # the default models are R5
from fhir.resources.R4B import get_fhir_model_class as r4b_model
from spacy.tokens import Span
from typer.testing import CliRunner

from spacy_clinie.batch import PipeSettings, run_pipe
from spacy_clinie.batch.checkpoint import load_state
from spacy_clinie.batch.fhir import (
    MEDDRA_SYSTEM,
    FhirOptions,
    read_resources,
    record_resources,
    resource_reaction,
)
from spacy_clinie.batch.records import doc_to_record
from spacy_clinie.batch.table import COLUMN_NAMES, reaction_rows, read_table
from spacy_clinie.cli import app
from spacy_clinie.extensions import register_extensions
from spacy_clinie.scoring import normalize_string

from .conftest import read_jsonl
from .output_data import (
    LABEL_FAILURES,
    NOTE_FAILURES,
    TABLE_FAILURES,
    TAC_TEST,
    build_notes_pipeline,
    nan_free,
    note_records,
    tac_label_input,
    write_jsonl,
)
from .toy_components import SimulatedCrash


@pytest.fixture(scope="module")
def notes_model(tmp_path_factory):
    return build_notes_pipeline(tmp_path_factory.mktemp("notes") / "model")


@pytest.fixture(scope="module")
def notes_input(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("notes_in") / "notes.jsonl", note_records())


def settings(**kw):
    base = dict(progress=False, checkpoint_every=4, batch_size=3)
    base.update(kw)
    return PipeSettings(**base)


def jsonl_reactions(path, include_negated=True) -> Set[Tuple[str, str, str, str]]:
    """The oracle, straight from the JSONL: (document, reaction string, PT
    code, LLT code) where the codes are the first MedDRA entry of the first
    coded mention of the string, in text order."""
    out = set()
    for rec in read_jsonl(path):
        by_key: Dict[str, list] = {}
        for span in sorted(rec["spans"], key=lambda s: (s["start"], s["end"])):
            if span["label"] == "AdverseReaction":
                by_key.setdefault(normalize_string(span["text"]), []).append(span)
        for key, spans in by_key.items():
            if not include_negated and all(s["attributes"].get("is_negated") for s in spans):
                continue
            coded = next((s["meddra"][0] for s in spans if s["meddra"]), {})
            out.add((rec["id"], key, coded.get("meddra_pt_id"), coded.get("meddra_llt_id")))
    return out


def _str(code):
    return None if code is None else str(code)


def quarantine_reasons(path) -> Dict[str, str]:
    return {q["id"]: q["reason"] for q in read_jsonl(path)}


def assert_valid(resource) -> None:
    """Independent of the sink: the R4B model of the resource's type
    accepts it (and R5's, for ClinicalUseDefinition, which R5 keeps)."""
    r4b_model(resource["resourceType"]).model_validate(resource)
    if resource["resourceType"] == "ClinicalUseDefinition":
        r5_model("ClinicalUseDefinition").model_validate(resource)


def test_table_and_fhir_round_trip_to_jsonl(tmp_path, notes_model, notes_input):
    """The three formats of one run agree on the reactions and their codes."""
    jsonl = tmp_path / "run.jsonl"
    run_pipe(notes_model, notes_input, jsonl, settings())
    table = run_pipe(notes_model, notes_input, tmp_path / "table", settings(output_format="table"))
    fhir = run_pipe(
        notes_model, notes_input, tmp_path / "fhir", settings(output_format="fhir", fhir_include_negated=True)
    )
    records = read_jsonl(jsonl)
    ok = {r["id"] for r in records} - set(NOTE_FAILURES)
    oracle = jsonl_reactions(jsonl)
    assert len(oracle) > 60

    table_ids = {r["id"] for r in records} - set(TABLE_FAILURES)
    want_table = {t for t in oracle if t[0] in table_ids}
    for fmt in ("csv", "parquet"):
        rows = read_table(tmp_path / "table", fmt=fmt)
        got = {(r["document_id"], r["reaction"], _str(r["effect_meddra_id"]), _str(r["llt_meddra_id"])) for r in rows}
        assert got == want_table, fmt
        assert len(rows) == len(got)  # one row per (document, reaction)
    assert list(pq.read_table(tmp_path / "table" / "reactions.parquet").schema.names) == COLUMN_NAMES
    assert not (tmp_path / "table" / ".reactions.parquet.parts").exists()
    assert nan_free(read_table(tmp_path / "table", "csv")) == nan_free(read_table(tmp_path / "table", "parquet"))

    resources = list(read_resources(tmp_path / "fhir"))
    got = set()
    for res in resources:
        r = resource_reaction(res)
        got.add((r["document_id"], r["reaction"], _str(r["effect_meddra_id"]), _str(r["llt_meddra_id"])))
    assert got == {t for t in oracle if t[0] in ok}
    assert len(resources) == len(got)  # one AdverseEvent per reaction per note
    # every run: read = written + quarantined, bad records in quarantine
    assert table.consistent and fhir.consistent
    assert table.quarantined == len(TABLE_FAILURES) and fhir.quarantined == len(NOTE_FAILURES)


def test_every_fhir_resource_of_a_note_run_is_valid(tmp_path, notes_model, notes_input):
    out = tmp_path / "fhir"
    summary = run_pipe(notes_model, notes_input, out, settings(output_format="fhir"))
    assert summary.consistent and summary.read == len(note_records())
    lines = (out / "AdverseEvent.ndjson").read_text().splitlines()
    assert len(lines) > 40
    for line in lines:
        res = json.loads(line)
        assert_valid(res)
        assert res["resourceType"] == "AdverseEvent"
        assert res["subject"]["reference"].startswith("Patient/pt-")
        assert res["event"]["text"]
        assert res["actuality"] in ("actual", "potential")
    by_reaction = {(r["document_id"], r["reaction"]): r for r in map(resource_reaction, map(json.loads, lines))}
    # negated reactions are left out: note-4 says only "no nausea"
    assert ("note-4", "nausea") not in by_reaction and ("note-4", "nausea") in {
        (r["document_id"], r["reaction"]) for r in read_table_from(tmp_path, notes_model, notes_input)
    }
    # "possible headache" in note-11 is hypothetical -> potential
    ae = next(json.loads(x) for x in lines if json.loads(x)["identifier"]["value"] == "note-11#headache")
    assert ae["actuality"] == "potential"
    # MedDRA coding, SOC and the extraction extension
    nausea = by_reaction[("note-1", "nausea")]
    assert nausea["effect_meddra_id"] == 10028813 and nausea["soc_meddra_name"] == "Gastrointestinal disorders"
    assert nausea["pred1"] is not None and nausea["offsets"]
    # suspect drug from the ADE-Drug link, with its RxNorm code
    assert ae["contained"][0]["code"]["coding"] == [
        {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "11289"}
    ]
    assert ae["suspectEntity"][0]["instance"] == {"reference": "#drug1", "display": "warfarin"}
    # without a drug mention, the drug field
    assert by_reaction[("note-2", "headache")]["drug_names"] == ["ibuprofen"]


def read_table_from(tmp_path, model, src):
    out = tmp_path / "table_for_negated"
    run_pipe(model, src, out, settings(output_format="table", table_formats=("csv",)))
    return read_table(out)


def test_one_bad_record_per_failure_mode_is_quarantined(tmp_path, notes_model, notes_input):
    out = tmp_path / "fhir"
    summary = run_pipe(notes_model, notes_input, out, settings(output_format="fhir", checkpoint_every=2))
    reasons = quarantine_reasons(out / "quarantine.jsonl")
    assert set(reasons) == set(NOTE_FAILURES)
    for doc_id, expected in NOTE_FAILURES.items():
        assert expected in reasons[doc_id], (doc_id, reasons[doc_id])
        assert reasons[doc_id].startswith("no FHIR AdverseEvent: ")
    assert summary.extra["rejected"] == len(NOTE_FAILURES) and summary.consistent
    assert "note-empty" not in reasons  # no reaction: nothing to make, nothing wrong
    assert not (out / ".quarantine.jsonl.pending").exists()

    table = tmp_path / "table"
    run_pipe(notes_model, notes_input, table, settings(output_format="table"))
    reasons = quarantine_reasons(table / "quarantine.jsonl")
    assert set(reasons) == set(TABLE_FAILURES)
    assert all(reasons[k].startswith("no table rows: ") and NOTE_FAILURES[k] in reasons[k] for k in reasons)


def test_bundles_are_valid_transactions(tmp_path, notes_model, notes_input):
    out = tmp_path / "bundles"
    run_pipe(notes_model, notes_input, out, settings(output_format="fhir", fhir_bundle=True))
    bundles = [json.loads(line) for line in (out / "Bundle.ndjson").read_text().splitlines()]
    plain = tmp_path / "plain"
    run_pipe(notes_model, notes_input, plain, settings(output_format="fhir"))
    assert len(bundles) == len({r["document_id"] for r in map(resource_reaction, read_resources(plain))})
    for bundle in bundles:
        assert_valid(bundle)
        assert bundle["type"] == "transaction"
        for entry in bundle["entry"]:
            assert entry["request"] == {"method": "PUT", "url": f"AdverseEvent/{entry['resource']['id']}"}
    assert list(read_resources(out)) == list(read_resources(plain))


def _hand_doc(nlp):
    """A note built by hand with issue 25's structures: Drug mentions with
    kb_id_ and id attributes, ADE-Drug links with score and method."""
    register_extensions()
    doc = nlp.make_doc("Started WELLBUTRIN and lisinopril. Rash and hives; later rash again. Dizziness noted.")
    spans = [
        Span(doc, 1, 2, label="Drug", span_id="D1", kb_id="DrugBank:DB01156"),
        Span(doc, 3, 4, label="Drug", span_id="D2", kb_id="DrugBank:DB00722"),
        Span(doc, 5, 6, label="AdverseReaction", span_id="A1"),
        Span(doc, 7, 8, label="AdverseReaction", span_id="A2"),
        Span(doc, 10, 11, label="AdverseReaction", span_id="A3"),
        Span(doc, 13, 14, label="AdverseReaction", span_id="A4"),
    ]
    doc.spans["mentions"] = spans
    spans[0]._.attributes = {"drugbank_id": "DB01156", "mesh_id": "D016642", "is_brand": True}
    spans[1]._.attributes = {"drugbank_id": "DB00722"}
    spans[2]._.meddra = [{"meddra_pt": "Rash", "meddra_pt_id": "10037844", "meddra_llt": "Rash", "meddra_llt_id": "10037844"}]
    spans[2]._.attributes = {"confidence": 0.7}
    spans[4]._.attributes = {"confidence": 0.9}
    doc._.relations = [
        {"id": "R1", "label": "ADE-Drug", "head": "A1", "tail": "D1", "score": 0.4, "method": "rule_nearest"},
        {"id": "R2", "label": "ADE-Drug", "head": "A4", "tail": "D2", "score": 0.8, "method": "relation_linker"},
        {"id": "R3", "label": "ADE-Drug", "head": "A3", "tail": "D2", "score": 0.6, "method": "relation_linker"},
        {"id": "R4", "label": "Cooccurs", "head": "A1", "tail": "A2", "score": 0.5},
    ]
    return doc


def test_suspect_drug_comes_from_links_then_the_drug_field():
    nlp = spacy.blank("en")
    record = doc_to_record(_hand_doc(nlp), "n1", model="en_x-1", meta={"patient_id": "p9", "drug": "aspirin"})
    rows = {r["reaction"]: r for r in reaction_rows(record)}
    assert list(rows) == ["rash", "hives", "dizziness"]
    rash = rows["rash"]  # two mentions, linked to two drugs: the best score wins
    assert rash["n_mentions"] == 2 and (rash["first_start"], rash["first_end"]) == (35, 39)
    assert rash["drug_name"] == "lisinopril" and rash["drug_link_score"] == 0.6
    assert rash["drug_link_method"] == "relation_linker" and rash["drug_ids"] == "drugbank:DB00722"
    assert rash["effect_meddra_id"] == 10037844 and rash["pred1"] == 0.9 and rash["pred0"] == pytest.approx(0.1)
    assert rows["dizziness"]["drug_name"] == "lisinopril" and rows["dizziness"]["drug_source"] == "link"
    assert rows["hives"]["drug_name"] == "aspirin" and rows["hives"]["drug_source"] == "field"
    assert rows["hives"]["pred1"] is None

    resources = record_resources(record, FhirOptions(kind="note"))
    for res in resources:
        assert_valid(res)
    ae = {r["event"]["text"]: r for r in resources}
    assert [m["code"] for m in ae["rash"]["contained"]] == [
        {"text": "lisinopril", "coding": [{"system": "https://go.drugbank.com/drugs", "code": "DB00722"}]},
        {"text": "WELLBUTRIN", "coding": [
            {"system": "https://go.drugbank.com/drugs", "code": "DB01156"},
            {"system": "http://terminology.hl7.org/CodeSystem/MSH", "code": "D016642"},
        ]},
    ]
    link = ae["rash"]["suspectEntity"][0]["extension"][0]["extension"]
    assert {"url": "method", "valueString": "relation_linker"} in link
    assert ae["rash"]["event"]["coding"] == [{"system": MEDDRA_SYSTEM, "code": "10037844", "display": "Rash"}]
    assert ae["hives"]["suspectEntity"][0]["instance"]["display"] == "aspirin"
    assert "extension" not in ae["hives"]["suspectEntity"][0]  # from the field, not a link


@pytest.mark.skipif(not TAC_TEST.exists(), reason="shared TAC 2017 corpus not present")
def test_real_label_sections_make_valid_clinical_use_definitions(tmp_path):
    src, model, docs, want = tac_label_input(tmp_path)
    fhir = tmp_path / "fhir"
    summary = run_pipe(
        model, src, fhir, settings(output_format="fhir", fhir_kind="label", checkpoint_every=3, max_chars=0)
    )
    assert summary.consistent and summary.read == len(docs) + 2
    resources = [json.loads(x) for x in (fhir / "ClinicalUseDefinition.ndjson").read_text().splitlines()]
    assert len(want) > 200
    assert {(r["document_id"], r["reaction"]) for r in map(resource_reaction, resources)} == want
    assert len(resources) == len(want)  # one per reaction per label section
    for res in resources:
        assert_valid(res)
        assert res["type"] == "undesirable-effect"
        label = res["subject"][0]["reference"].split("/")[1]
        assert res["subject"][0]["reference"] == f"MedicinalProductDefinition/{label}"
        concept = res["undesirableEffect"]["symptomConditionEffect"]["concept"]
        assert concept["coding"][0]["system"] == MEDDRA_SYSTEM and concept["coding"][0]["code"].isdigit()
    reasons = quarantine_reasons(fhir / "quarantine.jsonl")
    assert set(reasons) == set(LABEL_FAILURES)
    for doc_id, expected in LABEL_FAILURES.items():
        assert expected in reasons[doc_id]

    table = tmp_path / "table"
    run_pipe(model, src, table, settings(output_format="table", max_chars=0))
    rows = read_table(table)
    assert {r["label_section"] for r in rows} == {"AE", "WP", "BW"}
    # a label id FHIR cannot take is fine in a table
    bad_label = {("BAD LABEL/adverse reactions", s) for d, s in want if d == docs[0]._.doc_id}
    assert {(r["document_id"], r["reaction"]) for r in rows} == want | bad_label
    assert all(r["effect_meddra_id"] for r in rows)
    assert quarantine_reasons(table / "quarantine.jsonl").keys() == {"BADCODE/adverse reactions"}


@pytest.mark.parametrize("fmt", ["table", "fhir"])
def test_crash_then_resume_writes_each_document_once(tmp_path, notes_model, notes_input, fmt):
    ref = tmp_path / "ref"
    run_pipe(notes_model, notes_input, ref, settings(output_format=fmt))
    out = tmp_path / "out"
    nlp = spacy.load(notes_model)
    # dies on the last record, after the rejected ones (some committed)
    nlp.add_pipe("clinie_test_crash", config={"prefix": "Nothing of note."})
    with pytest.raises(SimulatedCrash):
        run_pipe(notes_model, notes_input, out, settings(output_format=fmt, checkpoint_every=2, fail_fast=True), nlp=nlp)
    state = load_state(out / ".clinie-pipe-state.json")
    assert 30 < state.offset < len(note_records()) and not state.complete and state.outputs
    assert state.rejected > 0 and not (out / "quarantine.jsonl").read_text()  # rejects wait for the end
    with open(out / ("reactions.csv" if fmt == "table" else "AdverseEvent.ndjson"), "ab") as f:
        f.write(b'{"torn')  # a half-written line after the last commit
    if fmt == "table":  # killed between writing a part and committing it, or mid-merge
        parts = out / ".reactions.parquet.parts"
        (parts / f"part-{state.outputs['parquet_parts']:06d}.parquet").write_bytes(b"not committed")
        (out / "reactions.parquet").write_bytes(b"stale merge")
    summary = run_pipe(notes_model, notes_input, out, settings(output_format=fmt, batch_size=5))
    assert summary.resumed_from == state.offset and summary.consistent
    files = ["quarantine.jsonl"] + (["reactions.csv", "reactions.parquet"] if fmt == "table" else ["AdverseEvent.ndjson"])
    for name in files:
        if name.endswith(".parquet"):
            assert nan_free(pq.read_table(out / name).to_pylist()) == nan_free(pq.read_table(ref / name).to_pylist())
        else:
            assert (out / name).read_bytes() == (ref / name).read_bytes(), name


def test_refuses_foreign_table_files(tmp_path, notes_model, notes_input):
    out = tmp_path / "table"
    out.mkdir()
    (out / "reactions.csv").write_text("someone's spreadsheet\n")
    with pytest.raises(ValueError, match="reactions.csv exists and has no run state"):
        run_pipe(notes_model, notes_input, out, settings(output_format="table"))
    run_pipe(notes_model, notes_input, out, settings(output_format="table", overwrite=True))
    assert (out / "reactions.csv").read_text().startswith("document_id,patient_id,")


def test_cli_formats_and_bad_options(tmp_path, notes_model, notes_input):
    out = tmp_path / "cli_fhir"
    result = CliRunner().invoke(
        app,
        ["pipe", str(notes_model), str(notes_input), str(out), "--no-progress", "--format", "fhir",
         "--fhir-bundle", "--include-negated"],
    )
    assert result.exit_code == 0, result.output
    assert f"quarantined {len(NOTE_FAILURES)} ({len(NOTE_FAILURES)} could not make valid output)" in result.output
    assert (out / "Bundle.ndjson").exists()
    bad = CliRunner().invoke(
        app, ["pipe", str(notes_model), str(notes_input), str(tmp_path / "x"), "--format", "fhir",
              "--fhir-kind", "drug", "--no-progress"],
    )
    assert bad.exit_code == 1 and "unknown --fhir-kind 'drug'" in bad.output
    bad = CliRunner().invoke(
        app, ["pipe", str(notes_model), str(notes_input), str(tmp_path / "y"), "--format", "table",
              "--table-format", "xlsx", "--no-progress"],
    )
    assert bad.exit_code == 1 and "--table-format 'xlsx'" in bad.output
