"""``clinie pipe --format fhir``: FHIR resources, validated as they are made.

Two kinds of source need two resources (``--fhir-kind``):

- ``note``: a patient note gives one R4 ``AdverseEvent`` per reaction.
  ``subject`` (required) references ``Patient/<patient id>`` from the
  patient field; ``suspectEntity`` holds the suspect drugs (ADE-Drug links,
  else the drug field) as contained ``Medication`` resources; ``actuality``
  is ``potential`` where ConText marks the reaction hypothetical (or, when
  negated reactions are included, negated) and ``actual`` otherwise.
- ``label``: a drug label (or a section of one) gives one
  ``ClinicalUseDefinition`` of type ``undesirable-effect`` per reaction,
  whose ``subject`` references ``MedicinalProductDefinition/<label id>``
  and whose ``undesirableEffect.symptomConditionEffect`` is the reaction.

Reactions are coded in MedDRA (``http://terminology.hl7.org/CodeSystem/mdr``,
PT then LLT) when the linker coded them; the text is always there. An
extension (``EXTENSION_URL``) carries the confidence, the mention offsets,
the ConText flags and the pipeline version. Resource ids are hashes of
(document id, reaction), so a re-run or a PUT of the same output updates
rather than duplicates.

Every resource is checked with the FHIR R4B models of ``fhir.resources``
(R4B's AdverseEvent is R4's; ClinicalUseDefinition is new in R4B). A record
that cannot make valid resources is rejected whole, with the reason, and
goes to the quarantine file.

The output folder holds ``AdverseEvent.ndjson`` or
``ClinicalUseDefinition.ndjson`` (bulk-data NDJSON, one resource a line) or,
with ``--fhir-bundle``, ``Bundle.ndjson``: one ``transaction`` Bundle per
document, each entry a ``PUT`` that a FHIR server accepts as it is.
"""

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from spacy.tokens import Doc

from .output import JsonlFile, Sink
from .reactions import DRUG_SYSTEMS, Drug, OutputError, Reaction, document_reactions

FHIR_KINDS = ("note", "label")
FHIR_VERSION = "4.3.0"  # R4B
MEDDRA_SYSTEM = "http://terminology.hl7.org/CodeSystem/mdr"
EXTENSION_URL = "urn:spacy-clinie:fhir:extraction"
LINK_EXTENSION_URL = "urn:spacy-clinie:fhir:drug-link"
IDENTIFIER_SYSTEM = "urn:spacy-clinie:reaction"
RESOURCE_TYPES = {"note": "AdverseEvent", "label": "ClinicalUseDefinition"}


@dataclass
class FhirOptions:
    """How records become resources; ``clinie pipe`` options map 1:1."""

    kind: str = "note"
    bundle: bool = False
    include_negated: bool = False
    patient_field: str = "patient_id"
    label_field: str = "label_id"
    drug_field: str = "drug"

    def __post_init__(self) -> None:
        if self.kind not in FHIR_KINDS:
            raise ValueError(f"--fhir-kind must be one of {', '.join(FHIR_KINDS)}, got {self.kind!r}")


def _models() -> Any:
    try:
        import fhir.resources.R4B as r4b
    except ImportError as err:
        raise ValueError("--format fhir validates with fhir.resources: pip install 'spacy-clinie[fhir]'") from err
    return r4b


def _validation_message(err: Exception) -> str:
    errors = getattr(err, "errors", None)
    if callable(errors):
        parts = []
        for e in errors()[:3]:
            loc = ".".join(str(x) for x in e.get("loc", ()))
            parts.append(f"{loc}: {e.get('msg')} (got {e.get('input')!r})"[:200])
        return "; ".join(parts)
    return str(err).splitlines()[0]


def validate_resource(resource: Dict[str, Any]) -> Dict[str, Any]:
    """Check ``resource`` against the R4B model of its type; raises
    :class:`OutputError` naming what is wrong."""
    cls = _models().get_fhir_model_class(resource["resourceType"])
    try:
        cls.model_validate(resource)
    except Exception as err:  # pydantic's ValidationError, or a model's own ValueError
        raise OutputError(f"invalid {resource['resourceType']}: {_validation_message(err)}") from err
    return resource


@lru_cache(maxsize=1)
def _id_validator() -> Any:
    from pydantic import TypeAdapter

    _models()
    from fhir.resources.R4B.fhirtypes import IdType

    return TypeAdapter(IdType).validate_python


def fhir_id(value: Any, what: str) -> str:
    """``value`` as a FHIR resource id, checked with the R4B ``id`` type
    (letters, digits, '-' and '.'); the specification's 64-character limit
    is checked here, as the model does not."""
    text = str(value)
    try:
        _id_validator()(text)
    except ValueError:  # pydantic's ValidationError is one
        raise OutputError(f"{what} {text!r} is not a FHIR id (letters, digits, '-' and '.' only)") from None
    if len(text) > 64:
        raise OutputError(f"{what} {text!r} is not a FHIR id (over 64 characters)")
    return text


def resource_id(*parts: str) -> str:
    """A stable id for (document, reaction): the same output, re-run or
    re-sent, updates its resources instead of adding copies."""
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()


def reaction_concept(reaction: Reaction) -> Dict[str, Any]:
    """The reaction as a CodeableConcept: MedDRA PT and LLT codings when
    coded (the LLT only when it differs), and always the text."""
    coding = []
    m = reaction.meddra
    if m.get("meddra_pt_id"):
        coding.append({"system": MEDDRA_SYSTEM, "code": m["meddra_pt_id"], **_display(m.get("meddra_pt"))})
    if m.get("meddra_llt_id") and m.get("meddra_llt_id") != m.get("meddra_pt_id"):
        coding.append({"system": MEDDRA_SYSTEM, "code": m["meddra_llt_id"], **_display(m.get("meddra_llt"))})
    concept: Dict[str, Any] = {"text": reaction.reaction}
    if coding:
        concept["coding"] = coding
    return concept


def _display(name: Optional[str]) -> Dict[str, str]:
    return {"display": name} if name else {}


def _offsets(mention: Dict[str, Any]) -> str:
    fragments = mention.get("fragments") or [[mention["start"], mention["end"]]]
    return ",".join(f"{s}-{e}" for s, e in fragments)


def extraction_extension(record: Dict[str, Any], reaction: Reaction, section: Optional[str]) -> Dict[str, Any]:
    """Where the reaction came from and how sure the pipeline is."""
    ext: List[Dict[str, Any]] = []
    if reaction.confidence is not None:
        ext.append({"url": "confidence", "valueDecimal": _decimal(reaction.confidence)})
    ext += [{"url": "offset", "valueString": _offsets(m)} for m in reaction.mentions]
    ext += [
        {"url": "negated", "valueBoolean": reaction.negated},
        {"url": "hypothetical", "valueBoolean": reaction.hypothetical},
        {"url": "document", "valueString": str(record["id"])},
    ]
    if section:
        ext.append({"url": "section", "valueString": str(section)})
    if reaction.meddra.get("soc_id"):  # the PT's primary SOC, for summaries
        soc = {"system": MEDDRA_SYSTEM, "code": reaction.meddra["soc_id"], **_display(reaction.meddra.get("soc"))}
        ext.append({"url": "soc", "valueCoding": soc})
    if record.get("model"):
        ext.append({"url": "pipeline", "valueString": str(record["model"])})
    if record.get("clinie_version"):
        ext.append({"url": "clinieVersion", "valueString": str(record["clinie_version"])})
    return {"url": EXTENSION_URL, "extension": ext}


def _decimal(value: float) -> Any:
    """Rounded for the file; NaN and infinities stay as they are, so the
    validator rejects them instead of the JSON holding a non-number."""
    return round(value, 6) if value == value and abs(value) != float("inf") else value


def _medication(drug: Drug, n: int) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """A contained Medication for ``drug`` and the suspectEntity naming it."""
    code: Dict[str, Any] = {"text": drug.name}
    coding = [{"system": DRUG_SYSTEMS[system], "code": c} for system, c in drug.codes if system in DRUG_SYSTEMS]
    if coding:
        code["coding"] = coding
    med = {"resourceType": "Medication", "id": f"drug{n}", "code": code}
    entity: Dict[str, Any] = {"instance": {"reference": f"#drug{n}", "display": drug.name}}
    if drug.source == "link":
        link: List[Dict[str, Any]] = []
        if drug.score is not None:
            link.append({"url": "score", "valueDecimal": _decimal(drug.score)})
        if drug.method:
            link.append({"url": "method", "valueString": str(drug.method)})
        entity["extension"] = [{"url": LINK_EXTENSION_URL, "extension": link or [{"url": "method", "valueString": "link"}]}]
    return med, entity


def adverse_event(record: Dict[str, Any], reaction: Reaction, patient: str) -> Dict[str, Any]:
    meta = record.get("meta") or {}
    section = meta.get("section") or reaction.section_category
    doc_id = str(record["id"])
    res: Dict[str, Any] = {
        "resourceType": "AdverseEvent",
        "id": resource_id(doc_id, reaction.reaction),
        "extension": [extraction_extension(record, reaction, section)],
        "identifier": {"system": IDENTIFIER_SYSTEM, "value": f"{doc_id}#{reaction.reaction}"},
        "actuality": "potential" if reaction.hypothetical or reaction.negated else "actual",
        "event": reaction_concept(reaction),
        "subject": {"reference": f"Patient/{patient}"},
        "referenceDocument": [{"identifier": {"value": doc_id}, "display": doc_id}],
    }
    if reaction.drugs:
        pairs = [_medication(d, n + 1) for n, d in enumerate(reaction.drugs)]
        res["contained"] = [med for med, _ in pairs]
        res["suspectEntity"] = [entity for _, entity in pairs]
    return res


def clinical_use_definition(record: Dict[str, Any], reaction: Reaction, label: str) -> Dict[str, Any]:
    meta = record.get("meta") or {}
    section = meta.get("section") or reaction.section_category
    doc_id = str(record["id"])
    return {
        "resourceType": "ClinicalUseDefinition",
        "id": resource_id(doc_id, reaction.reaction),
        "extension": [extraction_extension(record, reaction, section)],
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": f"{doc_id}#{reaction.reaction}"}],
        "type": "undesirable-effect",
        "subject": [{"reference": f"MedicinalProductDefinition/{label}", "display": label}],
        "undesirableEffect": {"symptomConditionEffect": {"concept": reaction_concept(reaction)}},
    }


def record_resources(record: Dict[str, Any], options: FhirOptions) -> List[Dict[str, Any]]:
    """The validated resources of one batch record (none when it has no
    reaction to report). Raises :class:`OutputError` with the reason when
    the record cannot make them."""
    reactions = document_reactions(record, drug_field=options.drug_field)
    if not options.include_negated:
        reactions = [r for r in reactions if not r.negated]
    if not reactions:
        return []
    meta = record.get("meta") or {}
    resources: List[Dict[str, Any]] = []
    if options.kind == "note":
        if meta.get("patient_id") in (None, ""):
            raise OutputError(
                f"no patient id (field {options.patient_field!r}); an AdverseEvent needs a subject"
            )
        patient = fhir_id(meta["patient_id"], f"patient id (field {options.patient_field!r})")
        resources = [adverse_event(record, r, patient) for r in reactions]
    else:
        raw = meta.get("label_id")
        label = fhir_id(raw if raw not in (None, "") else record["id"], "label id")
        resources = [clinical_use_definition(record, r, label) for r in reactions]
    return [validate_resource(r) for r in resources]


def transaction_bundle(resources: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One transaction: PUT each resource at its id (create or update)."""
    return validate_resource(
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                for r in resources
            ],
        }
    )


def ndjson_name(options: FhirOptions) -> str:
    return "Bundle.ndjson" if options.bundle else f"{RESOURCE_TYPES[options.kind]}.ndjson"


class FhirSink(Sink):
    """``--format fhir``: NDJSON of resources (or of transaction Bundles) in
    a folder, committed by size like the JSONL output."""

    may_reject = True

    def __init__(self, folder: Path, options: FhirOptions, positions: Optional[Dict[str, int]] = None) -> None:
        _models()  # fail at the start, not at the first reaction, when it is missing
        self.options = options
        folder.mkdir(parents=True, exist_ok=True)
        self.name = ndjson_name(options)
        self.file = JsonlFile(folder / self.name, (positions or {}).get(self.name, 0))

    def write(self, doc_id: str, doc: Optional[Doc], record: Dict[str, Any]) -> Optional[str]:
        try:
            resources = record_resources(record, self.options)
            if resources and self.options.bundle:
                resources = [transaction_bundle(resources)]
        except OutputError as err:
            return f"no FHIR {RESOURCE_TYPES[self.options.kind]}: {err}"
        for resource in resources:
            self.file.write(resource)
        return None

    def sync(self) -> Dict[str, int]:
        return {self.name: self.file.sync()}

    def close(self) -> None:
        self.file.close()


def read_resources(folder: Path) -> Iterator[Dict[str, Any]]:
    """Every resource of a FHIR output folder, Bundles unpacked."""
    for path in sorted(Path(folder).glob("*.ndjson")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                res = json.loads(line)
                if res.get("resourceType") == "Bundle":
                    yield from (e["resource"] for e in res.get("entry", []))
                else:
                    yield res


def resource_reaction(resource: Dict[str, Any]) -> Dict[str, Any]:
    """What a resource says about its reaction, in the table's terms
    (``document_id``, ``reaction``, ``effect_meddra_id``, ``meddra_name``,
    ``llt_meddra_id``, ``soc_meddra_id``, ``soc_meddra_name``, ``pred1``,
    ``negated``, ``hypothetical``, ``section``) plus ``drug_names``,
    ``offsets`` and ``subject``."""
    if resource["resourceType"] == "AdverseEvent":
        concept = resource["event"]
    else:
        concept = resource["undesirableEffect"]["symptomConditionEffect"]["concept"]
    coding = [c for c in concept.get("coding", []) if c.get("system") == MEDDRA_SYSTEM]
    codes = [c["code"] for c in coding]
    ext = next(e for e in resource.get("extension", []) if e["url"] == EXTENSION_URL)["extension"]
    values: Dict[str, Any] = {}
    offsets = []
    for e in ext:
        value = next(v for k, v in e.items() if k.startswith("value"))
        if e["url"] == "offset":
            offsets.append(value)
        else:
            values[e["url"]] = value
    contained = {c["id"]: c for c in resource.get("contained", [])}
    drugs = [contained[s["instance"]["reference"][1:]]["code"]["text"] for s in resource.get("suspectEntity", [])]
    soc = values.get("soc") or {}
    return {
        "document_id": values.get("document"),
        "reaction": concept["text"],
        "effect_meddra_id": int(codes[0]) if codes else None,
        "meddra_name": coding[0].get("display") if coding else None,
        "soc_meddra_id": int(soc["code"]) if soc.get("code") else None,
        "soc_meddra_name": soc.get("display"),
        "llt_meddra_id": int(codes[1]) if len(codes) > 1 else (int(codes[0]) if codes else None),
        "pred1": values.get("confidence"),
        "negated": values.get("negated"),
        "hypothetical": values.get("hypothetical"),
        "section": values.get("section"),
        "drug_names": drugs,
        "offsets": offsets,
        "subject": resource["subject"]["reference"] if isinstance(resource["subject"], dict)
        else resource["subject"][0]["reference"],
    }
