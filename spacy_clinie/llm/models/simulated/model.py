"""A SIMULATED annotator for planning, not a language model.

It answers clinie.ADECorrect prompts from hidden gold annotation with set,
seeded error rates, so the SALA loop can be run at chosen annotator
qualities and a user can read off which quality (so which class of real
LLM) adaptation needs to pay off (issue 20). It reads the gold of the unit
each prompt asks about (``Prompt.unit``); it never looks at the tagger's
prediction or the demonstrations. Never ship it in a pipeline.
"""
import json
import random
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from spacy.tokens import Doc

from ....scoring import prf
from ...types import Response

CharSpan = Tuple[int, int, str]  # character start, end, label within the unit
_WORD = re.compile(r"\w+(?:[-']\w+)*")


class SimulatedAnnotator:
    """Gold answers degraded at seeded rates, per prompt unit:

    - ``miss_rate``: each gold span is left out with this probability;
    - ``boundary_rate``: each kept span has one edge moved by one word
      (grown into a neighbouring word, or shrunk when it has several);
    - ``spurious_rate``: a spurious span (a 1-3 word candidate string of the
      prompt that overlaps no gold span) is added with this probability,
      then again with the same probability, and so on (geometric count).

    The same unit text with the same seed always gets the same answer,
    whatever the order of the prompts."""

    def __init__(
        self,
        gold: Sequence[Doc],
        *,
        spans_key: str = "mentions",
        miss_rate: float = 0.0,
        spurious_rate: float = 0.0,
        boundary_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        for name, rate, top in (("miss_rate", miss_rate, 1.0), ("boundary_rate", boundary_rate, 1.0), ("spurious_rate", spurious_rate, 0.95)):
            if not 0.0 <= rate <= top:
                raise ValueError(f"clinie.SimulatedAnnotator: {name} must be between 0 and {top}, got {rate}")
        if not gold:
            raise ValueError("clinie.SimulatedAnnotator needs gold docs to answer from (none given)")
        self.miss_rate, self.spurious_rate, self.boundary_rate = miss_rate, spurious_rate, boundary_rate
        self.seed = seed
        self._docs: List[Tuple[str, List[CharSpan]]] = []
        for doc in gold:
            spans = doc.spans[spans_key] if spans_key in doc.spans else []
            self._docs.append((doc.text, sorted({(s.start_char, s.end_char, s.label_) for s in spans})))
        self._cache: Dict[str, List[CharSpan]] = {}

    def gold_spans(self, unit: str) -> List[CharSpan]:
        """Gold spans of ``unit`` (offsets within it), from the first gold
        doc whose text contains it; a unit that is in no gold doc is an
        error: the simulation only answers about the texts it holds."""
        if unit not in self._cache:
            for text, spans in self._docs:
                pos = text.find(unit)
                if pos >= 0:
                    end = pos + len(unit)
                    self._cache[unit] = [(a - pos, b - pos, lab) for a, b, lab in spans if a >= pos and b <= end]
                    break
            else:
                raise ValueError(f"clinie.SimulatedAnnotator: the unit {unit[:80]!r} is in none of its {len(self._docs)} gold docs")
        return self._cache[unit]

    def answer(self, unit: str, candidates: Sequence[str] = ()) -> List[Tuple[str, str]]:
        """The (string, label) pairs this annotator gives for ``unit``."""
        rng = random.Random(f"{self.seed}\x00{unit}")
        words = [(m.start(), m.end()) for m in _WORD.finditer(unit)]
        out: List[CharSpan] = []
        gold = self.gold_spans(unit)
        for a, b, lab in gold:
            if rng.random() < self.miss_rate:
                continue
            if rng.random() < self.boundary_rate:
                a, b = _move_edge(words, a, b, rng)
            out.append((a, b, lab))
        labels = sorted({lab for _, _, lab in gold}) or ["AdverseReaction"]
        pool = [(unit.find(c), c) for c in candidates if 1 <= len(c.split()) <= 3 and c in unit]
        while rng.random() < self.spurious_rate:
            free = [(p, c) for p, c in pool if not any(p < b and a < p + len(c) for a, b, _ in gold + out)]
            if not free:
                break
            pos, text = rng.choice(free)
            out.append((pos, pos + len(text), rng.choice(labels)))
        return [(unit[a:b], lab) for a, b, lab in sorted(set(out))]

    def generate(self, prompt: object) -> Response:
        unit = getattr(prompt, "unit", None)
        if unit is None:
            raise ValueError("clinie.SimulatedAnnotator answers clinie.ADECorrect prompts only (the prompt carries no unit text)")
        schema = getattr(prompt, "json_schema", None) or {}
        pairs = self.answer(unit, list((schema.get("properties") or {}).keys()))
        return Response("\n".join(json.dumps({t: lab}, ensure_ascii=False) for t, lab in pairs) or "{}")

    def __call__(self, prompts: Iterable[Iterable[object]]) -> Iterable[Iterable[str]]:
        return [[self.generate(p) for p in doc_prompts] for doc_prompts in prompts]


def _move_edge(words: List[Tuple[int, int]], a: int, b: int, rng: random.Random) -> Tuple[int, int]:
    """Grow or shrink the span ``[a, b)`` by one word at one edge."""
    inside = [w for w in words if w[0] >= a and w[1] <= b]
    before = [w for w in words if w[1] <= a]
    after = [w for w in words if w[0] >= b]
    moves = []
    if before:
        moves.append((before[-1][0], b))
    if after:
        moves.append((a, after[0][1]))
    if len(inside) > 1:
        moves += [(inside[1][0], b), (a, inside[-2][1])]
    return rng.choice(moves) if moves else (a, b)


def annotator_scores(answers: Sequence[Tuple[Sequence[Tuple[int, int, str]], Sequence[Tuple[int, int, str]]]]) -> Dict[str, float]:
    """Strict micro P/R/F1 of annotations against gold, over ``(predicted,
    gold)`` span-key lists per unit (the annotator-quality axis)."""
    tp = n_pred = n_gold = 0
    for pred, gold in answers:
        p, g = set(map(tuple, pred)), set(map(tuple, gold))
        tp += len(p & g)
        n_pred += len(p)
        n_gold += len(g)
    s = prf((tp, n_pred, tp, n_gold))
    return {"p": round(s["p"], 4), "r": round(s["r"], 4), "f": round(s["f"], 4), "tp": tp, "fp": n_pred - tp, "fn": n_gold - tp}
