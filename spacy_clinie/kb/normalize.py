"""Normalisation rules for matching mentions to MedDRA terms: case,
accents, British spellings, plurals, stop words and abbreviations
(``clinie.MeddraNormalizer.v1``)."""
import re
import unicodedata
from typing import Dict, Iterable, List, Tuple

from spacy.util import registry


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
