"""EU-ADR drug–disorder relations: 5-fold cross-validation of the relation
linker against two baselines on the same folds.

- ``linker``: ``configs/relations_euadr.cfg`` (shared MiniLM transformer,
  frozen and annotating, + ``clinie_relation_linker``; ``--set`` overrides any
  config value, e.g. to fine-tune the transformer), trained on four folds and
  applied to the gold mentions of the fifth. The number of epochs is the
  config's ``max_epochs``, or with ``--select-epochs`` the candidate that
  scores best in an inner cross-validation on the four training folds; the
  test fold never takes part in model selection.
- ``cooccurrence``: every Disorder–Drug pair of a sentence is PA.
- ``context``: medspaCy ConText on the gold mentions; a pair is NA when
  either mention is negated, SA when either is hypothetical, else PA
  (``context+uncertain`` also maps ConText's ``is_uncertain`` to SA).

Folds group sentences by PMID (sentences of one abstract never straddle
train and test). Scores pool the five test folds (micro and per label, exact
head/tail spans and label); per-fold micro F1 mean and SD are reported too,
plus a paired approximate randomisation test over sentences.

    HF_HUB_OFFLINE=1 python benchmarks/relations_euadr.py corpus/euadr/EUADR_drug_disease.spacy
"""
import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from spacy.cli._util import parse_config_overrides  # noqa: E402
from spacy.language import Language  # noqa: E402
from spacy.tokens import Doc  # noqa: E402
from spacy.training import Example  # noqa: E402
from spacy.util import fix_random_seed, load_config, load_model_from_config, minibatch  # noqa: E402

import spacy_clinie  # noqa: E402,F401
from spacy_clinie.readers import load_docs  # noqa: E402
from spacy_clinie.extensions import MENTIONS_KEY  # noqa: E402
from spacy_clinie.pipeline.context import add_context_pipes  # noqa: E402
from spacy_clinie.readers.corpus import gold_mention_copy  # noqa: E402
from spacy_clinie.scoring import approximate_randomization, evaluate_docs, unit_counts, align_docs  # noqa: E402
from spacy_clinie.tokenizer import make_blank  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("PA", "NA", "SA", "FA")


def make_folds(docs: Sequence[Doc], n_folds: int, seed: int) -> List[List[int]]:
    """Doc indices per fold, grouped by PMID, balanced by sentence count."""
    groups: Dict[str, List[int]] = {}
    for i, doc in enumerate(docs):
        groups.setdefault(doc._.label_id or doc._.doc_id or str(i), []).append(i)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    keys.sort(key=lambda k: -len(groups[k]))  # stable: ties keep the shuffled order
    folds: List[List[int]] = [[] for _ in range(n_folds)]
    for key in keys:
        min(folds, key=len).extend(groups[key])
    return [sorted(f) for f in folds]


def split_off(docs: Sequence[Doc], held: Sequence[int]) -> Tuple[List[Doc], List[Doc]]:
    """(the docs not in ``held``, the docs in ``held``), each in corpus order."""
    held_set = set(held)
    return [d for i, d in enumerate(docs) if i not in held_set], [docs[i] for i in held]


def cooccurrence(doc: Doc) -> Doc:
    pred = gold_mention_copy(doc)
    spans = list(pred.spans[MENTIONS_KEY])
    rels = []
    for head in spans:
        for tail in spans:
            if head.label_ == "Disorder" and tail.label_ == "Drug":
                rels.append({"id": f"R{len(rels) + 1}", "label": "PA", "head": head.id_, "tail": tail.id_})
    pred._.relations = rels
    return pred


def context_rules(nlp: Language, docs: Sequence[Doc], uncertain: bool) -> List[Doc]:
    out = []
    for pred in nlp.pipe([gold_mention_copy(d) for d in docs]):
        spans = list(pred.spans[MENTIONS_KEY])
        rels = []
        for head in spans:
            for tail in spans:
                if head.label_ != "Disorder" or tail.label_ != "Drug":
                    continue
                flags = {k for s in (head, tail) for k, v in (s._.attributes or {}).items() if v is True}
                if "is_negated" in flags:
                    label = "NA"
                elif "is_hypothetical" in flags or (uncertain and "is_uncertain" in flags):
                    label = "SA"
                else:
                    label = "PA"
                rels.append({"id": f"R{len(rels) + 1}", "label": label, "head": head.id_, "tail": tail.id_})
        pred._.relations = rels
        out.append(pred)
    return out


def train_and_predict(
    config_path: Path, train: Sequence[Doc], test: Sequence[Doc], seed: int, overrides: Dict, checkpoints: Sequence[int] = ()
) -> Dict[int, List[Doc]]:
    """Train on ``train`` and predict ``test`` after each epoch in
    ``checkpoints`` (default: only after the config's ``max_epochs``)."""
    fix_random_seed(seed)
    config = load_config(config_path, overrides=overrides, interpolate=False)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    # the docs must share the pipeline's vocab (labels are hashed)
    train_docs = [Doc(nlp.vocab).from_bytes(d.to_bytes()) for d in train]
    test_docs = [Doc(nlp.vocab).from_bytes(d.to_bytes()) for d in test]
    examples = [Example(gold_mention_copy(d), d) for d in train_docs]
    optimizer = nlp.initialize(lambda: examples)
    T = config["training"]
    checkpoints = sorted(set(checkpoints)) or [int(T["max_epochs"])]
    frozen = [name for name in T["frozen_components"] if name in T["annotating_components"]]
    # A frozen, annotating component gives the same output every epoch (it
    # runs without dropout): annotate once instead of once per batch, as
    # `spacy train` would.
    for name in frozen:
        for _ in nlp.get_pipe(name).pipe([eg.predicted for eg in examples]):
            pass
    rng = random.Random(seed)
    out: Dict[int, List[Doc]] = {}
    for epoch in range(1, checkpoints[-1] + 1):
        rng.shuffle(examples)
        losses: Dict[str, float] = {}
        for batch in minibatch(examples, size=int(T["batcher"]["size"])):
            nlp.update(batch, drop=float(T["dropout"]), sgd=optimizer, losses=losses, exclude=T["frozen_components"])
            optimizer.step_schedules()  # as spaCy's training loop does (warm-up, decay)
        if epoch == 1 or epoch % 10 == 0:
            print(f"    epoch {epoch}: loss {losses.get('relation_linker', 0.0):.3f}", flush=True)
        if epoch in checkpoints:
            out[epoch] = list(nlp.pipe([gold_mention_copy(d) for d in test_docs]))
    return out


def select_epochs(
    config_path: Path, train: Sequence[Doc], n_inner: int, seed: int, overrides: Dict, candidates: Sequence[int]
) -> Tuple[int, Dict[int, float]]:
    """Model selection inside the outer training folds only: the epoch count
    with the best pooled micro F1 over ``n_inner`` PMID-grouped inner folds
    (ties go to fewer epochs). The outer test fold is never seen."""
    inner = make_folds(train, n_inner, seed)
    gold: List[Doc] = []
    preds: Dict[int, List[Doc]] = {e: [] for e in candidates}
    for held in inner:
        fit, dev = split_off(train, held)
        for epoch, docs in train_and_predict(config_path, fit, dev, seed, overrides, candidates).items():
            preds[epoch].extend(docs)
        gold.extend(dev)
    scores = {e: evaluate_docs(gold, preds[e], levels=("relation",))["relation"]["micro"]["f"] for e in candidates}
    best = max(sorted(candidates), key=lambda e: scores[e])  # max keeps the first of equal scores
    return best, scores


def fmt_table(name: str, scores: Dict) -> List[str]:
    rel = scores["relation"]
    lines = []
    m = rel["micro"]
    lines.append(f"| {name} | micro | {m['p']:.3f} | {m['r']:.3f} | {m['f']:.3f} | {m['n_gold']} | {m['n_pred']} |")
    for label in LABELS:
        t = rel["per_type"].get(label, {"p": 0.0, "r": 0.0, "f": 0.0, "n_gold": 0, "n_pred": 0})
        lines.append(f"| {name} | {label} | {t['p']:.3f} | {t['r']:.3f} | {t['f']:.3f} | {t['n_gold']} | {t['n_pred']} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, nargs="?", default=ROOT / "corpus" / "euadr" / "EUADR_drug_disease.spacy")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "relations_euadr.cfg")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only-folds", type=int, default=0, help="run just the first N folds (timing checks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=0, help="override [training] max_epochs")
    parser.add_argument(
        "--select-epochs",
        type=str,
        default="",
        help="comma-separated epoch counts to choose from by inner cross-validation on each outer training fold",
    )
    parser.add_argument("--inner-folds", type=int, default=4, help="inner folds for --select-epochs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. training.dropout=0.3")
    parser.add_argument("--output", type=Path, default=None, help="write all scores as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    docs = load_docs(args.corpus)
    folds = make_folds(docs, args.folds, args.seed)
    print(f"{len(docs)} sentences, {sum(len(d._.relations) for d in docs)} relations, fold sizes {[len(f) for f in folds]}")
    overrides = parse_config_overrides([f"--{item}" for item in args.set])
    if args.epochs:
        overrides["training.max_epochs"] = args.epochs
    candidates = sorted({int(e) for e in args.select_epochs.split(",") if e.strip()})
    selected: List[Dict[str, Any]] = []
    n_run = args.only_folds or args.folds
    ctx_nlp = make_blank()
    add_context_pipes(ctx_nlp, sectionizer=False)
    systems: Dict[str, List[Doc]] = {"linker": [], "cooccurrence": [], "context": [], "context+uncertain": []}
    gold_all: List[Doc] = []
    per_fold: Dict[str, List[float]] = {k: [] for k in systems}
    start = time.time()
    for k, test_idx in enumerate(folds[:n_run]):
        train, test = split_off(docs, test_idx)
        print(f"fold {k + 1}/{args.folds}: train {len(train)} test {len(test)}", flush=True)
        t0 = time.time()
        fold_overrides = dict(overrides)
        if candidates:
            best, inner_scores = select_epochs(args.config, train, args.inner_folds, args.seed, overrides, candidates)
            print(f"    inner CV micro F1 by epochs: {inner_scores} -> {best}", flush=True)
            selected.append({"epochs": best, "inner_f": inner_scores})
            fold_overrides["training.max_epochs"] = best
        linker = next(iter(train_and_predict(args.config, train, test, args.seed, fold_overrides).values()))
        preds = {
            "linker": linker,
            "cooccurrence": [cooccurrence(d) for d in test],
            "context": context_rules(ctx_nlp, test, uncertain=False),
            "context+uncertain": context_rules(ctx_nlp, test, uncertain=True),
        }
        for name, pred in preds.items():
            systems[name].extend(pred)
            f = evaluate_docs(test, pred, levels=("relation",))["relation"]["micro"]["f"]
            per_fold[name].append(f)
            print(f"    {name}: relation micro F1 {f:.3f}", flush=True)
        gold_all.extend(test)
        print(f"    fold time {time.time() - t0:.0f}s", flush=True)
    elapsed = time.time() - start
    results = {name: evaluate_docs(gold_all, pred, levels=("relation",)) for name, pred in systems.items()}
    gold_counts = unit_counts(align_docs(gold_all, systems["linker"]), "relation")
    significance = {}
    for name in ("cooccurrence", "context", "context+uncertain"):
        a = unit_counts(align_docs(gold_all, systems["linker"]), "relation")
        b = unit_counts(align_docs(gold_all, systems[name]), "relation")
        significance[name] = approximate_randomization(a, b, n_shuffles=10000, seed=0)
    del gold_counts
    print()
    if selected:
        print(f"epochs selected by inner CV per fold: {[s['epochs'] for s in selected]}")
    print(f"EU-ADR relations, {n_run} of {args.folds} folds pooled ({len(gold_all)} sentences), {elapsed / 60:.1f} min")
    print("| system | label | P | R | F1 | gold | pred |")
    print("|---|---|---|---|---|---|---|")
    for name in systems:
        for line in fmt_table(name, results[name]):
            print(line)
    print()
    print("| system | per-fold micro F1 (mean ± SD) |")
    print("|---|---|")
    for name, fs in per_fold.items():
        sd = statistics.stdev(fs) if len(fs) > 1 else 0.0
        print(f"| {name} | {statistics.mean(fs):.3f} ± {sd:.3f} ({', '.join(f'{f:.3f}' for f in fs)}) |")
    print()
    for name, sig in significance.items():
        print(f"linker vs {name}: ΔF1 {sig['delta_f']:+.3f}, approximate randomisation p = {sig['p_value']:.4f} (10,000 shuffles, sentences)")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "pooled": {n: r["relation"] for n, r in results.items()},
            "per_fold_micro_f": per_fold,
            "significance": significance,
            "folds": [[docs[i]._.doc_id for i in f] for f in folds],
            "minutes": elapsed / 60,
            "overrides": overrides,
            "selected": selected,
        }
        args.output.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
