"""Drug names and their ids, from the PyPI package ``drug-named-entity-recognition``.

The package (MIT, Fast Data Science) bundles its dictionary: about 107,000
lower-cased name variants (generic names, brand names, synonyms, MeSH
pharmacological classes such as "ACE inhibitors") of about 20,000 drugs,
with DrugBank, MeSH (id and tree numbers) and MedlinePlus ids where known. It
has no RxNorm ids, so neither does this module. Nothing is downloaded: the
package's optional PubChem / OMOP / structure look-ups are never called.

This module only reads the package's tables. It never calls the package's
``add_custom_drug_synonym`` / ``remove_drug_synonym``, which change
module-level state shared by every user in the process: a pipeline's extra
terms and deny list live in its own ``DrugDictionary``.
"""
import re
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Dict, Iterable, List, Optional, Set, Tuple

CASE_MODES = ("ignore", "sensitive")
CLASS_TREE_PREFIX = "D27"  # MeSH "Chemical Actions and Uses" (pharmacologic actions)
_FIRST_WORD = re.compile(r"[^\W_]+|\S")


@lru_cache(maxsize=1)
def _finder() -> ModuleType:
    """The package's ``drugs_finder`` module; importing it unpickles the
    dictionary (about 2 s), so it happens once, when first needed."""
    from drug_named_entity_recognition import drugs_finder

    return drugs_finder


def package_stopwords() -> Set[str]:
    """Words the package never fuzzy-matches (common words, companies, countries)."""
    from drug_named_entity_recognition.util import stopwords

    return set(stopwords)


def first_word(text: str) -> str:
    """The first run of letters/digits (or first character) of lower-cased
    text: the key the matcher uses to skip tokens no name can start with."""
    m = _FIRST_WORD.search(text.lower())
    return m.group() if m else ""


@dataclass(frozen=True)
class DrugEntry:
    """One drug (or drug class) of the dictionary."""

    key: str
    name: str
    drugbank_id: Optional[str] = None
    mesh_id: Optional[str] = None
    medline_plus_id: Optional[str] = None
    is_class: bool = False
    mesh_tree: Tuple[str, ...] = ()

    @property
    def kb_id(self) -> str:
        """The most specific id: ``DrugBank:DB…``, else ``MeSH:D…``, else
        ``MedlinePlus:a…``; empty for a drug the dictionary has no id for."""
        for prefix, value in (("DrugBank", self.drugbank_id), ("MeSH", self.mesh_id), ("MedlinePlus", self.medline_plus_id)):
            if value:
                return f"{prefix}:{value}"
        return ""

    def ids(self) -> Dict[str, str]:
        out = {"drugbank_id": self.drugbank_id, "mesh_id": self.mesh_id, "medline_plus_id": self.medline_plus_id}
        return {k: v for k, v in out.items() if v}

    def normalizations(self) -> List[Dict[str, str]]:
        """brat-style normalisations (``N`` lines), one per id."""
        dbs = (("DrugBank", self.drugbank_id), ("MeSH", self.mesh_id), ("MedlinePlus", self.medline_plus_id))
        return [{"ref": "Reference", "db": db, "db_id": value, "text": self.name} for db, value in dbs if value]


@dataclass(frozen=True)
class DrugMatch:
    """A dictionary hit for one surface string."""

    entry: DrugEntry
    variant: str
    match: str  # "exact", "extra" (a configured extra term) or "fuzzy"
    is_brand: Optional[bool] = None
    similarity: float = 1.0


def _entry(key: str, data: Dict) -> DrugEntry:
    tree = data.get("mesh_tree") or []
    drugbank = data.get("drugbank_id")
    is_class = not drugbank and bool(tree) and all(str(t).startswith(CLASS_TREE_PREFIX) for t in tree)
    return DrugEntry(
        key=key,
        name=str(data.get("name") or key),
        drugbank_id=drugbank,
        mesh_id=data.get("mesh_id"),
        medline_plus_id=data.get("medline_plus_id"),
        is_class=is_class,
        mesh_tree=tuple(str(t) for t in tree),
    )


class DrugDictionary:
    """Look-ups of surface strings in the package's dictionary, with a
    pipeline's own extra terms, deny list and case rule on top.

    - ``extra_terms``: surface → drug. A drug that is a key or a name variant
      of the dictionary gets that drug's ids ("beta blockers" →
      "adrenergic beta-antagonists"); any other becomes a new drug without ids.
    - ``deny``: lower-cased surface forms, drug keys/names or ids (``DB…``,
      ``D…``) that are never returned.
    - ``case``: ``"ignore"`` matches any casing (the package's behaviour);
      ``"sensitive"`` accepts a surface only as the variant is written in
      lower case, UPPER CASE, Title Case or as the drug's name, so "sOne"
      is not a drug; ``case_sensitive_terms`` applies that rule to the
      listed terms only.
    - ``include_classes``: MeSH pharmacological classes ("NSAIDs", "statins");
      with False, an extra term naming a class still counts.
    - ``deny_mesh_trees``: MeSH tree prefixes of entries that are not drugs
      when they have no DrugBank id (enzymes ``D08``, receptors ``D12.776``,
      nucleic acids ``D13``: named in text as targets and biomarkers, e.g.
      "cyclooxygenase-2", "mRNA").
    - ``min_length``: shorter variants are ignored.
    """

    def __init__(
        self,
        *,
        extra_terms: Optional[Dict[str, str]] = None,
        deny: Iterable[str] = (),
        case: str = "ignore",
        case_sensitive_terms: Iterable[str] = (),
        include_classes: bool = True,
        deny_mesh_trees: Iterable[str] = (),
        min_length: int = 3,
    ) -> None:
        if case not in CASE_MODES:
            raise ValueError(f"case must be one of {CASE_MODES}, got {case!r}")
        if min_length < 1:
            raise ValueError(f"min_length must be at least 1, got {min_length}")
        finder = _finder()
        self._variants: Dict[str, List[str]] = finder.drug_variant_to_canonical
        self._data: Dict[str, Dict] = finder.drug_canonical_to_data
        self._variant_data: Dict[str, Dict] = finder.drug_variant_to_variant_data
        self.case = case
        self.case_sensitive_terms = {t.lower() for t in case_sensitive_terms}
        self.include_classes = include_classes
        self.deny_mesh_trees = tuple(deny_mesh_trees)
        self.min_length = min_length
        self.deny = {" ".join(d.lower().split()) for d in deny}
        self._entries: Dict[str, DrugEntry] = {}
        self.extra: Dict[str, DrugEntry] = {}
        for term, drug in (extra_terms or {}).items():
            norm = " ".join(term.lower().split())
            if not norm:
                raise ValueError("extra_terms: an empty term")
            self.extra[norm] = self._resolve(drug)
        self.max_words = max((len(v.split()) for v in self._variants), default=1)
        self.max_words = max([self.max_words] + [len(t.split()) for t in self.extra])
        self.first_words = {first_word(v) for v in self._variants} | {first_word(t) for t in self.extra}

    def _resolve(self, drug: str) -> DrugEntry:
        """The entry for a drug named in ``extra_terms``."""
        key = " ".join(drug.lower().split())
        if key in self._data:
            return self.entry(key)
        canon = self._variants.get(key)
        if canon:
            return self.entry(canon[0])
        return DrugEntry(key=key, name=drug.strip())

    def entry(self, key: str) -> DrugEntry:
        if key not in self._entries:
            self._entries[key] = _entry(key, self._data.get(key, {}))
        return self._entries[key]

    def _case_ok(self, surface: str, variant: str, entry: DrugEntry) -> bool:
        if self.case == "ignore" and variant not in self.case_sensitive_terms:
            return True
        return surface in {variant, variant.upper(), variant.title(), variant.capitalize(), entry.name, entry.name.upper()}

    def _allowed(self, surface_norm: str, entry: DrugEntry, extra: bool = False) -> bool:
        """Deny list always; classes and MeSH trees only for the package's
        own names (an extra term is the user's explicit choice)."""
        if not extra and entry.is_class and not self.include_classes:
            return False
        if not extra and self.deny_mesh_trees and not entry.drugbank_id and entry.mesh_tree:
            if all(t.startswith(self.deny_mesh_trees) for t in entry.mesh_tree):
                return False
        denied = {surface_norm, entry.key, entry.name.lower(), *(i.lower() for i in entry.ids().values())}
        return not (denied & self.deny)

    def lookup(self, surface: str) -> Optional[DrugMatch]:
        """The drug a surface string names, or None. Whitespace is
        normalised; extra terms win over the package's dictionary."""
        text = " ".join(surface.split())
        norm = text.lower()
        if len(norm) < self.min_length:
            return None
        if norm in self.extra:
            entry = self.extra[norm]
            found = DrugMatch(entry=entry, variant=norm, match="extra")
        else:
            canon = self._variants.get(norm)
            if not canon:
                return None
            entry = self.entry(canon[0])
            brand = (self._variant_data.get(norm) or {}).get("is_brand")
            found = DrugMatch(entry=entry, variant=norm, match="exact", is_brand=brand)
        if not self._case_ok(text, norm, entry) or not self._allowed(norm, entry, extra=found.match == "extra"):
            return None
        return found

    def alias(self, surface: str, match: DrugMatch) -> Optional[DrugMatch]:
        """``match``'s drug under another name defined in the text (an
        abbreviation), unless the deny list drops that name."""
        norm = " ".join(surface.lower().split())
        if not self._allowed(norm, match.entry):
            return None
        return DrugMatch(entry=match.entry, variant=norm, match="abbreviation")

    def fuzzy_lookup(self, word: str) -> Optional[DrugMatch]:
        """The package's own misspelling match (character trigrams, at most
        3 differing trigrams and 2 characters of length) for one word."""
        norm = word.lower()
        found, similarity = _finder().get_fuzzy_match(norm)
        if found is None:
            return None
        entry = self.entry(self._variants[found][0])
        if not self._allowed(norm, entry):
            return None
        brand = (self._variant_data.get(found) or {}).get("is_brand")
        return DrugMatch(entry=entry, variant=found, match="fuzzy", is_brand=brand, similarity=float(similarity))

    def __contains__(self, surface: str) -> bool:
        return self.lookup(surface) is not None

    def stats(self) -> Tuple[int, int]:
        """(name variants, drugs) in the package's dictionary."""
        return len(self._variants), len(self._data)
