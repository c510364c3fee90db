"""EU-ADR drug–disorder relations (tab-separated, one relation per row).

Rows that share a sentence (PMID, sentence number, text) become one Doc with
the distinct entities as mentions and one relation per row, labelled with
ASSOCIATION_TYPE: PA positive, NA negative, SA speculative, FA false/none.
"""
import csv
import io
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc

from ..errors import Errors, FormatError
from ..extensions import register_extensions
from ._util import MentionSpec, Report, build_doc, read_text

COLUMNS = (
    "ASSOCIATION_TYPE",
    "PMID",
    "NUM_SENTENCE",
    "ENTITY1_TEXT",
    "ENTITY1_INI",
    "ENTITY1_END",
    "ENTITY1_TYPE",
    "ENTITY2_TEXT",
    "ENTITY2_INI",
    "ENTITY2_END",
    "ENTITY2_TYPE",
    "SENTENCE",
)
RELATION_LABELS = ("PA", "NA", "SA", "FA")
ENTITY_LABELS = {"Diseases & Disorders": "Disorder", "Chemicals & Drugs": "Drug", "Genes & Molecular Sequences": "Gene"}


def read_euadr(
    nlp: Language,
    path: Union[str, Path],
    *,
    report: Optional[Report] = None,
    strict: bool = False,
) -> Iterator[Doc]:
    """Yield one Doc per sentence, in file order."""
    register_extensions()
    path = Path(path)
    report = report if report is not None else Report()
    reader = csv.DictReader(io.StringIO(read_text(path)), delimiter="\t")
    try:
        fieldnames = reader.fieldnames
    except csv.Error as err:
        raise FormatError(Errors.E015.format(columns=", ".join(COLUMNS), found=f"an unreadable line ({err})"), path=path)
    if fieldnames is None or [c for c in COLUMNS if c not in fieldnames]:
        raise FormatError(Errors.E015.format(columns=", ".join(COLUMNS), found=fieldnames), path=path)
    sentences: Dict[Tuple[str, str, str], List[Tuple[int, Dict[str, Any]]]] = {}
    lineno = 1
    while True:
        lineno += 1
        record = f"line {lineno}"
        try:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as err:  # e.g. a field over csv's size limit: the reader goes on after it
                raise FormatError(f"not a readable CSV row ({err})", path=path, record=record)
            if row["ASSOCIATION_TYPE"] not in RELATION_LABELS:
                raise FormatError(
                    Errors.E007.format(field="ASSOCIATION_TYPE", value=row["ASSOCIATION_TYPE"], reason=f"not one of {RELATION_LABELS}"),
                    path=path,
                    record=record,
                )
            for col in COLUMNS:
                if row.get(col) in (None, ""):
                    raise FormatError(Errors.E006.format(field=col), path=path, record=record)
            for col in ("ENTITY1_INI", "ENTITY1_END", "ENTITY2_INI", "ENTITY2_END"):
                if not row[col].strip().isdigit():
                    raise FormatError(Errors.E007.format(field=col, value=row[col], reason="not an integer"), path=path, record=record)
                if len(row[col].strip()) > 12:  # int() refuses 4,300+ digits; no sentence is that long
                    raise FormatError(Errors.E007.format(field=col, value=row[col][:20] + "...", reason="too large"), path=path, record=record)
        except FormatError as err:
            if strict:
                raise
            report.skip(err, "row")
            continue
        key = (row["PMID"], row["NUM_SENTENCE"], row["SENTENCE"])
        sentences.setdefault(key, []).append((lineno, row))
    for (pmid, num, sentence), rows in sentences.items():
        # Keyed with the text too, so a row whose text disagrees with its
        # offsets is checked (and reported) rather than merged into a good one.
        specs: Dict[Tuple[int, int, str, str], MentionSpec] = {}
        relations = []
        for lineno, row in rows:
            args = []
            for k in ("1", "2"):
                span = (int(row[f"ENTITY{k}_INI"]), int(row[f"ENTITY{k}_END"]), row[f"ENTITY{k}_TYPE"], row[f"ENTITY{k}_TEXT"])
                if span not in specs:
                    specs[span] = MentionSpec(
                        id=f"T{len(specs) + 1}",
                        label=ENTITY_LABELS.get(span[2], span[2].replace(" ", "_")),
                        fragments=[(span[0], span[1])],
                        text=row[f"ENTITY{k}_TEXT"],
                        attrs={"attributes": {"type": span[2]}, "text": row[f"ENTITY{k}_TEXT"]},
                        record=f"line {lineno}",
                    )
                args.append(specs[span].id)
            relations.append({"id": f"R{len(relations) + 1}", "label": row["ASSOCIATION_TYPE"], "head": args[0], "tail": args[1], "line": lineno})
        try:
            doc, placed = build_doc(nlp, sentence, list(specs.values()), report=report, path=path, record_prefix=f"PMID {pmid} sentence {num} ", strict=strict)
        except FormatError as err:  # a sentence too long to tokenise: it and its rows are skipped
            if strict:
                raise
            lines = ", ".join(str(n) for n, _ in rows)
            report.skip(FormatError(f"{err.message} (lines {lines})", path=path, record=f"PMID {pmid} sentence {num}"), "sentence")
            continue
        placed_ids = {s.id for s in placed}
        kept = []
        for rel in relations:
            if rel["head"] in placed_ids and rel["tail"] in placed_ids:
                kept.append(rel)
            else:
                report.skip(FormatError("an argument entity was skipped", path=path, record=f"line {rel['line']}"), "relation")
        report.counts["relations"] += len(kept)
        report.counts["sentences"] += 1
        doc._.doc_id = f"{pmid}/{num}"
        doc._.label_id = pmid
        doc._.relations = kept
        doc._.reactions = []
        doc._.source = {"format": "euadr", "file": str(path)}
        yield doc
