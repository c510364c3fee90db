"""Coordination-expansion candidates: discontiguous reaction strings.

A contiguous tagger cannot spell "muscle cramps" out of "muscle pain and
cramps", yet TAC 2017 lists it (about 8% of the gold reaction strings are
discontiguous). This module proposes such strings from the words around
the tagger's own reaction spans (the *seeds*), so that a verifier can score
them. The constructions are those that produce the discontiguous gold
strings of the TAC train split (mined with ``benchmarks/coordination_candidates.py``):

- ``shared_left``: the seed's modifier is shared by the conjuncts that
  follow it: "muscle pain and cramps" -> "muscle cramps"; "increased ALT
  and AST" -> "increased AST"; "swelling of the lips, tongue, or throat"
  -> "swelling of the throat"; "chest discomfort/pain" -> "chest pain".
- ``shared_right``: the seed's head is shared by the conjuncts before it:
  "skeletal and visceral malformations" -> "skeletal malformations";
  "epidural or spinal hematoma" -> "epidural hematoma".
- ``internal`` (off by default): the seed holds the coordination itself:
  "decreased neutrophil and platelet counts" -> "decreased neutrophil counts".
- ``list``: a list after the seed ("(", "including", "such as",
  "characterized by", ...) names members of a class or kinds of one
  reaction: "injection site reactions (erythema, pain)" -> "injection site
  erythema" (the class head "reactions" is dropped); "Rash (includes
  generalized, macular)" -> "Rash generalized".
- ``abbreviation`` (off by default): a parenthesised short form in or after the seed:
  "alanine aminotransferase (ALT) elevations" -> "alanine aminotransferase
  elevations" and "ALT elevations"; "QTc (Bazett) prolongation" -> "QTc
  prolongation".

Every candidate is a possible false positive: the generator only proposes,
with the construction (``kind``) as a feature for the verifier. A candidate
that would be contiguous in the text (the tagger could have predicted it)
is not proposed.
"""

import bisect
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokens import Doc, Span
from spacy.util import registry

from ..extensions import MENTIONS_KEY, get_mentions, register_extensions, set_mention_attrs
from ..scoring import ADR_LABEL, normalize_string, span_text
from ..util import is_abbreviation

Fragment = Tuple[int, int]

# Words that join conjuncts; "/" and "," are tokens of their own.
CONJUNCTIONS = ("and", "or", "nor", "&", "and/or")
# Words that end a conjunct: function words, verbs of reporting, quantifiers.
STOPWORDS = (
    "a an the of in on at to for with without by from as into than that which who whom whose"
    " is are was were be been being has have had may might can could should would will shall do does did"
    " not no also other others both either all any some such each more most less least very"
    " patients patient subjects treatment treated therapy dose doses group placebo"
    " including include includes included e.g. i.e. see especially particularly"
    " occurred occurring observed reported seen developed experienced"
    " if when while after before during within between per vs vs. versus"
    " this these those it its their there although though however because since"
    " monitor discontinue consider fatal outcomes cases case risk etc etc."
).split()
# spaCy's English stop words, less the conjunctions (they join conjuncts)
# and the words that modify reactions ("serious", "first", "least").
_STOPS = (
    frozenset(STOP_WORDS | set(STOPWORDS))
    - set(CONJUNCTIONS)
    - {
        "serious",
        "first",
        "least",
        "less",
        "more",
        "most",
        "full",
        "empty",
        "front",
        "back",
        "top",
        "bottom",
        "side",
    }
)
# Heads that name a class of reactions; a list after them gives the members
# ("injection site reactions (erythema)" -> "injection site erythema").
GENERIC_HEADS = (
    "reaction reactions event events effect effects adverse disorder disorders"
    " manifestation manifestations complication complications symptom symptoms"
    " abnormality abnormalities toxicity toxicities finding findings"
    " tumor tumors tumour tumours neoplasm neoplasms"
).split()
# What may open a list after a seed, besides "(" and ":".
LIST_INTRODUCERS = (
    "including",
    "include",
    "includes",
    "included",
    "e.g.",
    "such as",
    "were characterized by",
    "characterized by",
    "consisting of",
    "like",
)
QUALIFIERS = ("both", "either")
# Endings of adjectives that modify a reaction head ("ciliary", "visceral",
# "hemorrhagic", "cutaneous", "erosive"): such a conjunct shares the head.
MODIFIER_SUFFIXES = ("al", "ary", "ic", "ous", "ive", "ular", "oid")
KINDS = ("shared_left", "shared_right", "internal", "list", "abbreviation")
# internal and abbreviation spelled no gold string of the TAC train split
# with gold seeds (29 candidates): off unless asked for
DEFAULT_KINDS = ("shared_left", "shared_right", "list")


@dataclass(frozen=True)
class CoordinationCandidate:
    """A proposed reaction string: its character ``fragments`` in doc.text
    (in text order, more than one), the ``text`` they spell (joined by
    spaces, as ``scoring.span_text`` spells a discontiguous span), the
    construction it came from and the seed span's character offsets."""

    fragments: Tuple[Fragment, ...]
    text: str
    kind: str
    seed: Fragment
    seed_text: str = field(default="", compare=False)

    @property
    def start_char(self) -> int:
        return self.fragments[0][0]

    @property
    def end_char(self) -> int:
        return self.fragments[-1][1]


@dataclass(frozen=True)
class _Unit:
    """A word of the text (tokens joined without whitespace, "long-term",
    "5.0*ULN"), a separator ("," "/" "and" "or"), a bracket, or a break."""

    start: int  # first token
    end: int  # token after the last
    start_char: int
    end_char: int
    text: str
    kind: str  # word | stop | num | sep | open | close | punct | break


def _units(doc: Doc) -> List[_Unit]:
    units: List[_Unit] = []
    cur: Optional[List[int]] = None  # [start_tok, end_tok]
    doc_text = doc.text  # Doc.text joins every token: read it once

    def flush() -> None:
        nonlocal cur
        if cur is None:
            return
        a, b = cur
        start_char, end_char = doc[a].idx, doc[b - 1].idx + len(doc[b - 1])
        text = doc_text[start_char:end_char]
        low = text.lower()
        if low in CONJUNCTIONS:
            kind = "sep"
        elif low in _STOPS:
            kind = "stop"
        elif not any(c.isalpha() for c in text):
            kind = "num"
        else:
            kind = "word"
        units.append(_Unit(a, b, start_char, end_char, text, kind))
        cur = None

    for tok in doc:
        text = tok.text
        if tok.is_space:
            kind = "break"
        elif text in ("(", "["):
            kind = "open"
        elif text in (")", "]"):
            kind = "close"
        elif text in (",", "/"):
            kind = "sep"
        elif text in (";", ":", ".", "!", "?", '"', "•") or (
            tok.is_punct and text.strip("-–—") == "" and tok.whitespace_
        ):
            kind = "punct"
        else:
            kind = ""
        if kind:
            flush()
            units.append(_Unit(tok.i, tok.i + 1, tok.idx, tok.idx + len(text), text, kind))
            continue
        if cur is not None and not doc[cur[1] - 1].whitespace_:
            cur[1] = tok.i + 1
        else:
            flush()
            cur = [tok.i, tok.i + 1]
        if tok.whitespace_:
            flush()
    flush()
    return units


def _unit_range(
    units: Sequence[_Unit], starts: List[int], start_char: int, end_char: int
) -> Optional[Tuple[int, int]]:
    """The units a character span covers (those it overlaps)."""
    i = bisect.bisect_right(starts, start_char) - 1
    i = max(i, 0)
    while i < len(units) and units[i].end_char <= start_char:
        i += 1
    j = i
    while j < len(units) and units[j].start_char < end_char:
        j += 1
    if j <= i:
        return None
    return i, j


def _is_content(units: Sequence[_Unit], a: int, b: int) -> bool:
    return b > a and all(u.kind in ("word", "stop", "num") for u in units[a:b])


class _Builder:
    """Collects candidates for one doc: fragments are merged where only
    whitespace separates them and contiguous results are dropped."""

    def __init__(self, doc: Doc, units: Sequence[_Unit]) -> None:
        self.doc = doc
        self.text = doc.text
        self.units = units
        self.out: Dict[Tuple[Fragment, ...], CoordinationCandidate] = {}

    def add(self, pieces: List[Tuple[int, int]], kind: str, seed: Span) -> None:
        """``pieces`` are unit ranges [a, b) in text order."""
        frags: List[List[int]] = []
        for a, b in pieces:
            if b <= a:
                continue
            s, e = self.units[a].start_char, self.units[b - 1].end_char
            if frags and (s < frags[-1][1]):
                return  # overlapping pieces: not a valid spelling
            if frags and not self.text[frags[-1][1] : s].strip():
                frags[-1][1] = e
            else:
                frags.append([s, e])
        if len(frags) < 2:
            return
        key = tuple((s, e) for s, e in frags)
        if key in self.out:
            return
        text = " ".join(self.text[s:e] for s, e in key)
        self.out[key] = CoordinationCandidate(key, text, kind, (seed.start_char, seed.end_char), seed.text)


def _slashed(seps: Sequence[str]) -> bool:
    return list(seps) == ["/"]


def _chain_right(units: Sequence[_Unit], k: int, max_words: int) -> Tuple[List[Tuple[int, int]], List[str]]:
    """Conjuncts after unit ``k`` (a separator): ", X, Y and Z" -> X, Y, Z."""
    conjuncts: List[Tuple[int, int]] = []
    seps: List[str] = []
    n = len(units)
    while True:
        j = k
        run = []
        while j < n and units[j].kind == "sep":
            run.append(units[j].text.lower())
            j += 1
        if j == k or (seps and _slashed(run) != _slashed(seps)):
            break  # "spasms/twitching, pain": a slash chain ends at a comma
        seps.extend(run)
        c0 = j
        while j < n and units[j].kind == "word" and j - c0 < max_words:
            j += 1
        if j == c0 or (j < n and units[j].kind == "word"):
            break  # no conjunct, or one too long to be a conjunct
        conjuncts.append((c0, j))
        k = j
        if j >= n or units[j].kind != "sep" or any(w in CONJUNCTIONS for w in seps):
            break  # "X, Y and Z, W": the conjunction closed the chain at Z
    return conjuncts, seps


def _chain_left(
    units: Sequence[_Unit], k: int, max_words: int, first_words: int
) -> Tuple[List[Tuple[int, int]], List[str]]:
    """Conjuncts before unit ``k`` (exclusive; units[k-1] is a separator),
    nearest first: "X, Y and <seed>" -> Y, X. The leftmost conjunct keeps
    only its last ``first_words`` words (its start is ambiguous)."""
    conjuncts: List[Tuple[int, int]] = []
    seps: List[str] = []
    while True:
        j = k
        run = []
        while j > 0 and units[j - 1].kind == "sep":
            run.append(units[j - 1].text.lower())
            j -= 1
        if j == k or (conjuncts and (any(w in CONJUNCTIONS for w in run) or _slashed(run) != _slashed(seps))):
            break  # "A and B, C and <seed>": A and B are another chain
        seps.extend(run)
        c1 = j
        i = c1
        while i > 0 and units[i - 1].kind == "word" and c1 - i < max_words:
            i -= 1
        if i == c1:
            break
        if i > 0 and units[i - 1].kind == "sep":
            conjuncts.append((i, c1))
            k = i
            continue
        conjuncts.append((max(i, c1 - first_words), c1))
        break
    return conjuncts, seps


class CoordinationCandidates:
    """The callable ``clinie.CoordinationCandidates.v1`` returns: given a
    Doc and its seed spans, the expansion candidates (see the module doc)."""

    def __init__(
        self,
        *,
        max_conjunct_words: int = 3,
        first_conjunct_words: int = 1,
        require_conjunction: bool = True,
        skip_seeded_conjuncts: bool = True,
        kinds: Sequence[str] = DEFAULT_KINDS,
        max_list_items: int = 12,
        max_item_words: int = 3,
        generic_heads: Sequence[str] = GENERIC_HEADS,
        list_introducers: Sequence[str] = LIST_INTRODUCERS,
        modifier_suffixes: Sequence[str] = MODIFIER_SUFFIXES,
    ) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(
                f"unknown candidate kinds {sorted(unknown)}: use any of {', '.join(KINDS)}"
            )
        if max_conjunct_words < 1 or first_conjunct_words < 1 or max_item_words < 1:
            raise ValueError("max_conjunct_words, first_conjunct_words and max_item_words must be at least 1")
        self.max_words = max_conjunct_words
        self.first_words = first_conjunct_words
        self.require_conjunction = require_conjunction
        self.skip_seeded = skip_seeded_conjuncts
        self.kinds = set(kinds)
        self.max_items = max_list_items
        self.max_item_words = max_item_words
        self.generic_heads = {h.lower() for h in generic_heads}
        self.introducers = [tuple(i.lower().split()) for i in list_introducers]
        self.modifier_suffixes = tuple(s.lower() for s in modifier_suffixes)

    def __call__(self, doc: Doc, seeds: Iterable[Span]) -> List[CoordinationCandidate]:
        seeds = sorted({(s.start_char, s.end_char) for s in seeds})
        if not seeds:
            return []
        units = _units(doc)
        starts = [u.start_char for u in units]
        seeded: Set[Tuple[int, int]] = set()
        covered: Set[int] = set()
        ranges: List[Tuple[Span, Tuple[int, int]]] = []
        for a, b in seeds:
            r = _unit_range(units, starts, a, b)
            if r is None:
                continue
            seeded.add(r)
            covered.update(range(*r))
            span = doc.char_span(a, b, alignment_mode="expand")
            if span is not None:
                ranges.append((span, r))
        builder = _Builder(doc, units)
        for span, (s, e) in ranges:
            if "shared_left" in self.kinds or "shared_right" in self.kinds:
                self._coordination(units, span, s, e, covered, builder)
            if "internal" in self.kinds:
                self._internal(units, span, s, e, seeded, builder)
            if "list" in self.kinds:
                self._list(units, span, s, e, covered, builder)
            if "abbreviation" in self.kinds:
                self._abbreviation(units, span, s, e, builder)
        # a candidate that spells a seed's own string adds nothing
        text = doc.text
        seed_strings = {normalize_string(text[a:b]) for a, b in seeds}
        return [c for c in builder.out.values() if normalize_string(c.text) not in seed_strings]

    # ------------------------------------------------------------ rules

    def _conjunction_ok(self, seps: List[str]) -> bool:
        return not self.require_conjunction or any(s in CONJUNCTIONS or s == "/" for s in seps)

    def _run_before(self, units, k) -> List[str]:
        """The separators right before unit ``k``."""
        seps = []
        while k > 0 and units[k - 1].kind == "sep":
            seps.append(units[k - 1].text.lower())
            k -= 1
        return seps

    def _keep(
        self, units, conj: Tuple[int, int], rest: Tuple[int, int], covered: Set[int], modifier: bool = False
    ) -> bool:
        """A conjunct is kept unless a seed covers part of it (a reaction
        of its own: "abdominal pain, vomiting") or it repeats a word of the
        seed ("penile swelling, local swelling": a list of reactions). A
        ``modifier`` conjunct (before a shared head) of one adjective-like
        word is kept even when tagged: a tagger marks "ciliary" in "ciliary
        and conjunctival hyperemia" though it is no reaction alone."""
        a, b = conj
        adjective = modifier and b - a == 1 and units[a].text.lower().endswith(self.modifier_suffixes)
        if self.skip_seeded and not adjective and any(i in covered for i in range(a, b)):
            return False
        words = {u.text.lower() for u in units[rest[0] : rest[1]]}
        return not any(u.text.lower() in words for u in units[a:b])

    def _coordination(self, units, span, s, e, covered, builder) -> None:
        n = len(units)
        if "shared_left" in self.kinds and e < n and units[e].kind == "sep" and units[e - 1].kind == "word":
            conjuncts, _ = _chain_right(units, e, self.max_words)
            left = e - 1
            while left > s and units[left - 1].text.lower() in QUALIFIERS:
                left -= 1
            # the last conjunct is the one the conjunction introduces
            if (
                conjuncts
                and left > s
                and _is_content(units, s, left)
                and self._conjunction_ok(self._run_before(units, conjuncts[-1][0]))
            ):
                for conj in conjuncts:
                    if self._keep(units, conj, (s, e), covered):
                        builder.add([(s, left), conj], "shared_left", span)
                        # a conjunct of w words may replace the seed's last w
                        # ("elevations of alanine aminotransferase and
                        # aspartate aminotransferase")
                        w = conj[1] - conj[0]
                        if (
                            w > 1
                            and left - (w - 1) > s
                            and all(u.kind == "word" for u in units[left - (w - 1) : left])
                        ):
                            builder.add([(s, left - (w - 1)), conj], "shared_left", span)
        if "shared_right" in self.kinds and s > 0 and units[s - 1].kind == "sep" and units[s].kind == "word":
            conjuncts, _ = _chain_left(units, s, self.max_words, self.first_words)
            if (
                conjuncts
                and e > s + 1
                and _is_content(units, s + 1, e)
                and self._conjunction_ok(self._run_before(units, s))
            ):
                for conj in conjuncts:
                    if self._keep(units, conj, (s, e), covered, modifier=True):
                        builder.add([conj, (s + 1, e)], "shared_right", span)

    def _internal(self, units, span, s, e, seeded, builder) -> None:
        inner = [k for k in range(s + 1, e - 1) if units[k].kind == "sep"]
        if not inner:
            return
        first, last = inner[0], inner[-1]
        if units[first - 1].kind != "word" or units[last + 1].kind != "word":
            return
        conjuncts = [(first - 1, first)]
        k = first
        while k <= last:
            j = k
            while j < e and units[j].kind == "sep":
                j += 1
            c0 = j
            while j < e and units[j].kind == "word" and (j <= last or j == c0):
                j += 1
            if j == c0:
                return
            conjuncts.append((c0, j) if j <= last else (c0, c0 + 1))
            k = j
            if j > last:
                break
        left, right = (s, first - 1), (conjuncts[-1][1], e)
        if not (_is_content(units, *left) or left[0] == left[1]) or not (
            _is_content(units, *right) or right[0] == right[1]
        ):
            return
        seps = [units[k].text.lower() for k in range(first, last + 1) if units[k].kind == "sep"]
        if not self._conjunction_ok(seps):
            return
        for a, b in conjuncts:
            if self.skip_seeded and (a, b) in seeded:
                continue
            builder.add([left, (a, b), right], "internal", span)

    def _list_start(self, units, e) -> Optional[Tuple[int, bool]]:
        """Where a list opens after the seed's end ("(", "(including",
        ", including", "include", "e.g."): the first item's unit and whether
        the list is in parentheses."""
        n = len(units)
        k = e
        paren = introduced = False
        if k < n and units[k].kind == "open" and units[k].text == "(":
            paren = True
            k += 1
        elif k < n and units[k].text == ",":
            k += 1
        for intro in self.introducers:
            words = [u.text.lower() for u in units[k : k + len(intro)]]
            if tuple(words) == intro:
                k += len(intro)
                if k < n and units[k].text == ",":
                    k += 1
                introduced = True
                break
        if not (paren or introduced) or k >= n:
            return None
        return k, paren

    def _list(self, units, span, s, e, covered, builder) -> None:
        """Members listed after a class ("injection site reactions (pain,
        erythema)") or qualifiers of a single reaction ("rash (generalized,
        macular)"). Items a seed covers are skipped unless the class is a
        site ("injection site reactions including pain"): "hypersensitivity
        reactions (anaphylaxis, urticaria)" lists reactions, not kinds of
        hypersensitivity."""
        opened = self._list_start(units, e)
        if opened is None:
            return
        k, paren = opened
        base_end = e
        while base_end > s and units[base_end - 1].text.lower() in self.generic_heads:
            base_end -= 1
        if base_end == s or not _is_content(units, s, base_end):
            return
        generic = base_end < e
        site = units[base_end - 1].text.lower().endswith("site")
        if not generic and not paren:
            return  # "stomatitis, including aphthous stomatitis": a subtype list
        seed_words = {u.text.lower() for u in units[s:e]}
        max_words = self.max_item_words if generic else 1
        n = len(units)
        items = 0
        while k < n and items < self.max_items:
            j = k
            while j < n and units[j].kind == "word" and j - k < max_words:
                j += 1
            if j == k or (j < n and units[j].kind == "word"):
                break
            words = [u.text for u in units[k:j]]
            abbreviation = len(words) == 1 and (
                words[0].isupper() or is_abbreviation(words[0], _text(units, s, e))
            )
            repeats = any(w.lower() in seed_words for w in words)
            own_seed = any(i in covered for i in range(k, j))
            if not abbreviation and not repeats and len(words[0]) > 2 and (site or not own_seed):
                builder.add([(s, base_end), (k, j)], "list", span)
            items += 1
            if j < n and units[j].kind == "sep":
                while j < n and units[j].kind == "sep":
                    j += 1
                k = j
                continue
            break

    def _abbreviation(self, units, span, s, e, builder) -> None:
        """ "long form (SF) rest": spell it without the parentheses, and
        with the short form in place of the long one."""
        n = len(units)
        for o in range(s + 1, min(e + 1, n - 2)):
            if units[o].kind != "open":
                continue
            c = o + 1
            while c < n and c < o + 5 and units[c].kind != "close":
                c += 1
            if c >= n or units[c].kind != "close" or c == o + 1:
                continue
            inner = (o + 1, c)
            rest_end = e
            if e <= c + 1:
                # the seed stops at or inside the parenthesis: what follows
                # it ("(ALT) elevations of ...") up to two words
                rest_end = c + 1
                while rest_end < n and rest_end < c + 3 and units[rest_end].kind == "word":
                    rest_end += 1
            if rest_end == c + 1:
                return  # nothing follows the parenthesis
            if not _is_content(units, c + 1, rest_end) or not _is_content(units, s, o):
                return
            # the parenthesis dropped: "QTc (Bazett) prolongation" -> "QTc prolongation"
            builder.add([(s, o), (c + 1, rest_end)], "abbreviation", span)
            if c == o + 2 and units[o + 1].kind == "word":
                short = units[o + 1].text
                for a in range(o - 1, s - 1, -1):
                    long = _text(units, a, o)
                    if is_abbreviation(short, long) and long[0].lower() == short[0].lower():
                        builder.add([(s, a), inner, (c + 1, rest_end)], "abbreviation", span)
                        break
            return


def _text(units: Sequence[_Unit], a: int, b: int) -> str:
    return " ".join(u.text for u in units[a:b])


def coordination_candidates(doc: Doc, seeds: Iterable[Span], **settings) -> List[CoordinationCandidate]:
    """Expansion candidates for ``seeds`` (e.g. the tagger's reaction spans)
    with the default settings, or those given as keyword arguments (see
    ``make_coordination_candidates``)."""
    return CoordinationCandidates(**settings)(doc, seeds)


@registry.misc("clinie.CoordinationCandidates.v1")
def make_coordination_candidates(
    max_conjunct_words: int = 3,
    first_conjunct_words: int = 1,
    require_conjunction: bool = True,
    skip_seeded_conjuncts: bool = True,
    kinds: Sequence[str] = DEFAULT_KINDS,
    max_list_items: int = 12,
    max_item_words: int = 3,
) -> Callable[[Doc, Iterable[Span]], List[CoordinationCandidate]]:
    """A candidate generator for configs (a verifier's ``get_candidates``).

    max_conjunct_words: longest conjunct, in words ("urinary tract" is 2).
    first_conjunct_words: words kept of the leftmost conjunct before a seed,
        whose start the text does not mark ("severe skeletal and ...").
    require_conjunction: only chains with and/or/"/" (not commas alone).
    skip_seeded_conjuncts: a conjunct that is itself a seed is a reaction
        of its own ("abdominal pain and vomiting"), not part of the seed's.
    kinds: the constructions to use (see the module doc).
    max_list_items, max_item_words: bounds of a list after a seed.
    """
    return CoordinationCandidates(
        max_conjunct_words=max_conjunct_words,
        first_conjunct_words=first_conjunct_words,
        require_conjunction=require_conjunction,
        skip_seeded_conjuncts=skip_seeded_conjuncts,
        kinds=kinds,
        max_list_items=max_list_items,
        max_item_words=max_item_words,
    )


def add_candidate_spans(
    doc: Doc,
    candidates: Iterable[CoordinationCandidate],
    *,
    spans_key: str = MENTIONS_KEY,
    label: str = ADR_LABEL,
    source: str = "coordination",
) -> List[Span]:
    """Add candidates to ``doc.spans[spans_key]`` as ``label`` spans from
    the first to the last fragment, with ``span._.fragments`` (so scorers
    and the TAC XML / brat writers spell and export the fragments) and
    ``span._.attributes = {"source": source, "kind": cand.kind}``.
    A candidate whose string a span of ``label`` already spells, or that
    repeats an earlier candidate's string, is skipped. Returns the spans added."""
    register_extensions()
    existing = get_mentions(doc, spans_key)
    spelled = {normalize_string(span_text(s)) for s in existing if s.label_ == label}
    used = {s.id_ for s in existing if s.id_}
    new: List[Tuple[Span, CoordinationCandidate]] = []
    n = 0
    for cand in candidates:
        key = normalize_string(cand.text)
        if key in spelled:
            continue
        span = doc.char_span(cand.start_char, cand.end_char, label=label)
        if span is None:
            span = doc.char_span(cand.start_char, cand.end_char, label=label, alignment_mode="expand")
        if span is None:
            continue
        n += 1
        while f"C{n}" in used:
            n += 1
        used.add(f"C{n}")
        spelled.add(key)
        new.append((Span(doc, span.start, span.end, label=label, span_id=f"C{n}"), cand))
    if not new:
        return []
    doc.spans[spans_key] = existing + [span for span, _ in new]
    added = list(doc.spans[spans_key])[len(existing) :]
    for span, (_, cand) in zip(added, new):
        set_mention_attrs(
            doc,
            span.id_,
            fragments=[list(f) for f in cand.fragments],
            # one-word values: brat attributes cannot hold spaces
            attributes={"source": source, "kind": cand.kind},
        )
    return added
