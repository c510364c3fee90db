"""Run a trained tagger pipeline on a TAC split: words/second, predictions
saved as .spacy, and the TAC-style scores (reaction level, mention
strict/relaxed against the projected gold).

    python benchmarks/tagger_tac.py training/ade_cpu/model-best corpus/test.spacy \
        --output training/preds/ade_cpu_test.spacy [--n-process 2]

Compare two saved prediction files with significance tests:
    clinie evaluate corpus/test.spacy A.spacy --compare B.spacy
"""
import argparse
import json
import time

import spacy
from spacy.tokens import DocBin

from spacy_clinie.readers import load_docs, unannotated
from spacy_clinie.extensions import copy_doc_meta
from spacy_clinie.scoring import evaluate_docs, format_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("gold")
    parser.add_argument("--output", required=True)
    parser.add_argument("--n-process", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--gpu-id", type=int, default=-1)
    parser.add_argument("--plain-text", action="store_true", help="run on the bare texts, without doc._.section etc.")
    args = parser.parse_args()
    if args.gpu_id >= 0:
        spacy.require_gpu(args.gpu_id)
    nlp = spacy.load(args.model)
    gold = load_docs(args.gold)
    words = sum(len(d) for d in gold)
    start = time.perf_counter()
    inputs = unannotated(nlp, gold)
    if args.plain_text:  # no section, as for notes that have none
        inputs = (nlp.make_doc(d.text) for d in gold)
    preds = list(nlp.pipe(inputs, batch_size=args.batch_size, n_process=args.n_process))
    elapsed = time.perf_counter() - start
    for g, p in zip(gold, preds):
        copy_doc_meta(g, p)
    DocBin(docs=preds, store_user_data=True).to_disk(args.output)
    scores = evaluate_docs(gold, preds, levels=("mention_strict", "mention_relaxed", "reaction"))
    print(f"{args.model}: {len(gold)} docs, {words} words in {elapsed:.0f}s = {words / elapsed:,.0f} words/s (n_process={args.n_process})")
    print(format_table(scores))
    print(json.dumps({"words_per_second": round(words / elapsed), **{k: {m: round(scores[k]["micro"][m], 4) for m in "prf"} for k in ("mention_strict", "mention_relaxed", "reaction")}}))


if __name__ == "__main__":
    main()
