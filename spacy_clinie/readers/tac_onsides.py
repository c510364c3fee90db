"""Reader for the OnSIDES re-release of TAC 2017 ADR (``train.json``/``test.json``).

One JSON object per (drug label, section). The re-release marks each unique
ADR string once per section, at its first occurrence. For training we project
every annotated string onto all its occurrences (case-insensitive, on word
boundaries, longest first, no overlaps); the original entries are kept in
``doc._.reactions`` for reaction-level and PT-level evaluation, including the
discontiguous ones, which have no offsets and so cannot be placed as spans.
"""
import ast
import json
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc

from ..errors import Errors, FormatError
from ..extensions import register_extensions
from ..tags import ADR_LABEL
from ._util import MentionSpec, Report, build_doc, check_length, read_text

ENTRY_FIELDS = (
    "str",
    "meddra_pt",
    "meddra_pt_id",
    "meddra_llt",
    "meddra_llt_id",
    "start",
    "length",
    "kind",
)
KINDS = ("human", "animal", "drug_class")
_NAN = re.compile(r"(?<![\w'\"])nan(?![\w'\"])")


def parse_adverse_events(value: Any) -> List[Any]:
    """The ``adverse_events`` field: a JSON list, or a string holding a Python
    literal list in which bare ``nan`` means missing (never ``eval``)."""
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return ast.literal_eval(_NAN.sub("None", value))
    raise ValueError(f"expected a list or a string, got {type(value).__name__}")


def _code(value: Any) -> Optional[str]:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _offset(value: Any, name: str) -> Optional[int]:
    if value is None or (isinstance(value, float) and value != value):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is not an integer: {value!r}")


def parse_entry(raw: Any) -> Dict[str, Any]:
    if not isinstance(raw, (list, tuple)) or len(raw) != len(ENTRY_FIELDS):
        raise ValueError(f"expected a list of {len(ENTRY_FIELDS)} fields, got {raw!r}")
    entry = dict(zip(ENTRY_FIELDS, raw))
    if not isinstance(entry["str"], str) or not entry["str"].strip():
        raise ValueError(f"empty mention string: {raw!r}")
    entry["start"] = _offset(entry["start"], "start")
    entry["length"] = _offset(entry["length"], "length")
    if entry["kind"] not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {entry['kind']!r}")
    for key in ("meddra_pt_id", "meddra_llt_id"):
        entry[key] = _code(entry[key])
    for key in ("meddra_pt", "meddra_llt"):
        entry[key] = _code(entry[key])
    return entry


def normalization(entry: Dict[str, Any]) -> List[Dict[str, str]]:
    norm = {k: entry[k] for k in ("meddra_pt", "meddra_pt_id", "meddra_llt", "meddra_llt_id")}
    return [{k: v for k, v in norm.items() if v is not None}] if entry["meddra_pt_id"] else []


def project_strings(text: str, strings: List[str]) -> List[Tuple[int, int, str]]:
    """All occurrences of ``strings`` in ``text``: case-insensitive, on word
    boundaries, longest string first, skipping overlaps with longer ones."""
    lowered = text.lower()
    taken = bytearray(len(text))
    found = []
    for s in sorted({s.lower() for s in strings}, key=lambda s: (-len(s), s)):
        if s not in lowered:  # cheap filter before the regex
            continue
        pattern = re.compile(r"(?<!\w)" + re.escape(s) + r"(?!\w)")
        for m in pattern.finditer(lowered):
            a, b = m.span()
            if any(taken[a:b]):
                continue
            taken[a:b] = b"\x01" * (b - a)
            found.append((a, b, s))
    return sorted(found)


def load_records(path: Union[str, Path]) -> List[Any]:
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise FormatError(Errors.E008.format(reason=str(err)), path=path)
    if not isinstance(data, list):
        raise FormatError(Errors.E008.format(reason="expected a list of sections"), path=path)
    return data


def read_onsides(
    nlp: Language,
    path: Union[str, Path],
    *,
    project: bool = True,
    report: Optional[Report] = None,
    strict: bool = False,
) -> Iterator[Doc]:
    """Yield one Doc per (label, section).

    ``project``: place every occurrence of each annotated string (training
    and mention-level gold); otherwise only the annotated first occurrences.
    Bad sections and entries raise when ``strict``, else go to ``report``.
    """
    register_extensions()
    report = report if report is not None else Report()
    seen = set()
    for i, record in enumerate(load_records(path)):
        rec_id = f"#{i}"
        try:
            if not isinstance(record, dict):
                raise FormatError("section is not an object", path=path, record=rec_id)
            for key in ("label_id", "section_name", "section_text", "adverse_events"):
                if key not in record or record[key] is None:
                    raise FormatError(Errors.E006.format(field=key), path=path, record=rec_id)
            for key in ("label_id", "section_name"):  # they name the Doc and its output files
                if not isinstance(record[key], str) or not record[key].strip():
                    reason = "empty" if isinstance(record[key], str) else f"{type(record[key]).__name__}, not a string"
                    raise FormatError(
                        Errors.E007.format(field=key, value=str(record[key])[:80], reason=reason), path=path, record=rec_id
                    )
            rec_id = f"#{i} ({record['label_id']}/{record['section_name']})"
            if not isinstance(record["section_text"], str) or not record["section_text"].strip():
                raise FormatError("empty section_text", path=path, record=rec_id)
            check_length(nlp, record["section_text"], path=path, record=rec_id)
            doc_id = f"{record['label_id']}/{record['section_name']}"
            if doc_id in seen:
                raise FormatError(Errors.E011.format(id=doc_id), path=path, record=rec_id)
            try:
                raw_entries = parse_adverse_events(record["adverse_events"])
            except (ValueError, SyntaxError) as err:
                raise FormatError(
                    Errors.E007.format(field="adverse_events", value=str(record["adverse_events"])[:80], reason=err),
                    path=path,
                    record=rec_id,
                )
        except FormatError as err:
            if strict:
                raise
            report.skip(err, "section")
            continue
        seen.add(doc_id)
        yield _section_to_doc(nlp, path, record, raw_entries, doc_id, rec_id, project, report, strict)


def _section_to_doc(
    nlp: Language,
    path: Union[str, Path],
    record: Dict[str, Any],
    raw_entries: List[Any],
    doc_id: str,
    rec_id: str,
    project: bool,
    report: Report,
    strict: bool,
) -> Doc:
    text = record["section_text"]
    report.counts["sections"] += 1
    entries: List[Dict[str, Any]] = []
    for j, raw in enumerate(raw_entries):
        erec = f"{rec_id} entry {j}"
        try:
            try:
                entry = parse_entry(raw)
            except ValueError as err:
                raise FormatError(str(err), path=path, record=erec)
            if entry["start"] is not None:
                start, length = entry["start"], entry["length"] or 0
                if start < 0 or start + length > len(text) or length <= 0:
                    raise FormatError(
                        Errors.E004.format(start=start, end=start + length, length=len(text)),
                        path=path,
                        record=erec,
                    )
                found = text[start : start + length]
                if found.lower() != entry["str"].lower():
                    raise FormatError(
                        Errors.E005.format(found=found, start=start, end=start + length, expected=entry["str"]),
                        path=path,
                        record=erec,
                    )
        except FormatError as err:
            if strict:
                raise
            report.skip(err, "entry")
            continue
        entries.append(entry)
    report.counts["entries"] += len(entries)
    report.counts["entries_discontiguous_unplaced"] += sum(e["start"] is None for e in entries)

    reactions = []
    for j, e in enumerate(entries):
        reactions.append(
            {
                "id": f"R{j + 1}",
                "str": e["str"],
                "normalizations": normalization(e),
                "kind": e["kind"],
                "start": e["start"],
                "length": e["length"],
            }
        )
    contiguous = [e for e in entries if e["start"] is not None]
    by_string = {e["str"].lower(): e for e in contiguous}
    originals = {(e["start"], e["start"] + e["length"]) for e in contiguous}
    if project:
        occurrences = project_strings(text, list(by_string))
    else:
        occurrences = sorted((e["start"], e["start"] + e["length"], e["str"].lower()) for e in contiguous)
    specs = []
    for n, (a, b, s) in enumerate(occurrences):
        e = by_string[s.lower()]
        is_original = (a, b) in originals
        specs.append(
            MentionSpec(
                id=f"M{n + 1}",
                label=ADR_LABEL,
                fragments=[(a, b)],
                text=e["str"],
                attrs={
                    "kind": e["kind"],
                    "meddra": normalization(e),
                    "projected": not is_original,
                },
            )
        )
    placed_originals = sum((a, b) in originals for a, b, _ in occurrences)
    report.counts["entries_contiguous"] += len(contiguous)
    report.counts["entries_nested_in_longer_mention"] += len(contiguous) - placed_originals
    report.counts["mentions_original"] += placed_originals
    report.counts["mentions_projected"] += len(occurrences) - placed_originals
    doc, _ = build_doc(nlp, text, specs, report=report, path=path, record_prefix=f"{rec_id} ", strict=strict)
    doc._.doc_id = doc_id
    doc._.label_id = record["label_id"]
    doc._.section = record["section_name"]
    doc._.reactions = reactions
    doc._.relations = []
    doc._.source = {"format": "tac-onsides", "file": str(path)}
    return doc
