"""The reactions of one processed document, read from its batch record.

The table and FHIR outputs and ``clinie report`` see a document as a list of
reactions: its unique ADR strings (lowercased, whitespace-normalised: the
scorer's reaction-level unit), each with the mentions that say it, the first
MedDRA coding, the ConText flags, the confidence and the suspect drug. They
are built from the JSONL record, not from the Doc, so every backend (Ray
returns records only) gives the same rows, and a JSONL file read back gives
the same reactions as the table and FHIR files of the same run.

The suspect drug of a reaction comes from its ``ADE-Drug`` links in
``record["relations"]`` (head = reaction mention, tail = ``Drug`` mention),
best score first; without a link, from the record's drug field
(``record["meta"]["drug"]``, a string or a list of strings).
"""

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..scoring import ADR_LABEL, normalize_string

DRUG_LINK_LABEL = "ADE-Drug"
# medspaCy's ConText attribute names, as clinie_context_attributes copies
# them into span._.attributes
NEGATED, HYPOTHETICAL = "is_negated", "is_hypothetical"
# record["meta"] keys: facts about the input record, read from the fields
# that --patient-field, --drug-field, --label-field and --section-field name
META_ROLES = ("patient_id", "drug", "label_id", "section")
# drug id keys a Drug mention may carry in its attributes (clinie_drug_ner
# writes drugbank_id, mesh_id, medline_plus_id) or as "System:code" in
# kb_id, and the FHIR system of those that have one
DRUG_SYSTEMS: Dict[str, str] = {
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "drugbank": "https://go.drugbank.com/drugs",
    "mesh": "http://terminology.hl7.org/CodeSystem/MSH",
}
DRUG_ID_KEYS: Dict[str, str] = {
    "rxnorm": "rxnorm",
    "rxnorm_id": "rxnorm",
    "rxcui": "rxnorm",
    "drugbank": "drugbank",
    "drugbank_id": "drugbank",
    "mesh": "mesh",
    "mesh_id": "mesh",
    "medlineplus": "medlineplus",
    "medline_plus_id": "medlineplus",
}
# OnSIDES' label_section codes for the SPL sections TAC 2017 annotates
ONSIDES_SECTIONS = {
    "adverse reactions": "AE",
    "warnings and precautions": "WP",
    "boxed warning": "BW",
    "boxed warnings": "BW",
}


class OutputError(ValueError):
    """A record that cannot make valid output; the message is the reason
    the quarantine file gives."""


@dataclass
class Drug:
    """A suspect drug: its name, ``(system key, code)`` ids, and where it
    came from (``link``: an ADE-Drug relation, ``field``: the drug field)."""

    name: str
    codes: List[Tuple[str, str]] = field(default_factory=list)
    source: str = "field"
    score: Optional[float] = None
    method: Optional[str] = None

    @property
    def ids(self) -> str:
        """``rxnorm:123|drugbank:DB00001``: every id, for one table cell."""
        return "|".join(f"{system}:{code}" for system, code in self.codes)


@dataclass
class Reaction:
    """One unique reaction string of a document and what the mentions of it
    say. ``negated``: every mention is negated; ``hypothetical``: every
    affirmed mention (every mention, when all are negated) is hypothetical;
    ``confidence``: the highest mention confidence."""

    reaction: str
    mentions: List[Dict[str, Any]]
    meddra: Dict[str, Any]
    confidence: Optional[float]
    negated: bool
    hypothetical: bool
    drugs: List[Drug]
    section_category: Optional[str] = None

    @property
    def drug(self) -> Optional[Drug]:
        return self.drugs[0] if self.drugs else None


def mention_string(span: Dict[str, Any]) -> str:
    """The reaction key of a span record: its text (the fragments' texts
    joined, for a discontiguous mention), normalised as the scorer does."""
    text = span["text"]
    fragments = span.get("fragments")
    if fragments and len(fragments) > 1:
        start = span["start"]
        text = " ".join(text[s - start : e - start] for s, e in fragments)
    return normalize_string(text)


def _meddra_code(entry: Dict[str, Any], key: str) -> Optional[str]:
    value = entry.get(key)
    if value is None or value == "":
        return None
    code = str(value).strip()
    if not code.isdigit():
        raise OutputError(f"MedDRA code {key}={value!r} is not a number")
    return code


def _first_meddra(mentions: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The first entry of the first mention (in text order) that has one,
    with its codes checked: MedDRA codes are numbers."""
    for mention in mentions:
        entries = mention.get("meddra") or []
        if entries:
            entry = dict(entries[0])
            for key in ("meddra_pt_id", "meddra_llt_id", "soc_id"):
                entry[key] = _meddra_code(entry, key)
            return entry
    return {}


def _flag(mention: Dict[str, Any], name: str) -> bool:
    return bool((mention.get("attributes") or {}).get(name))


def _confidence(mentions: Sequence[Dict[str, Any]]) -> Optional[float]:
    values = []
    for mention in mentions:
        value = (mention.get("attributes") or {}).get("confidence")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OutputError(f"confidence {value!r} of mention {mention.get('id')!r} is not a number")
        values.append(float(value))
    if not values:
        return None
    # max() would skip a NaN depending on its position: keep it visible
    return math.nan if any(math.isnan(v) for v in values) else max(values)


def drug_codes(span: Dict[str, Any]) -> List[Tuple[str, str]]:
    """``(system key, code)`` ids of a Drug span record: ``kb_id`` (as
    ``system:code``, or a bare DrugBank id) and id attributes."""
    codes: List[Tuple[str, str]] = []
    kb_id = span.get("kb_id")
    if kb_id:
        system, sep, code = str(kb_id).partition(":")
        if sep and system.lower() in DRUG_ID_KEYS:
            codes.append((DRUG_ID_KEYS[system.lower()], code))
        elif str(kb_id).startswith("DB") and str(kb_id)[2:].isdigit():
            codes.append(("drugbank", str(kb_id)))
    for key, value in (span.get("attributes") or {}).items():
        system = DRUG_ID_KEYS.get(key.lower())
        if system and value not in (None, ""):
            for code in value if isinstance(value, list) else [value]:
                if (system, str(code)) not in codes:
                    codes.append((system, str(code)))
    return codes


def field_drugs(value: Any, field_name: str = "drug") -> List[Drug]:
    """Drugs from the record's drug field: a string or a list of strings."""
    if value is None:
        return []
    names = value if isinstance(value, list) else [value]
    drugs = []
    for name in names:
        if not isinstance(name, str):
            raise OutputError(
                f"drug field {field_name!r} holds {type(name).__name__} {name!r}, not a string or a list of strings"
            )
        if name.strip():
            drugs.append(Drug(name=" ".join(name.split()), source="field"))
    return drugs


def _linked_drugs(
    mention_ids: Sequence[str], relations: Sequence[Dict[str, Any]], spans_by_id: Dict[str, Dict[str, Any]]
) -> List[Drug]:
    """Distinct drugs linked to any of the mentions, best score first."""
    best: Dict[str, Drug] = {}
    ids = set(mention_ids)
    for rel in relations:
        if rel.get("label") != DRUG_LINK_LABEL or rel.get("head") not in ids:
            continue
        tail = spans_by_id.get(rel.get("tail"))
        if tail is None:
            raise OutputError(f"ADE-Drug relation {rel.get('id')!r} points at unknown mention {rel.get('tail')!r}")
        score = rel.get("score")
        drug = Drug(
            name=" ".join(tail["text"].split()),
            codes=drug_codes(tail),
            source="link",
            score=float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
            method=rel.get("method"),
        )
        key = drug.name.lower()
        if key not in best or (drug.score or 0.0) > (best[key].score or 0.0):
            best[key] = drug
    return sorted(best.values(), key=lambda d: -(d.score if d.score is not None else -1.0))


def document_reactions(record: Dict[str, Any], *, drug_field: str = "drug") -> List[Reaction]:
    """The reactions of a batch record, in order of first mention. Raises
    :class:`OutputError` for content no output can carry (a MedDRA code
    that is not a number, a drug field that is not text, a link to a
    missing mention)."""
    spans = record.get("spans") or []
    spans_by_id = {s["id"]: s for s in spans if s.get("id")}
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for span in sorted(spans, key=lambda s: (s["start"], s["end"])):
        if span.get("label") == ADR_LABEL:
            groups.setdefault(mention_string(span), []).append(span)
    meta = record.get("meta") or {}
    from_field = field_drugs(meta.get("drug"), drug_field)
    relations = record.get("relations") or []
    reactions = []
    for key, mentions in groups.items():
        affirmed = [m for m in mentions if not _flag(m, NEGATED)]
        linked = _linked_drugs([m["id"] for m in mentions if m.get("id")], relations, spans_by_id)
        reactions.append(
            Reaction(
                reaction=key,
                mentions=mentions,
                meddra=_first_meddra(mentions),
                confidence=_confidence(mentions),
                negated=not affirmed,
                hypothetical=all(_flag(m, HYPOTHETICAL) for m in (affirmed or mentions)),
                drugs=linked or list(from_field),
                section_category=next(
                    ((m.get("attributes") or {}).get("section_category") for m in mentions
                     if (m.get("attributes") or {}).get("section_category")),
                    None,
                ),
            )
        )
    return reactions


def onsides_section(section: Optional[str]) -> Optional[str]:
    """OnSIDES' ``label_section`` code (AE, WP, BW) of a label section name."""
    if not section:
        return None
    return ONSIDES_SECTIONS.get(normalize_string(section))
