"""``clinie_drug_ade_linker``: which drug caused each reaction, as ``doc._.relations``.

Writes one relation per (reaction, drug) link in the representation of
``clinie_relation_linker`` and the writers::

    {"id": "R3", "label": "ADE-Drug", "head": <reaction mention id>,
     "tail": <drug mention id>, "score": 0.5, "method": "rule_nearest",
     "predicted_by": <this pipe's name>}

so DocBin, the TAC XML and brat writers and ``clinie pipe`` JSONL carry
them. Two sources, and each link says which made it (``method``):

- ``relation_linker``: an upstream ``clinie_relation_linker`` (named in
  ``linker``) trained on drug–reaction relations. Where it is confident
  (``linker_min_score``), its decision stands: a ``linker_positive`` label
  makes a link with the linker's probability as score, a
  ``linker_negative`` label vetoes the pair.
- the rule, everywhere else: within one sentence, a reaction is linked to
  the nearest drug mention (``rule = "nearest"``; ties go to the drug
  before the reaction, as in "started X … developed Y"), to the nearest
  drug and the drugs listed with it ("X, Y and Z": ``"coordinated"``) or to
  every drug (``"all"``), unless ConText flagged the reaction or the drug
  (``reaction_skip_flags`` / ``drug_skip_flags`` in ``span._.attributes``,
  set by ``clinie_context_attributes``: "no rash on lisinopril" links
  nothing), and never to a drug name inside the reaction's own words
  ("serotonin syndrome", "heparin-induced thrombocytopenia"). Its score
  is 1 / the number of drugs of the sentence it could link: how much the
  sentence leaves open which drug it was, not a probability.

The shipped setting (rule "all", no linker) is the one that won on the
EU-ADR folds (benchmarks/RESULTS.md, issue 25).
"""
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from spacy.language import Language
from spacy.tokens import Doc, Span

from ..errors import Errors
from ..extensions import MENTIONS_KEY, ensure_mention_ids, get_mentions, register_extensions
from .relation_linker import PREDICTED_BY

ADE_DRUG = "ADE-Drug"
RULES = ("nearest", "coordinated", "all", "none")
# tokens that may separate the drugs of one list: "X, Y and/or Z", "X plus Y"
COORDINATION = {",", "and", "or", "/", "&", "plus", "+"}
METHOD_LINKER = "relation_linker"
CONTEXT_SKIP = ["is_negated", "is_hypothetical"]


@Language.factory(
    "clinie_drug_ade_linker",
    requires=["doc.spans", "token.is_sent_start"],
    assigns=["doc._.relations"],
    default_config={
        "spans_key": MENTIONS_KEY,
        "label": ADE_DRUG,
        "reaction_labels": ["AdverseReaction"],
        "drug_labels": ["Drug"],
        "rule": "all",
        "max_distance": 0,
        "reaction_skip_flags": CONTEXT_SKIP,
        "drug_skip_flags": CONTEXT_SKIP,
        "linker": None,
        "linker_positive": [],
        "linker_negative": [],
        "linker_min_score": 0.5,
    },
)
def make_drug_ade_linker(
    nlp: Language,
    name: str,
    spans_key: str,
    label: str,
    reaction_labels: List[str],
    drug_labels: List[str],
    rule: str,
    max_distance: int,
    reaction_skip_flags: List[str],
    drug_skip_flags: List[str],
    linker: Optional[str],
    linker_positive: List[str],
    linker_negative: List[str],
    linker_min_score: float,
) -> "DrugAdeLinker":
    """``linker`` names a ``clinie_relation_linker`` earlier in the pipeline
    (null: rule only); ``linker_positive`` / ``linker_negative`` are its
    labels that mean "this drug caused this reaction" (e.g. EU-ADR ``PA``,
    n2c2 ``ADE-Drug``) / "it did not" (``FA``, ``NA``). ``max_distance``
    (tokens, 0 = the whole sentence) bounds the rule."""
    return DrugAdeLinker(
        name,
        spans_key=spans_key,
        label=label,
        reaction_labels=reaction_labels,
        drug_labels=drug_labels,
        rule=rule,
        max_distance=max_distance,
        reaction_skip_flags=reaction_skip_flags,
        drug_skip_flags=drug_skip_flags,
        linker=linker,
        linker_positive=linker_positive,
        linker_negative=linker_negative,
        linker_min_score=linker_min_score,
    )


class DrugAdeLinker:
    """Drug → reaction links from a relation linker where it is trusted and
    a sentence rule elsewhere. Stateless: its settings come from the config."""

    def __init__(
        self,
        name: str = "clinie_drug_ade_linker",
        *,
        spans_key: str = MENTIONS_KEY,
        label: str = ADE_DRUG,
        reaction_labels: Iterable[str] = ("AdverseReaction",),
        drug_labels: Iterable[str] = ("Drug",),
        rule: str = "all",
        max_distance: int = 0,
        reaction_skip_flags: Iterable[str] = CONTEXT_SKIP,
        drug_skip_flags: Iterable[str] = CONTEXT_SKIP,
        linker: Optional[str] = None,
        linker_positive: Iterable[str] = (),
        linker_negative: Iterable[str] = (),
        linker_min_score: float = 0.5,
    ) -> None:
        register_extensions()
        if rule not in RULES:
            raise ValueError(Errors.E103.format(name=name, rules=RULES, rule=rule))
        if max_distance < 0:
            raise ValueError(Errors.E104.format(name=name, max_distance=max_distance))
        if not 0.0 <= linker_min_score <= 1.0:
            raise ValueError(Errors.E105.format(name=name, linker_min_score=linker_min_score))
        if linker and not (linker_positive or linker_negative):
            raise ValueError(Errors.E106.format(name=name, linker=linker))
        self.name = name
        self.spans_key = spans_key
        self.label = label
        self.reaction_labels = set(reaction_labels)
        self.drug_labels = set(drug_labels)
        self.rule = rule
        self.max_distance = max_distance
        self.reaction_skip_flags = list(reaction_skip_flags)
        self.drug_skip_flags = list(drug_skip_flags)
        self.linker = linker
        self.linker_positive = set(linker_positive)
        self.linker_negative = set(linker_negative)
        self.linker_min_score = linker_min_score

    # ------------------------------------------------------------ deciding

    def _linker_decisions(self, doc: Doc) -> Dict[Tuple[str, str], Tuple[bool, float]]:
        """(reaction id, drug id) -> (link?, probability) for the pairs the
        linker labelled with a trusted score; the best label wins a pair."""
        out: Dict[Tuple[str, str], Tuple[bool, float]] = {}
        if not self.linker:
            return out
        for rel in doc._.relations or []:
            if rel.get(PREDICTED_BY) != self.linker:
                continue
            positive = rel["label"] in self.linker_positive
            if not positive and rel["label"] not in self.linker_negative:
                continue
            score = float(rel.get("score") if rel.get("score") is not None else 1.0)
            if score < self.linker_min_score:
                continue
            key = (rel["head"], rel["tail"])
            if key not in out or score > out[key][1]:
                out[key] = (positive, score)
        return out

    def _flagged(self, span: Span, flags: List[str]) -> bool:
        attrs = span._.attributes or {}
        return any(attrs.get(flag) is True for flag in flags)

    def _sentence_drugs(self, doc: Doc, drugs: List[Span]) -> Dict[int, List[Span]]:
        if not doc.has_annotation("SENT_START"):
            raise ValueError(Errors.E147.format(name=self.name, doc=doc._.doc_id or doc.text[:40]))
        out: Dict[int, List[Span]] = {}
        for drug in drugs:
            out.setdefault(drug.sent.start, []).append(drug)
        return out

    @staticmethod
    def _distance(a: Span, b: Span) -> int:
        if a.start < b.end and b.start < a.end:
            return 0
        return b.start - a.end if a.end <= b.start else a.start - b.end

    def predict(self, doc: Doc) -> List[Tuple[Span, Span, float, str]]:
        """``(reaction, drug, score, method)`` links. Does not modify the doc
        (mentions must have ids: see ``set_annotations``)."""
        mentions = get_mentions(doc, self.spans_key)
        reactions = [s for s in mentions if s.label_ in self.reaction_labels]
        drugs = [s for s in mentions if s.label_ in self.drug_labels]
        if not reactions or not drugs:
            return []
        decided = self._linker_decisions(doc)
        by_sent = self._sentence_drugs(doc, drugs) if self.rule != "none" else {}
        links: List[Tuple[Span, Span, float, str]] = []
        for reaction in reactions:
            for drug in drugs:
                verdict = decided.get((reaction.id_, drug.id_))
                if verdict and verdict[0]:
                    links.append((reaction, drug, verdict[1], METHOD_LINKER))
            if self.rule == "none" or self._flagged(reaction, self.reaction_skip_flags):
                continue
            in_sent = [
                d
                for d in by_sent.get(reaction.sent.start, [])
                if (reaction.id_, d.id_) not in decided
                and not self._flagged(d, self.drug_skip_flags)
                and not (d.start < reaction.end and reaction.start < d.end)
                and (not self.max_distance or self._distance(reaction, d) <= self.max_distance)
            ]
            if not in_sent:
                continue
            score = round(1.0 / len(in_sent), 4)
            if self.rule in ("nearest", "coordinated"):
                # ties go to the drug before the reaction
                nearest = min(in_sent, key=lambda d: (self._distance(reaction, d), d.start > reaction.start, d.start))
                in_sent = self._listed_with(doc, nearest, in_sent) if self.rule == "coordinated" else [nearest]
            links.extend((reaction, d, score, f"rule_{self.rule}") for d in in_sent)
        return links

    @staticmethod
    def _listed_with(doc: Doc, drug: Span, drugs: List[Span]) -> List[Span]:
        """``drug`` and the drugs of ``drugs`` in one list with it: neighbours
        separated only by commas, "and", "or", slashes."""
        ordered = sorted(drugs, key=lambda d: d.start)
        i = ordered.index(drug)
        lo = hi = i

        def joined(a: Span, b: Span) -> bool:
            return all(t.lower_ in COORDINATION for t in doc[a.end : b.start])

        while lo > 0 and joined(ordered[lo - 1], ordered[lo]):
            lo -= 1
        while hi + 1 < len(ordered) and joined(ordered[hi], ordered[hi + 1]):
            hi += 1
        return ordered[lo : hi + 1]

    # ------------------------------------------------------------ writing

    def __call__(self, doc: Doc) -> Doc:
        ensure_mention_ids(doc, self.spans_key)  # relations refer to mention ids
        self.set_annotations(doc, self.predict(doc))
        return doc

    def pipe(self, stream: Iterable[Doc], batch_size: int = 128) -> Iterable[Doc]:
        for doc in stream:
            yield self(doc)

    def set_annotations(self, doc: Doc, links: List[Tuple[Span, Span, float, str]]) -> None:
        """Idempotent: this pipe's earlier links are replaced; other
        relations (the relation linker's own, gold ones) stay, and a link
        equal to one of them (same head, tail and label) is not added twice."""
        kept = [r for r in doc._.relations or [] if r.get(PREDICTED_BY) != self.name]
        seen: Set[Tuple[str, str, str]] = {(r["head"], r["tail"], r["label"]) for r in kept}
        used = {str(r.get("id")) for r in kept}
        relations: List[Dict[str, Any]] = list(kept)
        n = 0
        for reaction, drug, score, method in links:
            key = (reaction.id_, drug.id_, self.label)
            if key in seen:
                continue
            seen.add(key)
            n += 1
            while f"R{n}" in used:
                n += 1
            relations.append(
                {
                    "id": f"R{n}",
                    "label": self.label,
                    "head": reaction.id_,
                    "tail": drug.id_,
                    "score": round(float(score), 4),
                    "method": method,
                    PREDICTED_BY: self.name,
                }
            )
        doc._.relations = relations
