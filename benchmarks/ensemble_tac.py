"""Voting ensembles on a TAC split (issue 10): every member alone and the
ensemble under several voting rules, from ONE run of the members (the
members' predictions do not depend on the rule), with the inference cost.

    # members from `clinie kfold train`, or any trained taggers:
    python benchmarks/ensemble_tac.py corpus/test.spacy \
        --members training/kfold/fold0/model/model-best ... training/kfold/fold4/model/model-best \
        --voting hard --voting soft:0.5 --voting soft:0.3 --voting weighted_soft:0.5 \
        --output-dir training/preds/kfold_test
    # or a saved ensemble pipeline (clinie kfold assemble):
    python benchmarks/ensemble_tac.py corpus/test.spacy --ensemble training/kfold/ensemble_hard --voting hard

Each rule is NAME[:THRESHOLD] (hard, soft, weighted_soft; for hard the
number is the votes a span needs, default a strict majority; weighted_soft
weighs members by meta["performance"]["mentions_f"], their dev F1, as seed
002 does). Predictions go to OUTPUT_DIR/<rule>.spacy and
OUTPUT_DIR/member<i>.spacy for `clinie evaluate --compare`.
"""
import argparse
import json
import time
from pathlib import Path

import spacy
from spacy.tokens import DocBin

from spacy_clinie.readers import load_docs, unannotated
from spacy_clinie.pipeline.ensemble import Ensemble
from spacy_clinie.scoring import evaluate_docs
from spacy_clinie.tokenizer import make_blank

LEVELS = ("mention_strict", "mention_relaxed", "reaction")


def load_ensemble(args: argparse.Namespace):
    if args.ensemble:
        nlp = spacy.load(args.ensemble)
        ens = next(p for _, p in nlp.pipeline if isinstance(p, Ensemble))
        return nlp, ens
    nlp = make_blank()
    ens = nlp.add_pipe("clinie_ensemble", config={"voting": "hard"})
    for path in args.members:
        ens.add_member(spacy.load(path))
    return nlp, ens


def summary(gold, preds):
    scores = evaluate_docs(gold, preds, levels=LEVELS)
    return {k: {m: round(scores[k]["micro"][m], 4) for m in "prf"} for k in LEVELS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gold")
    parser.add_argument("--members", nargs="+", default=[])
    parser.add_argument("--ensemble", default=None, help="a saved pipeline with a clinie_ensemble")
    parser.add_argument("--voting", action="append", default=None, help="NAME[:THRESHOLD], repeatable")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--gpu-id", type=int, default=-1)
    args = parser.parse_args()
    if args.gpu_id >= 0:
        spacy.require_gpu(args.gpu_id)
    if bool(args.members) == bool(args.ensemble):
        parser.error("give --members or --ensemble")
    nlp, ens = load_ensemble(args)
    rules = args.voting or ["hard", "soft:0.5"]
    gold = load_docs(args.gold)
    words = sum(len(d) for d in gold)
    docs = list(unannotated(nlp, gold))
    out_dir = Path(args.output_dir) if args.output_dir else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)

    # run each member once, timed; batches as nlp.pipe would send them
    names = ens.member_names
    per_member = {n: [] for n in names}
    seconds = {n: 0.0 for n in names}
    runners = dict(zip(names, ens._members()))
    for i in range(0, len(docs), args.batch_size):
        batch = docs[i : i + args.batch_size]
        for n in names:
            t = time.perf_counter()
            per_member[n].extend(runners[n].predict(batch))
            seconds[n] += time.perf_counter() - t
    total = sum(seconds.values())
    result = {"words": words, "members": {}, "ensemble": {}, "seconds": {n: round(s, 1) for n, s in seconds.items()}}
    print(f"{args.gold}: {len(gold)} docs, {words} words; {len(names)} members")

    def annotate(predictions, **cfg):
        saved = dict(ens.cfg)
        ens.cfg.update(cfg)
        try:
            preds = list(unannotated(nlp, gold))
            ens.set_annotations(preds, predictions)
        finally:
            ens.cfg.clear()
            ens.cfg.update(saved)
        return preds

    header = f"{'system':<24} {'strict P/R/F1':<22} {'relaxed F1':<11} {'reaction P/R/F1':<22} words/s"
    print(header)

    def row(name, s, wps):
        ms, mr, re_ = s["mention_strict"], s["mention_relaxed"], s["reaction"]
        print(f"{name:<24} {ms['p']:.3f}/{ms['r']:.3f}/{ms['f']:.3f}    {mr['f']:.3f}       {re_['p']:.3f}/{re_['r']:.3f}/{re_['f']:.3f}    {wps:,.0f}")

    for n in names:
        preds = annotate([per_member[n]], voting="hard", min_votes=1, weights={})
        s = summary(gold, preds)
        result["members"][n] = {**s, "words_per_second": round(words / seconds[n])}
        row(n, s, words / seconds[n])
        if out_dir:
            DocBin(docs=preds, store_user_data=True).to_disk(out_dir / f"{n}.spacy")
    weights = {}
    for n in names:
        pipeline = ens.pipelines.get(n)
        perf = (pipeline.meta.get("performance") or {}) if pipeline is not None else {}
        weights[n] = float(perf.get("mentions_f", 1.0))
    for rule in rules:
        method, _, thr = rule.partition(":")
        cfg = {"voting": method, "threshold": 0.5, "min_votes": None}
        if method == "hard":
            cfg["min_votes"] = int(thr) if thr else None
        elif thr:
            cfg["threshold"] = float(thr)
        if method == "weighted_soft":
            cfg["weights"] = weights
        preds = annotate([per_member[n] for n in names], **cfg)
        s = summary(gold, preds)
        result["ensemble"][rule] = {**s, "words_per_second": round(words / total)}
        row(f"ensemble {rule}", s, words / total)
        if out_dir:
            DocBin(docs=preds, store_user_data=True).to_disk(out_dir / f"{rule.replace(':', '_')}.spacy")
    if "weighted_soft" in " ".join(rules):
        result["weights"] = weights
    print(json.dumps(result))


if __name__ == "__main__":
    main()
