"""Exact-lookup dictionary baseline on TAC 2017 (the README's reference point).

Every ADR string annotated in the train split is looked up in each test
section (case-insensitive, word boundaries, longest first) and scored with
``clinie``'s evaluator. The shared corpus README reports reaction-level F1
0.71 and projected mention strict F1 0.78 for this baseline, so it also checks
that the evaluator implements the published definitions.

    python benchmarks/dictionary_baseline.py corpus/train.spacy corpus/dev.spacy corpus/test.spacy
"""
import json
import sys
import time

from spacy_clinie.convert import load_docs
from spacy_clinie.extensions import MENTIONS_KEY
from spacy_clinie.readers.tac_onsides import project_strings
from spacy_clinie.scoring import evaluate_docs, format_table


def main(*paths: str) -> None:
    *train_paths, test_path = paths
    strings = set()
    for p in train_paths:
        for doc in load_docs(p):
            strings.update(r["str"].lower() for r in doc._.reactions if r.get("start") is not None)
    gold = load_docs(test_path)
    start = time.time()
    preds = []
    for g in gold:
        doc = g.copy()
        spans = [doc.char_span(a, b, label="AdverseReaction", alignment_mode="expand") for a, b, _ in project_strings(doc.text, list(strings))]
        doc.spans[MENTIONS_KEY] = [s for s in spans if s is not None]
        doc._.mention_attrs = {}
        preds.append(doc)
    elapsed = time.time() - start
    scores = evaluate_docs(gold, preds, levels=("mention_strict", "mention_relaxed", "reaction"))
    print(f"dictionary of {len(strings)} train strings, {len(gold)} test docs, {elapsed:.1f}s")
    print(format_table(scores))
    print(json.dumps({k: scores[k]["micro"] for k in ("mention_strict", "mention_relaxed", "reaction")}))


if __name__ == "__main__":
    main(*sys.argv[1:])
