"""MedDRA terms and their file formats: a licensed ASCII release
(``llt.asc``, ``pt.asc``, ``mdhier.asc``), the terms table ``clinie meddra
build-terms`` writes, and terms from a corpus's gold normalisations.

MedDRA is licensed, so nothing here ships MedDRA content."""
import csv
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple, Union

from spacy.tokens import Doc

from ..errors import Errors, FormatError
from ..extensions import get_mentions


# Column layouts of the MedDRA ASCII distribution ("$"-separated, each line
# ends with a "$", so a split gives one empty field more than listed).
LLT_COLUMNS = (
    "llt_code", "llt_name", "pt_code", "llt_whoart_code", "llt_harts_code", "llt_costart_sym",
    "llt_icd9_code", "llt_icd9cm_code", "llt_icd10_code", "llt_currency", "llt_jart_code",
)  # fmt: skip
PT_COLUMNS = (
    "pt_code", "pt_name", "null_field", "pt_soc_code", "pt_whoart_code", "pt_harts_code",
    "pt_costart_sym", "pt_icd9_code", "pt_icd9cm_code", "pt_icd10_code", "pt_jart_code",
)  # fmt: skip
MDHIER_COLUMNS = (
    "pt_code", "hlt_code", "hlgt_code", "soc_code", "pt_name", "hlt_name", "hlgt_name",
    "soc_name", "soc_abbrev", "null_field", "pt_soc_code", "primary_soc_fg",
)  # fmt: skip
_CODE = re.compile(r"^\d{8}$")


def _read_lines(path: Path) -> List[str]:
    if not path.exists():
        raise FormatError(f"MedDRA file not found (expected {path.name} in the release folder).", path=path)
    raw = path.read_bytes()
    if not raw.strip():
        raise FormatError(Errors.E001, path=path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Older English releases are Latin-1; every byte decodes there.
        text = raw.decode("latin-1")
    return text.splitlines()


def read_asc(path: Union[str, Path], columns: Sequence[str]) -> Iterable[Tuple[int, Dict[str, str]]]:
    """Rows of one ``.asc`` file as ``(line_number, {column: value})``.
    Every line must have exactly ``len(columns)`` fields (one trailing ``$``
    allowed, as in the distribution); blank lines are skipped."""
    path = Path(path)
    for n, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split("$")
        if len(parts) == len(columns) + 1 and parts[-1].strip() == "":
            parts = parts[:-1]
        if len(parts) != len(columns):
            raise FormatError(
                f"expected {len(columns)} '$'-separated fields ({columns[0]}$...${columns[-1]}$), "
                f"found {len(parts)}: {line[:80]!r}",
                path=path,
                record=f"line {n}",
            )
        yield n, dict(zip(columns, (p.strip() for p in parts)))


def _check_code(path: Path, n: int, row: Dict[str, str], column: str) -> str:
    value = row[column]
    if not _CODE.match(value):
        raise FormatError(Errors.E007.format(field=column, value=value, reason="not an 8-digit MedDRA code"), path=path, record=f"line {n}")
    return value


def _check_flag(path: Path, n: int, row: Dict[str, str], column: str) -> bool:
    value = row[column]
    if value not in ("Y", "N"):
        raise FormatError(Errors.E007.format(field=column, value=value, reason="expected Y or N"), path=path, record=f"line {n}")
    return value == "Y"


def _check_name(path: Path, n: int, row: Dict[str, str], column: str) -> str:
    value = row[column]
    if not value:
        raise FormatError(Errors.E006.format(field=column), path=path, record=f"line {n}")
    return value


# ---------------------------------------------------------------- terms table


@dataclass
class Term:
    """One matchable string and the concept it codes to. ``source`` is
    ``llt``, ``pt`` or ``synonym`` (a corpus mention string); ``count`` is
    how often the string was coded so in the source (1 for terminology)."""

    term: str
    llt_id: str
    llt: str
    pt_id: str
    pt: str
    soc_id: str = ""
    soc: str = ""
    source: str = "llt"
    count: int = 1
    current: bool = True


TERM_COLUMNS = tuple(f.name for f in fields(Term))
REQUIRED_COLUMNS = ("term", "llt_id", "llt", "pt_id", "pt")


def read_meddra_ascii(path: Union[str, Path], *, noncurrent_llts: bool = True) -> List[Term]:
    """Terms from a MedDRA ASCII release folder: every LLT (non-current ones
    only as matching strings when ``noncurrent_llts``) and every PT, with the
    primary SOC from ``mdhier.asc`` when the folder has one."""
    path = Path(path)
    if not path.is_dir():
        raise FormatError("not a folder: point at the MedDRA release's ascii folder (llt.asc, pt.asc, mdhier.asc).", path=path)
    pts: Dict[str, str] = {}
    pt_soc_code: Dict[str, str] = {}
    pt_file = path / "pt.asc"
    for n, row in read_asc(pt_file, PT_COLUMNS):
        code = _check_code(pt_file, n, row, "pt_code")
        if code in pts:
            raise FormatError(Errors.E011.format(id=code), path=pt_file, record=f"line {n}")
        pts[code] = _check_name(pt_file, n, row, "pt_name")
        if row["pt_soc_code"]:
            pt_soc_code[code] = _check_code(pt_file, n, row, "pt_soc_code")
    soc: Dict[str, Tuple[str, str]] = {}
    hier_file = path / "mdhier.asc"
    if hier_file.exists():
        for n, row in read_asc(hier_file, MDHIER_COLUMNS):
            code = _check_code(hier_file, n, row, "pt_code")
            soc_code = _check_code(hier_file, n, row, "soc_code")
            if code not in pts:
                raise FormatError(f"PT {code} is not in pt.asc", path=hier_file, record=f"line {n}")
            if _check_flag(hier_file, n, row, "primary_soc_fg") or (code not in soc and pt_soc_code.get(code) == soc_code):
                soc[code] = (soc_code, _check_name(hier_file, n, row, "soc_name"))
    terms: List[Term] = []
    llt_file = path / "llt.asc"
    seen_llt = set()
    for n, row in read_asc(llt_file, LLT_COLUMNS):
        code = _check_code(llt_file, n, row, "llt_code")
        if code in seen_llt:
            raise FormatError(Errors.E011.format(id=code), path=llt_file, record=f"line {n}")
        seen_llt.add(code)
        pt_code = _check_code(llt_file, n, row, "pt_code")
        if pt_code not in pts:
            raise FormatError(f"LLT {code} points at PT {pt_code}, which is not in pt.asc", path=llt_file, record=f"line {n}")
        current = _check_flag(llt_file, n, row, "llt_currency")
        if not current and not noncurrent_llts:
            continue
        name = _check_name(llt_file, n, row, "llt_name")
        soc_id, soc_name = soc.get(pt_code, ("", ""))
        source = "pt" if code == pt_code else "llt"
        terms.append(Term(name, code, name, pt_code, pts[pt_code], soc_id, soc_name, source, 1, current))
    if not terms:
        raise FormatError(Errors.E014.format(path=llt_file), path=llt_file)
    have_pt_llt = {t.pt_id for t in terms if t.source == "pt"}
    for code, name in pts.items():
        if code not in have_pt_llt:  # every PT is also an LLT in MedDRA; be lenient
            soc_id, soc_name = soc.get(code, ("", ""))
            terms.append(Term(name, code, name, code, name, soc_id, soc_name, "pt", 1, True))
    return terms


def read_terms_table(path: Union[str, Path]) -> List[Term]:
    """A tab-separated terms table with a header naming at least
    ``term llt_id llt pt_id pt`` (optional: soc_id soc source count current)."""
    path = Path(path)
    lines = _read_lines(path)
    reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(reader)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise FormatError(Errors.E015.format(columns=", ".join(REQUIRED_COLUMNS), found=", ".join(header)), path=path, record="line 1")
    terms = []
    for n, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise FormatError(f"expected {len(header)} tab-separated fields, found {len(row)}", path=path, record=f"line {n}")
        rec = dict(zip(header, row))
        for col in REQUIRED_COLUMNS:
            if not rec[col].strip():
                raise FormatError(Errors.E006.format(field=col), path=path, record=f"line {n}")
        try:
            count = int(rec.get("count") or 1)
        except ValueError:
            raise FormatError(Errors.E007.format(field="count", value=rec["count"], reason="not an integer"), path=path, record=f"line {n}")
        terms.append(
            Term(
                rec["term"], rec["llt_id"], rec["llt"], rec["pt_id"], rec["pt"], rec.get("soc_id", ""), rec.get("soc", ""),
                rec.get("source") or "synonym", count, (rec.get("current") or "True") != "False",
            )
        )  # fmt: skip
    if not terms:
        raise FormatError(Errors.E014.format(path=path), path=path)
    return terms


def write_terms_table(terms: Iterable[Term], path: Union[str, Path]) -> int:
    n = 0
    with Path(path).open("w", encoding="utf8", newline="") as f:
        f.write("\t".join(TERM_COLUMNS) + "\n")
        for t in terms:
            row = [str(getattr(t, c)) for c in TERM_COLUMNS]
            if any("\t" in v or "\n" in v for v in row):
                raise ValueError(f"term contains a tab or newline: {t}")
            f.write("\t".join(row) + "\n")
            n += 1
    return n


def terms_from_docs(docs: Iterable[Doc], *, synonyms: bool = True) -> List[Term]:
    """A terms table from gold normalisations: each coded LLT and PT name, and
    (``synonyms``) each annotated mention string with the concept it was most
    often coded to. Reads ``doc._.reactions`` (the TAC unit, including
    discontiguous strings) or, without them, the mention spans."""
    coded: Dict[str, Counter] = defaultdict(Counter)  # lowered string -> Counter[(llt_id, llt, pt_id, pt)]
    concepts: Dict[Tuple[str, str], Tuple[str, str]] = {}
    for doc in docs:
        if doc._.reactions:
            items = [(r["str"], n) for r in doc._.reactions for n in (r.get("normalizations") or [])[:1]]
        else:
            items = [(s.text, s._.meddra[0]) for s in get_mentions(doc) if s._.meddra]
        for text, norm in items:
            pt_id, pt = str(norm.get("meddra_pt_id") or ""), norm.get("meddra_pt") or ""
            if not pt_id or not pt:
                continue
            llt_id = str(norm.get("meddra_llt_id") or pt_id)
            llt = norm.get("meddra_llt") or pt
            concepts[(llt_id, pt_id)] = (llt, pt)
            coded[" ".join(text.split()).lower()][(llt_id, llt, pt_id, pt)] += 1
    terms: List[Term] = []
    names = set()
    for (llt_id, pt_id), (llt, pt) in sorted(concepts.items()):
        if (llt.lower(), llt_id) not in names:
            terms.append(Term(llt, llt_id, llt, pt_id, pt, source="pt" if llt_id == pt_id else "llt"))
            names.add((llt.lower(), llt_id))
        if (pt.lower(), pt_id) not in names:
            terms.append(Term(pt, pt_id, pt, pt_id, pt, source="pt"))
            names.add((pt.lower(), pt_id))
    if synonyms:
        for text, counter in sorted(coded.items()):
            (llt_id, llt, pt_id, pt), count = counter.most_common(1)[0]
            terms.append(Term(text, llt_id, llt, pt_id, pt, source="synonym", count=sum(counter.values())))
    return terms
