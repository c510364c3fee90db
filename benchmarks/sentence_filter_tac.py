"""Sentence classifier and sentence filter on a TAC split (issue 10).

classify: the classifier alone on the split's sentence units (a unit is
positive when it overlaps a gold mention): P/R/F1 of ADE at several
thresholds, accuracy, units/s and words/s.

    python benchmarks/sentence_filter_tac.py classify training/sentence_filter_bow/model-best corpus/test.spacy

tag: a tagger pipeline on the split, with or without a clinie_sentence_filter
in front (--filter CLASSIFIER): words/s, mention strict/relaxed and reaction
scores, and the filter's own numbers (share of tokens the tagger still
encodes, share of gold mentions inside kept units = the recall ceiling).
Predictions are saved for `clinie evaluate --compare`.

    python benchmarks/sentence_filter_tac.py tag training/ade_cpu/model-best corpus/test.spacy \
        --output training/preds/ade_cpu_test.spacy
    python benchmarks/sentence_filter_tac.py tag training/ade_cpu/model-best corpus/test.spacy \
        --filter training/sentence_filter_bow/model-best --threshold 0.1 \
        --output training/preds/ade_cpu_filter_bow_test.spacy
    clinie evaluate corpus/test.spacy training/preds/ade_cpu_test.spacy \
        --compare training/preds/ade_cpu_filter_bow_test.spacy

speed: words/s of the tagger with and without the filter, interleaved in
one process on the same cores (rounds alternate the order), over the first
N sections; prints every round's time, the median and the spread.

    python benchmarks/sentence_filter_tac.py speed training/ade_cpu/model-best corpus/test.spacy \
        --filter training/sentence_filter_bow/model-best --threshold 0.1 --limit 60 --rounds 5
"""
import argparse
import json
import statistics
import time

import spacy
from spacy.tokens import DocBin
from spacy.training import Example

from spacy_clinie.readers import load_docs, unannotated
from spacy_clinie.scoring.components import score_sentence_filter
from spacy_clinie.readers.sentence_corpus import sentence_examples
from spacy_clinie.scoring import evaluate_docs, format_table


def classify(args: argparse.Namespace) -> None:
    nlp = spacy.load(args.classifier)
    gold = load_docs(args.gold)
    examples = sentence_examples(gold, nlp)
    words = sum(len(eg.reference) for eg in examples)
    start, cpu = time.perf_counter(), time.process_time()
    preds = list(nlp.pipe((eg.predicted for eg in examples), batch_size=args.batch_size))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    truth = [eg.reference.cats["ADE"] >= 0.5 for eg in examples]
    scores = [p.cats.get("ADE", 0.0) for p in preds]
    n_pos = sum(truth)
    print(f"{args.classifier} on {args.gold}: {len(examples)} units ({n_pos} with an ADE mention, {len(examples) - n_pos} without), {words} words")
    print(f"{len(examples) / elapsed:,.0f} units/s, {words / elapsed:,.0f} words/s ({elapsed:.1f}s); {words / cpu:,.0f} words per CPU second")
    rows = []
    print("threshold   P       R       F1      acc     kept    NO_ADE F1  macro F1")
    for t in args.thresholds:
        pred = [s >= t for s in scores]
        tp = sum(p and g for p, g in zip(pred, truth))
        p = tp / sum(pred) if any(pred) else 0.0
        r = tp / n_pos if n_pos else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        acc = sum(p_ == g for p_, g in zip(pred, truth)) / len(truth)
        kept = sum(pred) / len(pred)
        tn = sum(not p_ and not g for p_, g in zip(pred, truth))
        n_neg_pred, n_neg = len(pred) - sum(pred), len(truth) - n_pos
        pn, rn = (tn / n_neg_pred if n_neg_pred else 0.0), (tn / n_neg if n_neg else 0.0)
        fn_ = 2 * pn * rn / (pn + rn) if pn + rn else 0.0
        rows.append(
            {"threshold": t, "p": round(p, 4), "r": round(r, 4), "f": round(f, 4), "acc": round(acc, 4), "kept_units": round(kept, 4),
             "no_ade_f": round(fn_, 4), "macro_f": round((f + fn_) / 2, 4)}
        )  # fmt: skip
        print(f"{t:<11} {p:.4f}  {r:.4f}  {f:.4f}  {acc:.4f}  {kept:.4f}  {fn_:.4f}     {(f + fn_) / 2:.4f}")
    print(json.dumps({"units": len(examples), "positive": n_pos, "words_per_second": round(words / elapsed), "words_per_cpu_second": round(words / cpu), "thresholds": rows}))


def add_filter(nlp: spacy.Language, classifier: str, threshold: float) -> None:
    """Put a clinie_sentence_filter with ``classifier`` in front of the tagger."""
    nlp.add_pipe("clinie_sentence_filter", name="sentence_filter", first=True, config={"classifier": classifier, "threshold": threshold})
    nlp.get_pipe("sentence_filter").initialize(nlp=nlp)


def tag(args: argparse.Namespace) -> None:
    nlp = spacy.load(args.model)
    first = nlp.pipe_names[0] if nlp.pipe_names else None
    if args.filter:
        add_filter(nlp, args.filter, args.threshold)
    gold = load_docs(args.gold)
    if args.limit:
        gold = gold[: args.limit]
    words = sum(len(d) for d in gold)
    start, cpu = time.perf_counter(), time.process_time()
    preds = list(nlp.pipe(unannotated(nlp, gold), batch_size=args.batch_size))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if args.output:
        DocBin(docs=preds, store_user_data=True).to_disk(args.output)
    scores = evaluate_docs(gold, preds, levels=("mention_strict", "mention_relaxed", "reaction"))
    label = f"{args.model} + filter {args.filter} (t={args.threshold})" if args.filter else f"{args.model} (first pipe {first}), no filter"
    # wall time depends on what else the machine runs; CPU seconds (all
    # threads of this process) much less
    print(f"{label}: {len(gold)} docs, {words} words in {elapsed:.0f}s = {words / elapsed:,.0f} words/s; {cpu:.0f} CPU s = {words / cpu:,.0f} words per CPU second")
    print(format_table(scores))
    result = {"words_per_second": round(words / elapsed), "words_per_cpu_second": round(words / cpu), **{k: {m: round(scores[k]["micro"][m], 4) for m in "prf"} for k in ("mention_strict", "mention_relaxed", "reaction")}}
    if args.filter:
        f = score_sentence_filter([Example(p, g) for p, g in zip(preds, gold)])
        print("filter: " + ", ".join(f"{k} {v:.4f}" for k, v in f.items()))
        result["filter"] = {k: round(v, 4) for k, v in f.items()}
    print(json.dumps(result))


def speed(args: argparse.Namespace) -> None:
    nlp = spacy.load(args.model)
    add_filter(nlp, args.filter, args.threshold)
    gold = load_docs(args.gold)[: args.limit or None]
    words = sum(len(d) for d in gold)
    names = ("no filter", f"filter t={args.threshold}")
    times = {n: [] for n in names}
    for _ in nlp.pipe(unannotated(nlp, gold[:2]), batch_size=args.batch_size):  # warm-up, not timed
        pass
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            disable = ["sentence_filter"] if name == "no filter" else []
            with nlp.select_pipes(disable=disable):
                t0 = time.perf_counter()
                for _ in nlp.pipe(unannotated(nlp, gold), batch_size=args.batch_size):
                    pass
                times[name].append(time.perf_counter() - t0)
    out = {"docs": len(gold), "words": words, "rounds": args.rounds}
    for name, ts in times.items():
        wps = sorted(words / t for t in ts)
        out[name] = {"words_per_s_median": round(statistics.median(wps)), "words_per_s_min": round(wps[0]), "words_per_s_max": round(wps[-1]), "seconds": [round(t, 1) for t in ts]}
        print(f"{name:<16} median {statistics.median(wps):,.0f} words/s (min {wps[0]:,.0f}, max {wps[-1]:,.0f}) over {args.rounds} rounds")
    ratios = [a / b for a, b in zip(times[names[0]], times[names[1]])]
    out["speedup_median"] = round(statistics.median(ratios), 3)
    out["speedup_range"] = [round(min(ratios), 3), round(max(ratios), 3)]
    print(f"speed-up (per round, no filter time / filter time): median {statistics.median(ratios):.2f}, range {min(ratios):.2f}-{max(ratios):.2f}")
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("classify", help="the sentence classifier alone on sentence units")
    c.add_argument("classifier")
    c.add_argument("gold")
    c.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5, 0.7])
    c.add_argument("--batch-size", type=int, default=64)
    t = sub.add_parser("tag", help="a tagger with or without the filter in front")
    t.add_argument("model")
    t.add_argument("gold")
    t.add_argument("--filter", default=None, help="sentence classifier pipeline to put in front")
    t.add_argument("--threshold", type=float, default=0.1)
    t.add_argument("--output", default=None)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--limit", type=int, default=0, help="only the first N docs (speed runs)")
    t.add_argument("--gpu-id", type=int, default=-1)
    sp = sub.add_parser("speed", help="words/s with and without the filter, interleaved rounds")
    sp.add_argument("model")
    sp.add_argument("gold")
    sp.add_argument("--filter", required=True, help="sentence classifier pipeline to put in front (timed with and without it)")
    sp.add_argument("--threshold", type=float, default=0.1)
    sp.add_argument("--limit", type=int, default=60, help="the first N docs")
    sp.add_argument("--rounds", type=int, default=5)
    sp.add_argument("--batch-size", type=int, default=8)
    sp.add_argument("--gpu-id", type=int, default=-1)
    args = parser.parse_args()
    if getattr(args, "gpu_id", -1) >= 0:
        spacy.require_gpu(args.gpu_id)
    {"classify": classify, "tag": tag, "speed": speed}[args.command](args)


if __name__ == "__main__":
    main()
