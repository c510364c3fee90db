"""Seed 004's TACO (task as context) coding as a spacy-llm task: the LLM
sees a sentence and the MedDRA terms the linker suggests for its mentions,
and answers ``{"Term": ["mention", ...]}`` in the order of the list, with
"none" for terms the text does not support. Answers are distilled by regex
when they are not clean JSON; each mention the LLM assigns to a term gets
that term's code (``span._.meddra``), the rest keep the linker's choice.
Runs after ``clinie_meddra_linker`` (it needs ``span._.meddra_candidates``).
"""
import json
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from rapidfuzz import process
from spacy.tokens import Doc, Span
from spacy_llm.registry import registry

from ....extensions import register_extensions, set_mention_attrs
from ...confidence import units
from ...jinja import load_template
from ...types import Prompt

_TERM = re.compile(r'"((?:[^"\\]|\\.)+)"\s*:\s*\[([^\]]*)\]?')
_ITEM = re.compile(r'"((?:[^"\\]|\\.)*)"')
NONE = "none"


def parse_taco(text: str) -> Optional[Dict[str, List[str]]]:
    """``{term: [mention, ...]}`` from a TACO answer; clean JSON first, then
    every ``"Term": [...]`` pair found by regex (seed 004's distillation).
    ``None`` when nothing usable is there."""
    text = str(text).strip().strip("`")
    try:
        data = json.loads(text, strict=False)
        if isinstance(data, dict):
            return {str(k): [str(x) for x in (v if isinstance(v, list) else [v]) if isinstance(x, (str, int, float))] for k, v in data.items()}
    except ValueError:
        pass
    out = {m.group(1): _ITEM.findall(m.group(2)) for m in _TERM.finditer(text)}
    return out or None


class MeddraTacoTask:
    def __init__(self, *, spans_key: str, labels: Sequence[str], max_terms: int, max_unit_tokens: int, definition: str, template: str, system: str, constrain: bool) -> None:
        register_extensions()
        self.spans_key = spans_key
        self.labels = list(labels)
        self.max_terms = max_terms
        self.max_unit_tokens = max_unit_tokens
        self.definition = definition
        self.constrain = constrain
        self._template = load_template(template)
        self._system = system

    # ------------------------------------------------------------ units

    def _mentions(self, doc: Doc, start: int, end: int) -> List[Span]:
        spans = doc.spans[self.spans_key] if self.spans_key in doc.spans else []
        return [s for s in spans if s.start >= start and s.end <= end and s.label_ in self.labels and (s._.meddra_candidates or s._.meddra)]

    def suggested(self, mentions: Sequence[Span]) -> List[Dict[str, Any]]:
        """Candidate PTs of the unit's mentions, best first, one per PT code."""
        seen: Dict[str, Dict[str, Any]] = {}
        for span in mentions:
            for cand in (span._.meddra_candidates or span._.meddra or []):
                key = str(cand.get("meddra_pt_id") or cand.get("meddra_pt"))
                if cand.get("meddra_pt") and key not in seen:
                    seen[key] = dict(cand)
        return list(seen.values())[: self.max_terms]

    def select(self, doc: Doc) -> List[Tuple[int, int]]:
        return [(s, e) for s, e in units(doc, self.max_unit_tokens) if self._mentions(doc, s, e)]

    def render(self, doc: Doc, start: int, end: int) -> Prompt:
        mentions = self._mentions(doc, start, end)
        terms = [c["meddra_pt"] for c in self.suggested(mentions)]
        text = doc[start:end].text.strip()
        schema = None
        if self.constrain:
            options = sorted({m.text for m in mentions}) + [NONE]
            schema = {
                "type": "object",
                "properties": {t: {"type": "array", "items": {"enum": options}, "minItems": 1, "maxItems": 4} for t in terms},
                "required": terms,
                "additionalProperties": False,
            }
        prompt = self._template.render(text=text, terms=terms, definition=self.definition)
        return Prompt(prompt.strip() + "\n", system=self._system, json_schema=schema)

    def generate_prompts(self, docs: Iterable[Doc], context_length: Optional[int] = None) -> Iterable[Tuple[Iterable[Prompt], Iterable[Doc]]]:
        for doc in docs:
            yield [self.render(doc, s, e) for s, e in self.select(doc)], [doc]

    # ------------------------------------------------------------ answers

    def apply(self, doc: Doc, selected: Sequence[Tuple[int, int]], responses: Sequence[Any]) -> None:
        stats = {"taco_prompted": len(selected), "taco_unparseable": 0, "taco_recoded": 0, "taco_unknown_terms": 0}
        for (start, end), response in zip(selected, responses):
            try:
                answer = parse_taco(response)
            except Exception:
                answer = None
            if answer is None:
                stats["taco_unparseable"] += 1
                continue
            mentions = self._mentions(doc, start, end)
            by_name = {c["meddra_pt"].lower(): c for c in self.suggested(mentions)}
            for term, said in answer.items():
                cand = by_name.get(term.strip().lower())
                if cand is None:  # LINK: exact name first, then a near-identical spelling
                    hit = process.extractOne(term.strip().lower(), list(by_name), score_cutoff=90)
                    cand = by_name[hit[0]] if hit else None
                if cand is None:
                    stats["taco_unknown_terms"] += 1
                    continue
                said_l = {s.strip().lower() for s in said if s and s.strip().lower() != NONE}
                for span in mentions:
                    if span.text.lower() in said_l:
                        code = {k: cand[k] for k in ("meddra_pt", "meddra_pt_id", "meddra_llt", "meddra_llt_id") if k in cand}
                        if (span._.meddra or [{}])[0].get("meddra_pt_id") != code.get("meddra_pt_id"):
                            stats["taco_recoded"] += 1
                        span._.meddra = [code]
                        set_mention_attrs(doc, span.id_, attributes={**(span._.attributes or {}), "meddra_source": "llm"})
        doc._.llm_corrections = {**(doc._.llm_corrections or {}), **stats}

    def parse_responses(self, shards: Iterable[Iterable[Doc]], responses: Iterable[Iterable[Any]]) -> Iterable[Doc]:
        for doc_shards, doc_responses in zip(shards, responses):
            doc = list(doc_shards)[0]
            self.apply(doc, self.select(doc), list(doc_responses))
            yield doc


@registry.llm_tasks("clinie.MeddraTaco.v1")
def make_meddra_taco_task(
    spans_key: str = "mentions",
    labels: List[str] = ["AdverseReaction"],  # noqa: B006 (spaCy config default, copied)
    max_terms: int = 10,
    max_unit_tokens: int = 64,
    definition: str = "An adverse event symptom is a sign, symptom or disease the text reports as an effect of the drug.",
    template: str = "meddra_taco.v1.jinja",
    system: str = "You are an intelligent clinical language model that codes adverse events to MedDRA.",
    constrain: bool = True,
) -> MeddraTacoTask:
    """Optional LLM MedDRA coding (seed 004, TACO) over the linker's top
    candidates; put it after clinie_meddra_linker in an ``llm`` component
    with any clinie LLM backend."""
    return MeddraTacoTask(
        spans_key=spans_key, labels=labels, max_terms=max_terms, max_unit_tokens=max_unit_tokens,
        definition=definition, template=template, system=system, constrain=constrain,
    )
