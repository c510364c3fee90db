"""brat standoff (``.txt`` + ``.ann``), as used by n2c2 2018 Track 2 and seed 003.

Supported lines: ``T`` text-bound (with ``;``-separated fragments), ``R``
relations, ``A``/``M`` attributes, ``N`` normalisations and ``#`` notes.
Other lines (``E`` events, ``*`` equivalences) are kept verbatim and written
back, and counted in the report, never dropped silently.
"""
import re
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc

from ..errors import Errors, FormatError
from ..extensions import MENTIONS_KEY, get_mentions, register_extensions
from ._util import MentionSpec, Report, build_doc, check_length, read_text

_T = re.compile(r"^(T\d+)\t(\S+) ((?:\d+ \d+)(?:;\d+ \d+)*)\t(.*)$")
_R = re.compile(r"^(R\d+)\t(\S+) (\S+):(T\d+) (\S+):(T\d+)\s*$")
_A = re.compile(r"^([AM]\d+)\t(\S+) (T\d+)(?: (\S+))?\s*$")
_N = re.compile(r"^(N\d+)\t(\S+) (T\d+) ([^:\s]+):(\S+)\t(.*)$")
_NOTE = re.compile(r"^(#\d+)\t(\S+) (T\d+)\t(.*)$")


def read_brat_file(
    nlp: Language,
    txt_path: Union[str, Path],
    *,
    report: Optional[Report] = None,
    discontiguous: str = "merge",
    strict: bool = False,
) -> Doc:
    """Read one ``.txt`` and its ``.ann`` (same stem) into a Doc."""
    register_extensions()
    txt_path = Path(txt_path)
    ann_path = txt_path.with_suffix(".ann")
    report = report if report is not None else Report()
    text = read_text(txt_path)
    check_length(nlp, text, path=txt_path)
    # An empty or missing .ann is a document without annotations, not an error.
    ann = read_text(ann_path) if ann_path.exists() and ann_path.read_bytes().strip() else ""
    specs: Dict[str, MentionSpec] = {}
    relations: List[Dict[str, Any]] = []
    other: List[str] = []
    attributes: List[Tuple[str, str, str, Optional[str]]] = []
    norms: List[Tuple[str, str, str, str, str, str]] = []
    notes: List[Tuple[str, str, str, str]] = []
    for lineno, line in enumerate(ann.splitlines(), start=1):
        if not line.strip():
            continue
        record = f"line {lineno}"
        try:
            if line.startswith("T"):
                m = _T.match(line)
                if not m:
                    raise FormatError(Errors.E009.format(line=line), path=ann_path, record=record)
                tid, label, offsets, surface = m.groups()
                if tid in specs:  # keep the first; the later line is the bad record
                    raise FormatError(Errors.E011.format(id=tid), path=ann_path, record=record)
                fragments = [tuple(int(x) for x in part.split()) for part in offsets.split(";")]
                specs[tid] = MentionSpec(id=tid, label=label, fragments=fragments, text=surface, attrs={"text": surface})
            elif line.startswith("R"):
                m = _R.match(line)
                if not m:
                    raise FormatError(Errors.E009.format(line=line), path=ann_path, record=record)
                rid, label, role1, arg1, role2, arg2 = m.groups()
                relations.append({"id": rid, "label": label, "head": arg1, "tail": arg2, "roles": [role1, role2]})
            elif line.startswith(("A", "M")):
                m = _A.match(line)
                if not m:
                    raise FormatError(Errors.E009.format(line=line), path=ann_path, record=record)
                attributes.append(m.groups())
            elif line.startswith("N"):
                m = _N.match(line)
                if not m:
                    raise FormatError(Errors.E009.format(line=line), path=ann_path, record=record)
                norms.append(m.groups())
            elif line.startswith("#"):
                m = _NOTE.match(line)
                if not m:
                    raise FormatError(Errors.E009.format(line=line), path=ann_path, record=record)
                notes.append(m.groups())
            elif line.startswith(("E", "*")):
                other.append(line)
                report.counts["brat_lines_kept_verbatim"] += 1
            else:
                raise FormatError(Errors.E009.format(line=line), path=ann_path, record=record)
        except FormatError as err:
            if strict:
                raise
            report.skip(err, "line")
    doc, placed = build_doc(
        nlp,
        text,
        list(specs.values()),
        report=report,
        path=ann_path,
        discontiguous=discontiguous,
        strict=strict,
    )
    placed_ids = {s.id for s in placed}
    store = doc._.mention_attrs or {}

    def target_ok(kind: str, ident: str, target: str) -> bool:
        if target in placed_ids:
            return True
        err = FormatError(Errors.E010.format(rel=ident, arg=target), path=ann_path, record=ident)
        if strict:
            raise err
        report.skip(err, kind)
        return False

    kept_relations = [r for r in relations if target_ok("relation", r["id"], r["head"]) and target_ok("relation", r["id"], r["tail"])]
    for aid, name, target, value in attributes:
        if target_ok("attribute", aid, target):
            store[target].setdefault("attributes", {})[name] = value if value is not None else True
            store[target].setdefault("brat_ids", {})[f"A:{name}"] = aid
    for nid, ref, target, db, db_id, surface in norms:
        if target_ok("normalization", nid, target):
            entry = {"id": nid, "ref": ref, "db": db, "db_id": db_id, "text": surface}
            store[target].setdefault("normalizations", []).append(entry)
            if db.lower() == "meddra":
                store[target].setdefault("meddra", []).append({"meddra_pt_id": db_id, "meddra_pt": surface})
    for note_id, kind, target, note in notes:
        if target_ok("note", note_id, target):
            store[target].setdefault("notes", []).append({"id": note_id, "type": kind, "text": note})
    doc._.mention_attrs = store
    report.counts["relations"] += len(kept_relations)
    report.counts["documents"] += 1
    doc._.doc_id = txt_path.stem
    doc._.label_id = txt_path.stem
    doc._.relations = kept_relations
    doc._.reactions = []
    doc._.source = {"format": "brat", "file": str(txt_path), "other_lines": other}
    return doc


def read_brat_dir(
    nlp: Language,
    path: Union[str, Path],
    *,
    report: Optional[Report] = None,
    discontiguous: str = "merge",
    strict: bool = False,
) -> Iterator[Doc]:
    """Every ``.txt`` under ``path`` (sorted), with its ``.ann``. A file that
    cannot be read is skipped and reported (or raised when ``strict``)."""
    path = Path(path)
    report = report if report is not None else Report()
    files = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
    for txt in files:
        try:
            yield read_brat_file(nlp, txt, report=report, discontiguous=discontiguous, strict=strict)
        except FormatError as err:
            if strict:
                raise
            report.skip(err, "document")


def doc_to_brat(doc: Doc, *, spans_key: str = MENTIONS_KEY) -> str:
    """The ``.ann`` text for a Doc. Mention ids of the form ``T<n>`` are kept;
    others (predictions) are renumbered."""
    register_extensions()
    mentions = sorted(get_mentions(doc, spans_key), key=lambda s: (s.start_char, s.end_char, s.label_))
    ids = [s.id_ for s in mentions]
    keep = all(re.fullmatch(r"T\d+", i or "") for i in ids) and len(set(ids)) == len(ids)
    id_map = {s.id_: (s.id_ if keep else f"T{i + 1}") for i, s in enumerate(mentions)}
    store = doc._.mention_attrs or {}
    lines: List[str] = []
    a_n = n_n = note_n = 0
    used_a = {v for s in mentions for v in (store.get(s.id_, {}).get("brat_ids") or {}).values()}
    for span in mentions:
        entry = store.get(span.id_, {})
        fragments = span._.fragments or [[span.start_char, span.end_char]]
        surface = entry.get("text") or " ".join(doc.text[s:e] for s, e in fragments)
        offsets = ";".join(f"{s} {e}" for s, e in fragments)
        lines.append(f"{id_map[span.id_]}\t{span.label_} {offsets}\t{surface}")
    rel_lines = []
    for i, rel in enumerate(doc._.relations or []):
        if rel["head"] not in id_map or rel["tail"] not in id_map:
            continue
        rid = rel["id"] if re.fullmatch(r"R\d+", str(rel.get("id"))) else f"R{i + 1}"
        role1, role2 = rel.get("roles") or ["Arg1", "Arg2"]
        rel_lines.append(f"{rid}\t{rel['label']} {role1}:{id_map[rel['head']]} {role2}:{id_map[rel['tail']]}")
    lines.extend(rel_lines)
    for span in mentions:
        entry = store.get(span.id_, {})
        tid = id_map[span.id_]
        brat_ids = entry.get("brat_ids") or {}
        for name, value in (entry.get("attributes") or {}).items():
            aid = brat_ids.get(f"A:{name}")
            if aid is None:
                a_n += 1
                while f"A{a_n}" in used_a:
                    a_n += 1
                aid = f"A{a_n}"
            lines.append(f"{aid}\t{name} {tid}" + ("" if value is True else f" {value}"))
        norms = entry.get("normalizations")
        if norms is None:
            norms = [
                {"ref": "Reference", "db": "MedDRA", "db_id": n.get("meddra_pt_id"), "text": n.get("meddra_pt", "")}
                for n in (span._.meddra or [])
                if n.get("meddra_pt_id")
            ]
        for norm in norms:
            n_n += 1
            lines.append(f"{norm.get('id') or f'N{n_n}'}\t{norm['ref']} {tid} {norm['db']}:{norm['db_id']}\t{norm['text']}")
        for note in entry.get("notes") or []:
            note_n += 1
            lines.append(f"{note.get('id') or f'#{note_n}'}\t{note['type']} {tid}\t{note['text']}")
    lines.extend((doc._.source or {}).get("other_lines") or [])
    return "\n".join(lines) + ("\n" if lines else "")


def write_brat(docs: Iterable[Doc], output_dir: Union[str, Path], *, spans_key: str = MENTIONS_KEY) -> List[Path]:
    """Write ``<doc_id>.txt`` and ``<doc_id>.ann`` per Doc."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, doc in enumerate(docs):
        name = doc._.doc_id or f"doc{i + 1}"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        (output_dir / f"{safe}.txt").write_text(doc.text, encoding="utf-8")
        (output_dir / f"{safe}.ann").write_text(doc_to_brat(doc, spans_key=spans_key), encoding="utf-8")
        paths.append(output_dir / f"{safe}.ann")
    return paths
