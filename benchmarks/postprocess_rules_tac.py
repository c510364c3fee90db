"""Section-level post-processing rules on saved tagger predictions (dev-time
analysis for issue 4; none of them is in the pipeline because none helped).

TAC marks each ADR string once per section, so two rule families suggest
themselves: make a section's predictions consistent per string (label every
occurrence, or keep a string only where most occurrences were predicted),
and use how often a string was annotated in the training sections where it
occurs (drop strings the annotators rarely marked, add strings they nearly
always marked). The priors come only from the files after the predictions.

    python benchmarks/postprocess_rules_tac.py corpus/dev.spacy \
        training/preds/ade_cpu_adam_12ep_dev.spacy corpus/train.spacy
"""
import argparse
import json
from collections import Counter, defaultdict
from typing import Callable, Dict, Iterable, List, Sequence

from spacy.tokens import Doc, Span

from spacy_clinie.readers import load_docs
from spacy_clinie.extensions import MENTIONS_KEY
from spacy_clinie.readers.tac_onsides import project_strings
from spacy_clinie.tags import ADR_LABEL
from spacy_clinie.scoring import evaluate_docs, normalize_string

LEVELS = ("mention_strict", "mention_relaxed", "reaction")


class Priors:
    """Per string: in how many training sections it occurs, and in how many
    it is annotated (contiguous entries)."""

    def __init__(self, docs: Iterable[Doc]) -> None:
        docs = list(docs)
        self.texts = [d.text for d in docs]
        self.annotated: Counter = Counter()
        for d in docs:
            strings = {normalize_string(r["str"]) for r in d._.reactions or [] if r.get("start") is not None}
            self.annotated.update(strings)
        self._occurs: Dict[str, int] = {}

    def occurs(self, s: str) -> int:
        if s not in self._occurs:
            self._occurs[s] = sum(1 for t in self.texts if project_strings(t, [s]))
        return self._occurs[s]


def _with_spans(pred: Doc, spans: Sequence[Span]) -> Doc:
    doc = pred.copy()
    doc.spans[MENTIONS_KEY] = [Span(doc, s.start, s.end, label=ADR_LABEL) for s in sorted(spans, key=lambda s: (s.start, s.end))]
    return doc


def _add_occurrences(doc: Doc, strings: Iterable[str], existing: Sequence[Span]) -> List[Span]:
    taken = {i for s in existing for i in range(s.start, s.end)}
    new = []
    for a, b, _ in project_strings(doc.text, list(strings)):
        span = doc.char_span(a, b, label=ADR_LABEL, alignment_mode="expand")
        if span is None or taken.intersection(range(span.start, span.end)):
            continue
        taken.update(range(span.start, span.end))
        new.append(span)
    return new


def propagate(pred: Doc) -> Doc:
    spans = list(pred.spans[MENTIONS_KEY])
    return _with_spans(pred, spans + _add_occurrences(pred, {normalize_string(s.text) for s in spans}, spans))


def majority(threshold: float) -> Callable[[Doc], Doc]:
    def rule(pred: Doc) -> Doc:
        by_string = defaultdict(list)
        for span in pred.spans[MENTIONS_KEY]:
            by_string[normalize_string(span.text)].append(span)
        keep = []
        for s, spans in by_string.items():
            n = len(project_strings(pred.text, [s])) or len(spans)
            if len(spans) / n >= threshold:
                keep.extend(spans)
        return _with_spans(pred, keep)

    return rule


def drop_rare(priors: Priors, min_sections: int, max_fraction: float) -> Callable[[Doc], Doc]:
    def rule(pred: Doc) -> Doc:
        keep = []
        for span in pred.spans[MENTIONS_KEY]:
            s = normalize_string(span.text)
            n = priors.occurs(s)
            if not (n >= min_sections and priors.annotated[s] / n <= max_fraction):
                keep.append(span)
        return _with_spans(pred, keep)

    return rule


def add_frequent(priors: Priors, min_sections: int, min_fraction: float) -> Callable[[Doc], Doc]:
    strings = [s for s, k in priors.annotated.items() if k >= min_sections and k / max(priors.occurs(s), 1) >= min_fraction]

    def rule(pred: Doc) -> Doc:
        spans = list(pred.spans[MENTIONS_KEY])
        return _with_spans(pred, spans + _add_occurrences(pred, strings, spans))

    return rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gold")
    parser.add_argument("pred")
    parser.add_argument("priors", nargs="+", help="training .spacy files for the string priors")
    args = parser.parse_args()
    gold, preds = load_docs(args.gold), load_docs(args.pred)
    priors = Priors(d for path in args.priors for d in load_docs(path))
    rules: Dict[str, Callable[[Doc], Doc]] = {"none": lambda d: d, "propagate": propagate}
    for t in (0.34, 0.5):
        rules[f"majority >= {t}"] = majority(t)
    for n in (2, 3, 5):
        for f in (0.0, 0.1, 0.2, 0.3):
            rules[f"drop: >= {n} sections, annotated <= {f}"] = drop_rare(priors, n, f)
    for n in (1, 2, 3):
        for f in (0.5, 0.7, 0.9):
            rules[f"add: >= {n} sections, annotated >= {f}"] = add_frequent(priors, n, f)
    for name, rule in rules.items():
        scores = evaluate_docs(gold, [rule(p) for p in preds], levels=LEVELS)
        print(json.dumps({"rule": name, **{k: [round(scores[k]["micro"][m], 4) for m in "prf"] for k in LEVELS}}))


if __name__ == "__main__":
    main()
