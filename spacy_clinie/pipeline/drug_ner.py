"""``clinie_drug_ner``: drug mentions, with ids, in ``doc.spans["mentions"]``.

Names come from the dictionary of the PyPI package
``drug-named-entity-recognition`` (``kb/drugs.py``); this pipe finds them on
token boundaries (longest match first, up to ``max_tokens`` tokens, so
multi-word names such as "insulin glargine" or "ACE inhibitors" match) and
writes one ``Drug`` span per drug mention:

- ``span.kb_id_``: the most specific id, ``DrugBank:DB01156``, else
  ``MeSH:D000806`` (classes), else ``MedlinePlus:a…``; empty when unknown.
- ``span._.attributes`` (brat ``A`` lines, the JSONL record): ``drugbank_id``,
  ``mesh_id``, ``medline_plus_id`` (those known), ``match`` (``exact``,
  ``extra`` or ``fuzzy``), ``drug_class`` (True for a MeSH pharmacological
  class such as "NSAIDs"), ``is_brand`` (True when the name is a brand) and
  ``brand_generic`` (True for a merged pair, below). Values never contain
  spaces, so brat attribute lines stay readable.
- the mention's ``normalizations`` (brat ``N`` lines, the JSONL record):
  one per id, with the drug's name.

A brand name followed by its generic name in brackets ("WELLBUTRIN
(BUPROPION)", or the other way round) is one drug with two names: one
mention whose ``span._.fragments`` are the two names, so writers show both
and a relation points at one drug. The dictionary has no RxNorm ids.
"""
import re
from typing import Any, Dict, List, Optional, Tuple

from spacy.language import Language
from spacy.tokens import Doc, Span

from ..errors import Errors
from ..extensions import MENTIONS_KEY, ensure_mention_ids, get_mentions, register_extensions, set_mention_attrs
from ..kb.drugs import DrugDictionary, DrugMatch, first_word, package_stopwords
from ..util import is_abbreviation

DRUG_LABEL = "Drug"
Found = Tuple[int, int, DrugMatch]
# a short form in brackets after a drug name: "cyclosporin A (CsA)"
ABBREVIATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{1,7}")


@Language.factory(
    "clinie_drug_ner",
    requires=[],
    assigns=["doc.spans"],
    default_config={
        "spans_key": MENTIONS_KEY,
        "label": DRUG_LABEL,
        "extra_terms": {},
        # "caps": the dictionary's CAPS buffer; in notes capsules, in TAC
        # labels the CAPS syndrome (the only such word found on TAC dev)
        "deny": ["caps"],
        "case": "ignore",
        "case_sensitive_terms": [],
        "include_classes": True,
        "deny_mesh_trees": ["D08", "D12.776", "D13"],
        "min_length": 3,
        "max_tokens": 10,
        "fuzzy": False,
        "fuzzy_min_length": 6,
        "abbreviations": True,
        "merge_brand_generic": True,
        "overwrite": True,
    },
)
def make_drug_ner(
    nlp: Language,
    name: str,
    spans_key: str,
    label: str,
    extra_terms: Dict[str, str],
    deny: List[str],
    case: str,
    case_sensitive_terms: List[str],
    include_classes: bool,
    deny_mesh_trees: List[str],
    min_length: int,
    max_tokens: int,
    fuzzy: bool,
    fuzzy_min_length: int,
    abbreviations: bool,
    merge_brand_generic: bool,
    overwrite: bool,
) -> "DrugNER":
    """Settings: ``extra_terms`` maps a surface to a drug of the dictionary
    (its ids) or to a new drug name; ``deny`` drops surfaces, drugs or ids;
    ``case`` is ``"ignore"`` or ``"sensitive"`` (``case_sensitive_terms``:
    that rule for some terms only); ``fuzzy`` turns on the package's
    misspelling match for words of ``fuzzy_min_length`` characters or more;
    ``deny_mesh_trees`` drops dictionary entries without a DrugBank id that
    lie only under those MeSH trees; ``abbreviations``: a short form in
    brackets after a drug ("mycophenolate mofetil (MMF)") names that drug
    wherever it occurs in the doc; ``overwrite`` replaces earlier ``label`` spans (else they are kept and
    new ones that overlap them are not added)."""
    dictionary = DrugDictionary(
        extra_terms=extra_terms,
        deny=deny,
        case=case,
        case_sensitive_terms=case_sensitive_terms,
        include_classes=include_classes,
        deny_mesh_trees=deny_mesh_trees,
        min_length=min_length,
    )
    return DrugNER(
        name,
        dictionary,
        spans_key=spans_key,
        label=label,
        max_tokens=max_tokens,
        fuzzy=fuzzy,
        fuzzy_min_length=fuzzy_min_length,
        abbreviations=abbreviations,
        merge_brand_generic=merge_brand_generic,
        overwrite=overwrite,
    )


class DrugNER:
    """Dictionary matching of drug names; stateless apart from its settings,
    which come from the config, so nothing is saved with the pipeline."""

    def __init__(
        self,
        name: str,
        dictionary: DrugDictionary,
        *,
        spans_key: str = MENTIONS_KEY,
        label: str = DRUG_LABEL,
        max_tokens: int = 10,
        fuzzy: bool = False,
        fuzzy_min_length: int = 6,
        abbreviations: bool = True,
        merge_brand_generic: bool = True,
        overwrite: bool = True,
    ) -> None:
        register_extensions()
        if max_tokens < 1:
            raise ValueError(Errors.E107.format(name=name, max_tokens=max_tokens))
        self.name = name
        self.dictionary = dictionary
        self.spans_key = spans_key
        self.label = label
        self.max_tokens = max_tokens
        self.fuzzy = fuzzy
        self.fuzzy_min_length = fuzzy_min_length
        self.abbreviations = abbreviations
        self.merge_brand_generic = merge_brand_generic
        self.overwrite = overwrite
        self._stopwords = package_stopwords() if fuzzy else set()

    # ------------------------------------------------------------ matching

    def find(self, doc: Doc) -> List[Found]:
        """Non-overlapping ``(start, end, match)`` token ranges, left to
        right, longest first. Does not modify the doc."""
        out: List[Found] = []
        i, n = 0, len(doc)
        text = doc.text
        while i < n:
            tok = doc[i]
            if tok.is_space or first_word(tok.text) not in self.dictionary.first_words:
                hit = self._fuzzy(tok) if self.fuzzy else None
                if hit is not None:
                    out.append((i, i + 1, hit))
                i += 1
                continue
            found: Optional[Found] = None
            for j in range(min(n, i + self.max_tokens), i, -1):
                last = doc[j - 1]
                if last.is_space:
                    continue
                hit = self.dictionary.lookup(text[tok.idx : last.idx + len(last.text)])
                if hit is not None:
                    found = (i, j, hit)
                    break
            if found is None and self.fuzzy:
                hit = self._fuzzy(tok)
                found = (i, i + 1, hit) if hit is not None else None
            if found is None:
                i += 1
                continue
            out.append(found)
            i = found[1]
        return self._add_abbreviations(doc, out) if self.abbreviations and out else out

    def _add_abbreviations(self, doc: Doc, found: List[Found]) -> List[Found]:
        """Short forms defined as "<drug> (<short form>" (closed by ")", ";"
        or ","), and their other occurrences in the doc, as that drug. The
        short form must pass ``is_abbreviation`` against the name and must
        not be all lower case."""
        covered = {t for s, e, _ in found for t in range(s, e)}
        defined: Dict[str, DrugMatch] = {}
        n = len(doc)
        for start, end, match in found:
            if end + 2 >= n or doc[end].text != "(" or doc[end + 2].text not in (")", ";", ","):
                continue
            short = doc[end + 1].text
            if end + 1 in covered or not ABBREVIATION.fullmatch(short) or short.islower():
                continue
            if not is_abbreviation(short, doc[start:end].text):
                continue
            alias = self.dictionary.alias(short, match)
            if alias is not None:
                defined.setdefault(short, alias)
        if not defined:
            return found
        extra = [(i, i + 1, defined[t.text]) for i, t in enumerate(doc) if t.text in defined and i not in covered]
        return sorted(found + extra, key=lambda f: f[0])

    def _fuzzy(self, tok: Any) -> Optional[DrugMatch]:
        word = tok.text
        if len(word) < self.fuzzy_min_length or not word.isalpha() or word.lower() in self._stopwords:
            return None
        return self.dictionary.fuzzy_lookup(word)

    def pairs(self, doc: Doc, found: List[Found]) -> List[Tuple[Found, Optional[Found]]]:
        """Group "A ( B )" into (A, B) when A and B name the same drug (a
        brand and its generic, either way round); others are (A, None). A
        short form of the name ("cyclosporin A (CsA)") stays a mention of
        its own, as corpora annotate it."""
        out: List[Tuple[Found, Optional[Found]]] = []
        k = 0
        while k < len(found):
            a = found[k]
            b = found[k + 1] if k + 1 < len(found) else None
            if (
                self.merge_brand_generic
                and b is not None
                and b[0] == a[1] + 1
                and doc[a[1]].text == "("
                and b[1] < len(doc)
                and doc[b[1]].text == ")"
                and a[2].entry.key == b[2].entry.key
                and not is_abbreviation(doc[b[0] : b[1]].text, doc[a[0] : a[1]].text)
            ):
                out.append((a, b))
                k += 2
            else:
                out.append((a, None))
                k += 1
        return out

    # ------------------------------------------------------------ writing

    def __call__(self, doc: Doc) -> Doc:
        self.set_annotations(doc, self.find(doc))
        return doc

    def pipe(self, stream, batch_size: int = 128):
        for doc in stream:
            yield self(doc)

    def set_annotations(self, doc: Doc, found: List[Found]) -> None:
        """Add the drug mentions to the span group. Idempotent: with
        ``overwrite`` earlier ``label`` spans (and their attributes) are
        replaced; without it they stay and overlapping new ones are dropped."""
        group = get_mentions(doc, self.spans_key)
        store = doc._.mention_attrs or {}
        if self.overwrite:
            for span in group:
                if span.label_ == self.label and span.id_:
                    store.pop(span.id_, None)
            kept = [s for s in group if s.label_ != self.label]
        else:
            kept = list(group)
        taken = {t for s in kept if s.label_ == self.label for t in range(s.start, s.end)}
        new: List[Tuple[Span, Dict[str, Any]]] = []
        for a, b in self.pairs(doc, found):
            start, end = a[0], (b or a)[1]
            if taken & set(range(start, end)):
                continue
            match = a[2]
            entry = match.entry
            attributes: Dict[str, Any] = dict(entry.ids())
            attributes["match"] = match.match if b is None or b[2].match == match.match else "exact"
            if entry.is_class:
                attributes["drug_class"] = True
            brands = [m.is_brand for m in (a[2], b[2] if b else None) if m is not None]
            if b is not None:
                attributes["brand_generic"] = True
            elif brands and brands[0]:
                attributes["is_brand"] = True
            if match.match == "fuzzy":
                attributes["similarity"] = round(match.similarity, 3)
            meta: Dict[str, Any] = {"attributes": attributes, "normalizations": entry.normalizations() or None}
            if b is not None:
                meta["fragments"] = [[doc[a[0]].idx, doc[a[1] - 1].idx + len(doc[a[1] - 1])], [doc[b[0]].idx, doc[b[1] - 1].idx + len(doc[b[1] - 1])]]
            new.append((Span(doc, start, end, label=self.label, kb_id=entry.kb_id), meta))
        doc._.mention_attrs = store
        doc.spans[self.spans_key] = kept + [span for span, _ in new]
        ensure_mention_ids(doc, self.spans_key)
        added = list(doc.spans[self.spans_key])[len(kept) :]
        for span, (_, meta) in zip(added, new):
            set_mention_attrs(doc, span.id_, **meta)


def drug_mentions(doc: Doc, spans_key: str = MENTIONS_KEY, label: str = DRUG_LABEL) -> List[Span]:
    return [s for s in get_mentions(doc, spans_key) if s.label_ == label]
