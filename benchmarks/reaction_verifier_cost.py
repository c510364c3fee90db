"""Issue 19, cost: words/s of the tagger with and without the reaction
verifier after it, interleaved in one process on the same cores (rounds
alternate the order), over the first N TAC test sections.

    python benchmarks/reaction_verifier_cost.py training/ade_cpu12/model-best training/verifier/tuned corpus/test.spacy --n 60 --rounds 3
    # the packaged pipeline (every enabled component) with and without it
    python benchmarks/reaction_verifier_cost.py training/en_clinie_ade_v19 - corpus/test.spacy --n 40 --rounds 3
"""
import argparse
import json
import statistics
import time

import spacy

from spacy_clinie.readers import load_docs, unannotated


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("tagger")
    ap.add_argument("verifier")
    ap.add_argument("gold")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    nlp = spacy.load(args.tagger)
    if args.verifier != "-":  # "-": MODEL is a packaged pipeline that has it
        nlp.add_pipe("reaction_verifier", source=spacy.load(args.verifier))
    gold = load_docs(args.gold)[: args.n]
    words = sum(len(d) for d in gold)
    times = {"without verifier": [], "with verifier": []}
    for r in range(args.rounds):
        order = ["without verifier", "with verifier"] if r % 2 == 0 else ["with verifier", "without verifier"]
        for name in order:
            disable = ["reaction_verifier"] if name == "without verifier" else []
            with nlp.select_pipes(disable=disable):
                t0 = time.perf_counter()
                for _ in nlp.pipe(unannotated(nlp, gold), batch_size=16):
                    pass
                times[name].append(time.perf_counter() - t0)
    out = {
        name: {"words_per_s_median": words / statistics.median(t), "seconds": t, "words": words, "docs": len(gold)}
        for name, t in times.items()
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
