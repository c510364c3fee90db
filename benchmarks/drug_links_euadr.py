"""EU-ADR: drug→disorder links of ``clinie_drug_ade_linker`` against the
co-occurrence and ConText baselines, on the folds of ``relations_euadr.py``.

Task: gold mentions given; a Disorder–Drug pair is a link when EU-ADR labels
it PA (``--positive PA,SA`` adds the speculative ones); every other pair
(NA, SA, FA, unlabelled) is not. A predicted link is right when its head
(Disorder) and tail (Drug) spans match a gold link. Systems, all on the same
five PMID-grouped folds (``relations_euadr.make_folds``, seed 0):

- ``cooccurrence``: every Disorder–Drug pair of the sentence.
- ``context``: ConText rules of ``relations_euadr.context_rules`` (a pair
  is PA unless either mention is negated or hypothetical).
- ``rule_nearest`` / ``rule_coordinated`` / ``rule_all``: the component's
  rule alone (ConText flags respected).
- ``rule_selected``: the rule that scores higher on the four
  training folds of each outer fold (no training involved).
- ``linker``: ``configs/relations_euadr.cfg`` trained on the four training
  folds (epochs chosen from ``--epochs`` by an inner cross-validation on
  them), its best label of each pair, PA → link.
- ``hybrid``: the component with that linker: where the linker's best label
  has probability >= t its decision stands (PA links, NA/SA/FA veto), else
  the rule; epochs, t and the rule are chosen together by the inner
  cross-validation. The outer test fold never takes part in any choice.

Pooled micro P/R/F1 over the five test folds, per-fold F1 mean and SD, and
paired approximate randomisation over sentences (``scoring.approximate_randomization``,
as ``clinie evaluate --compare``) of each system against co-occurrence and
ConText.

    HF_HUB_OFFLINE=1 flock /work/notes/heavy.lock nice -n 5 python benchmarks/drug_links_euadr.py \\
        --output training/drug_links_euadr.json
    python benchmarks/drug_links_euadr.py --no-linker    # rules and baselines only (seconds)
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from spacy.cli._util import parse_config_overrides  # noqa: E402
from spacy.language import Language  # noqa: E402
from spacy.tokens import Doc  # noqa: E402

import spacy_clinie  # noqa: E402,F401
from relations_euadr import context_rules, cooccurrence, make_folds, split_off, train_and_predict  # noqa: E402
from spacy_clinie.readers import load_docs  # noqa: E402
from spacy_clinie.extensions import MENTIONS_KEY  # noqa: E402
from spacy_clinie.pipeline.context import add_context_pipes  # noqa: E402
from spacy_clinie.pipeline.drug_ade_linker import ADE_DRUG, DrugAdeLinker  # noqa: E402
from spacy_clinie.readers.corpus import gold_mention_copy  # noqa: E402
from spacy_clinie.scoring import align_docs, approximate_randomization, evaluate_docs, unit_counts  # noqa: E402
from spacy_clinie.tokenizer import make_blank  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LINKER_PIPE = "relation_linker"  # its name in configs/relations_euadr.cfg
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.01)  # 1.01: the linker never decides
RULES = ("nearest", "coordinated", "all")


def as_links(doc: Doc, positive: Sequence[str], keep_linker: bool = False) -> Doc:
    """A copy of ``doc`` whose relations are its ``positive`` pairs as
    ``ADE-Drug`` links (head = Disorder, tail = Drug); with ``keep_linker``
    the relation linker's own predictions stay too."""
    out = doc.copy()
    spans = {s.id_: s for s in out.spans[MENTIONS_KEY]}
    rels = []
    for rel in doc._.relations or []:
        if keep_linker and rel.get("predicted_by") == LINKER_PIPE:
            rels.append(rel)
        elif rel["label"] in positive:
            head, tail = rel["head"], rel["tail"]
            if spans[head].label_ == "Drug":
                head, tail = tail, head
            rels.append({"id": f"G{len(rels) + 1}", "label": ADE_DRUG, "head": head, "tail": tail})
    out._.relations = rels
    return out


class Contexts:
    """Sentences, ConText flags and attributes on copies of docs, once per
    doc, in a pipeline of its own vocab."""

    def __init__(self) -> None:
        self.nlp = make_blank()
        add_context_pipes(self.nlp, sectionizer=False)

    def __call__(self, docs: Iterable[Doc]) -> List[Doc]:
        fresh = [Doc(self.nlp.vocab).from_bytes(d.to_bytes()) for d in docs]
        return list(self.nlp.pipe(fresh))


def component(rule: str, t: float = 2.0) -> DrugAdeLinker:
    """The component on EU-ADR's labels; with ``t`` <= 1 it trusts the
    linker's decisions of probability >= t (above 1: rule only)."""
    use_linker = t <= 1.0
    return DrugAdeLinker(
        "drug_ade_linker",
        reaction_labels=["Disorder"],
        drug_labels=["Drug"],
        rule=rule,
        linker=LINKER_PIPE if use_linker else None,
        linker_positive=["PA"] if use_linker else [],
        linker_negative=["NA", "SA", "FA"] if use_linker else [],
        linker_min_score=t if use_linker else 0.5,
    )


def apply(linker: DrugAdeLinker, docs: Sequence[Doc]) -> List[Doc]:
    """Copies of ``docs`` with only the component's links."""
    out = []
    for doc in docs:
        copy = doc.copy()
        linker(copy)
        copy._.relations = [r for r in copy._.relations if r.get("predicted_by") == linker.name]
        out.append(copy)
    return out


def f1(gold: Sequence[Doc], pred: Sequence[Doc]) -> float:
    return evaluate_docs(gold, pred, levels=("relation",))["relation"]["micro"]["f"]


def linker_only(docs: Sequence[Doc]) -> List[Doc]:
    """The linker's PA pairs as links."""
    out = []
    for doc in docs:
        copy = doc.copy()
        copy._.relations = [
            {"id": r["id"], "label": ADE_DRUG, "head": r["head"], "tail": r["tail"], "score": r.get("score"), "method": "relation_linker"}
            for r in doc._.relations or []
            if r.get("predicted_by") == LINKER_PIPE and r["label"] == "PA"
        ]
        out.append(copy)
    return out


def choose(
    config: Path, train: Sequence[Doc], positive: Sequence[str], epochs: Sequence[int], n_inner: int, seed: int, overrides: Dict, ctx: Contexts
) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Inner cross-validation on the training folds only: (best epochs for
    the linker alone, best (epochs, t, rule) for the hybrid), with the
    inner scores."""
    inner = make_folds(train, n_inner, seed)
    gold: List[Doc] = []
    preds: Dict[int, List[Doc]] = {e: [] for e in epochs}
    for held in inner:
        fit, dev = split_off(train, held)
        for e, docs in train_and_predict(config, fit, dev, seed, overrides, epochs).items():
            preds[e].extend(ctx(docs))
        gold.extend(as_links(d, positive) for d in dev)
    linker_scores = {e: f1(gold, linker_only(preds[e])) for e in epochs}
    hybrid_scores = {
        (e, t, rule): f1(gold, apply(component(rule, t), preds[e])) for e in epochs for t in THRESHOLDS for rule in RULES
    }
    best_linker = max(sorted(epochs), key=lambda e: linker_scores[e])
    best_hybrid = max(sorted(hybrid_scores), key=lambda k: hybrid_scores[k])
    return (
        {"epochs": best_linker, "inner_f": {str(k): v for k, v in linker_scores.items()}},
        {"epochs": best_hybrid[0], "t": best_hybrid[1], "rule": best_hybrid[2], "inner_f": {str(k): v for k, v in hybrid_scores.items()}},
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, nargs="?", default=ROOT / "corpus" / "euadr" / "EUADR_drug_disease.spacy")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "relations_euadr.cfg")
    parser.add_argument("--positive", default="PA", help="comma-separated EU-ADR labels that count as a link (PA; PA,SA)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--inner-folds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", default="5,10,20", help="linker epoch counts the inner cross-validation chooses from")
    parser.add_argument("--no-linker", action="store_true", help="rules and baselines only (no training)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="linker config override")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    positive = [p.strip() for p in args.positive.split(",") if p.strip()]
    epochs = sorted({int(e) for e in args.epochs.split(",") if e.strip()})
    overrides = parse_config_overrides([f"--{item}" for item in args.set])
    docs = load_docs(args.corpus)
    folds = make_folds(docs, args.folds, args.seed)
    ctx = Contexts()
    ctx_nlp = make_blank()
    add_context_pipes(ctx_nlp, sectionizer=False)
    names = ["cooccurrence", "context", "rule_nearest", "rule_coordinated", "rule_all", "rule_selected"] + ([] if args.no_linker else ["linker", "hybrid"])
    systems: Dict[str, List[Doc]] = {n: [] for n in names}
    per_fold: Dict[str, List[float]] = {n: [] for n in names}
    gold_all: List[Doc] = []
    chosen: List[Dict[str, Any]] = []
    n_links = sum(1 for d in docs for r in d._.relations if r["label"] in positive)
    n_pairs = sum(len(cooccurrence(d)._.relations) for d in docs)
    print(f"{len(docs)} sentences, {n_pairs} Disorder–Drug pairs, {n_links} links ({'+'.join(positive)}), folds {[len(f) for f in folds]}")
    start = time.time()
    for k, test_idx in enumerate(folds):
        train, test = split_off(docs, test_idx)
        gold = [as_links(d, positive) for d in test]
        train_gold = [as_links(d, positive) for d in train]
        train_ctx = ctx([gold_mention_copy(d) for d in train])
        rule_train = {rule: f1(train_gold, apply(component(rule), train_ctx)) for rule in RULES}
        best_rule = max(RULES, key=lambda r: rule_train[r])  # ties: the narrower rule (listed first)
        test_ctx = ctx([gold_mention_copy(d) for d in test])
        preds: Dict[str, List[Doc]] = {
            "cooccurrence": [as_links(cooccurrence(d), ["PA"]) for d in test],
            "context": [as_links(d, ["PA"]) for d in context_rules(ctx_nlp, test, uncertain=False)],
            "rule_nearest": apply(component("nearest"), test_ctx),
            "rule_coordinated": apply(component("coordinated"), test_ctx),
            "rule_all": apply(component("all"), test_ctx),
            "rule_selected": apply(component(best_rule), test_ctx),
        }
        fold_info: Dict[str, Any] = {"rule_train_f": rule_train, "rule": best_rule}
        if not args.no_linker:
            lk, hy = choose(args.config, train, positive, epochs, args.inner_folds, args.seed, overrides, ctx)
            need = sorted({lk["epochs"], hy["epochs"]})
            outer = train_and_predict(args.config, train, test, args.seed, overrides, need)
            preds["linker"] = linker_only(outer[lk["epochs"]])
            preds["hybrid"] = apply(component(hy["rule"], hy["t"]), ctx(outer[hy["epochs"]]))
            fold_info.update(linker=lk, hybrid=hy)
            print(f"  inner CV: linker {lk['epochs']} epochs; hybrid {hy['epochs']} epochs, t={hy['t']}, rule {hy['rule']}", flush=True)
        chosen.append(fold_info)
        for name, pred in preds.items():
            systems[name].extend(pred)
            per_fold[name].append(f1(gold, pred))
        gold_all.extend(gold)
        print(f"fold {k + 1}: rule chosen on train {best_rule} {rule_train}; " + ", ".join(f"{n} {per_fold[n][-1]:.3f}" for n in preds), flush=True)
    elapsed = time.time() - start
    results = {n: evaluate_docs(gold_all, p, levels=("relation",))["relation"]["micro"] for n, p in systems.items()}
    counts = {n: unit_counts(align_docs(gold_all, p), "relation") for n, p in systems.items()}
    significance = {
        f"{a} vs {b}": approximate_randomization(counts[a], counts[b], n_shuffles=10000, seed=0)
        for a in names
        for b in ("cooccurrence", "context")
        if a != b and not (a == "cooccurrence" and b == "context")
    }
    significance["context vs cooccurrence"] = approximate_randomization(counts["context"], counts["cooccurrence"], n_shuffles=10000, seed=0)
    print(f"\nEU-ADR links ({'+'.join(positive)} vs rest), {args.folds} folds pooled ({len(gold_all)} sentences), {elapsed / 60:.1f} min")
    print("| system | P | R | F1 | gold | pred | per-fold F1 mean ± SD |")
    print("|---|---|---|---|---|---|---|")
    for n in names:
        m = results[n]
        fs = per_fold[n]
        print(f"| {n} | {m['p']:.3f} | {m['r']:.3f} | {m['f']:.3f} | {m['n_gold']} | {m['n_pred']} | {statistics.mean(fs):.3f} ± {statistics.stdev(fs):.3f} |")
    print()
    for key, sig in significance.items():
        print(f"{key}: ΔF1 {sig['delta_f']:+.3f}, AR p = {sig['p_value']:.4f}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps(
                {
                    "positive": positive,
                    "pooled": results,
                    "per_fold_f": per_fold,
                    "significance": significance,
                    "chosen": chosen,
                    "folds": [[docs[i]._.doc_id for i in f] for f in folds],
                    "minutes": elapsed / 60,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
