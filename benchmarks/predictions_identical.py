"""Do a pipeline's predictions today equal predictions saved earlier?

Issue 23 (a behaviour-preserving restructuring) re-runs the tagger whose
predictions were saved before the change and compares, doc by doc, the
mention spans (character offsets and label), the span ids and the
confidences (to 1e-5). Exit status 1 on any difference.

    flock /work/notes/heavy.lock nice -n 5 .venv/bin/python benchmarks/predictions_identical.py \
        training/ade_cpu_step250 corpus/test.spacy training/preds/step250_test.spacy [--limit N]
"""
import argparse
import json
import sys
import time

import spacy

from spacy_clinie.extensions import get_mentions
from spacy_clinie.readers import load_docs, unannotated


def mentions(doc) -> list:
    return [
        (s.start_char, s.end_char, s.label_, s.id_, round(float((s._.attributes or {}).get("confidence", -1.0)), 5))
        for s in get_mentions(doc)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("gold", help="the corpus the saved predictions were made on (its texts are re-run)")
    parser.add_argument("saved", help="predictions saved before the change (.spacy)")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    nlp = spacy.load(args.model)
    gold = load_docs(args.gold, nlp)
    saved = load_docs(args.saved, nlp)
    if args.limit:
        gold, saved = gold[: args.limit], saved[: args.limit]
    start = time.perf_counter()
    new = list(nlp.pipe(unannotated(nlp, gold), batch_size=args.batch_size))
    elapsed = time.perf_counter() - start
    diffs = []
    n_spans = 0
    for old_doc, new_doc in zip(saved, new):
        if old_doc.text != new_doc.text:
            diffs.append({"doc": new_doc._.doc_id, "reason": "text differs (saved predictions of another corpus?)"})
            continue
        a, b = mentions(old_doc), mentions(new_doc)
        n_spans += len(b)
        if a != b:
            diffs.append({"doc": new_doc._.doc_id, "only_saved": sorted(set(a) - set(b))[:5], "only_new": sorted(set(b) - set(a))[:5]})
    result = {"docs": len(new), "spans": n_spans, "docs_differing": len(diffs), "seconds": round(elapsed, 1), "identical": not diffs}
    print(json.dumps(result))
    for d in diffs[:10]:
        print(json.dumps(d), file=sys.stderr)
    return 0 if not diffs else 1


if __name__ == "__main__":
    sys.exit(main())
