"""Issue 19, cost: words/s of the tagger with and without the reaction
verifier after it, interleaved in one process on the same cores (rounds
alternate the order), over the first N TAC test sections.

    python benchmarks/reaction_verifier_cost.py training/ade_cpu12/model-best training/verifier/tuned corpus/test.spacy --n 60 --rounds 3
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
    nlp.add_pipe("reaction_verifier", source=spacy.load(args.verifier))
    gold = load_docs(args.gold)[: args.n]
    words = sum(len(d) for d in gold)
    times = {"tagger": [], "tagger+verifier": []}
    for r in range(args.rounds):
        order = ["tagger", "tagger+verifier"] if r % 2 == 0 else ["tagger+verifier", "tagger"]
        for name in order:
            disable = ["reaction_verifier"] if name == "tagger" else []
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
