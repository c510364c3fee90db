"""Exact-lookup dictionary baseline on TAC 2017 (the shared README's reference point).

Every ADR string annotated in the train split (train + dev) is looked up in
each test section (case-insensitive, word boundaries, longest first) and the
predictions are scored with clinie's evaluator. The shared corpus README
reports reaction-level F1 0.71 and projected mention strict F1 0.78 for this
baseline, so the run also checks that the evaluator implements those
definitions.

    python benchmarks/dictionary_baseline.py corpus/test.spacy corpus/train.spacy corpus/dev.spacy \
        --output training/dictionary_test.spacy
"""
import argparse
import json
import time
from typing import Iterable, List, Set

from spacy.tokens import Doc, DocBin

from spacy_clinie.readers import load_docs
from spacy_clinie.extensions import MENTIONS_KEY
from spacy_clinie.readers.tac_onsides import project_strings
from spacy_clinie.tags import ADR_LABEL
from spacy_clinie.scoring import evaluate_docs, format_table


def train_strings(docs: Iterable[Doc]) -> Set[str]:
    """The lowercased contiguous ADR strings annotated in ``docs``."""
    return {r["str"].lower() for d in docs for r in d._.reactions or [] if r.get("start") is not None}


def dictionary_predictions(gold: Iterable[Doc], strings: Set[str]) -> List[Doc]:
    """Copies of ``gold`` whose mentions are every occurrence of ``strings``."""
    preds = []
    for g in gold:
        doc = g.copy()
        doc._.mention_attrs, doc._.reactions, doc._.relations = {}, None, []
        found = project_strings(doc.text, list(strings))
        spans = [doc.char_span(a, b, label=ADR_LABEL, alignment_mode="expand", span_id=f"M{i + 1}") for i, (a, b, _) in enumerate(found)]
        doc.spans[MENTIONS_KEY] = [s for s in spans if s is not None]
        preds.append(doc)
    return preds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("test")
    parser.add_argument("train", nargs="+")
    parser.add_argument("--output", help="write the predictions here (.spacy)")
    args = parser.parse_args()
    strings = train_strings(d for path in args.train for d in load_docs(path))
    gold = load_docs(args.test)
    start = time.perf_counter()
    preds = dictionary_predictions(gold, strings)
    elapsed = time.perf_counter() - start
    words = sum(len(d) for d in gold)
    scores = evaluate_docs(gold, preds, levels=("mention_strict", "mention_relaxed", "reaction"))
    print(f"dictionary of {len(strings)} train strings; {len(gold)} test docs; {words / elapsed:,.0f} words/s")
    print(format_table(scores))
    print(json.dumps({k: round(scores[k]["micro"]["f"], 4) for k in ("mention_strict", "mention_relaxed", "reaction")}))
    if args.output:
        DocBin(docs=preds, store_user_data=True).to_disk(args.output)


if __name__ == "__main__":
    main()
