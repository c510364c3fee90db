"""Issue 19: the reaction verifier on top of the tagger, TAC 2017.

Three steps, each its own command, so that the test split is scored once
with thresholds chosen on dev:

    # the tagger's predictions (a pipeline up to the verifier) on dev and test
    python benchmarks/reaction_verifier_tac.py predict training/ade_cpu/model-best corpus/dev.spacy training/preds/verifier/dev.tagger.spacy
    python benchmarks/reaction_verifier_tac.py predict training/ade_cpu/model-best corpus/test.spacy training/preds/verifier/test.tagger.spacy
    # thresholds on dev (the sweep clinie tune-verifier runs)
    python benchmarks/reaction_verifier_tac.py tune training/verifier/model-best corpus/dev.spacy training/preds/verifier/dev.tagger.spacy training/preds/verifier/thresholds.json
    # dictionary + verifier (no tagger): the same on unannotated texts
    python benchmarks/reaction_verifier_tac.py blank corpus/dev.spacy training/preds/verifier/dev.blank.spacy   (and tune / score on it)
    # once, on test
    python benchmarks/reaction_verifier_tac.py score training/verifier/model-best corpus/test.spacy training/preds/verifier/test.tagger.spacy training/preds/verifier/thresholds.json training/preds/verifier/test

``score`` (optionally with a packaged pipeline whose meddra_linker codes
the mentions, for the PT levels) writes the verified docs, all levels before and after, approximate
randomisation (10,000 shuffles, per section) and where the changes came from
(reactions dropped / added by source, right or wrong).
"""
import json
import sys
import time
from collections import Counter
from pathlib import Path

import spacy
import srsly
from spacy.tokens import DocBin

from spacy_clinie.candidates.dictionary import gold_reaction_strings
from spacy_clinie.readers import load_docs, unannotated
from spacy_clinie.tokenizer import make_blank
from spacy_clinie.scoring import align_docs, compare_systems, evaluate_docs, normalize_string, span_text

VERIFIER = "clinie_reaction_verifier"
ADR = "AdverseReaction"


def verifier_of(model: str):
    nlp = spacy.load(model)
    names = [n for n in nlp.pipe_names if nlp.get_pipe_meta(n).factory == VERIFIER]
    return nlp, nlp.get_pipe(names[0])


def predict(model: str, gold_path: str, out: str) -> None:
    nlp = spacy.load(model)
    gold = load_docs(gold_path)
    t0 = time.time()
    docs = list(nlp.pipe(unannotated(nlp, gold), batch_size=16))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    db = DocBin(store_user_data=True)
    for d in docs:
        db.add(d)
    db.to_disk(out)
    print(f"{len(docs)} docs -> {out} in {time.time() - t0:.0f}s")


def blank(gold_path: str, out: str) -> None:
    """The gold texts with no annotation: the input of "dictionary +
    verifier" (no tagger), tuned and scored like the tagger's output."""
    nlp = make_blank("en")
    db = DocBin(store_user_data=True)
    for d in unannotated(nlp, load_docs(gold_path)):
        db.add(d)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    db.to_disk(out)


def tune(model: str, gold_path: str, pred_path: str, out: str) -> None:
    _, verifier = verifier_of(model)
    gold, pred = load_docs(gold_path), load_docs(pred_path)
    rows = verifier.sweep(gold, pred)
    reaction = evaluate_docs(gold, pred, levels=("reaction",))["reaction"]["per_type"][ADR]
    base = [r for r in rows if r["keep_threshold"] == 0.0 and r["add_threshold"] == 1.01][0]
    best = rows[0]
    srsly.write_json(out, {"split": "dev", "tagger": reaction, "verifier_keep_all_add_none": base, "best": best, "top": rows[:20]})
    print("dev tagger alone", reaction)
    print("dev best", best)
    for r in rows[:10]:
        print(r)


def link(linker_model: str, docs):
    """MedDRA PTs for the predicted mentions: the packaged pipeline's
    meddra_linker run on them (the PT levels score span._.meddra)."""
    nlp = spacy.load(linker_model)
    linker = nlp.get_pipe("meddra_linker")
    return list(linker.pipe(docs, batch_size=64))


def levels(gold, docs):
    sec = evaluate_docs(gold, docs)
    lab = evaluate_docs(gold, docs, unit="label", levels=("reaction", "pt"))
    out = {lvl: sec[lvl]["per_type"].get(ADR, sec[lvl]["micro"]) for lvl in ("mention_strict", "mention_relaxed", "reaction")}
    out["pt"] = sec["pt"]["micro"]
    out["reaction_label"] = lab["reaction"]["per_type"].get(ADR, lab["reaction"]["micro"])
    out["pt_label"] = lab["pt"]["micro"]
    return out


def error_analysis(gold, docs, train_path: str = "corpus/train.spacy"):
    """Where the reaction-level errors are (the categories of issue 19):
    misses that are discontiguous gold strings, never seen in train, or seen;
    false positives that are annotated elsewhere in train, gold in another
    section of the same label, or other strings (boundaries, fragments)."""
    train_strings = set()
    for d in load_docs(train_path):
        train_strings |= gold_reaction_strings(d)
    label_gold: dict = {}
    for g in gold:
        label_gold.setdefault(g._.label_id, set()).update(gold_reaction_strings(g))
    out: Counter = Counter()
    examples: dict = {}
    for g, p in align_docs(gold, docs):
        truth = gold_reaction_strings(g)
        contiguous = {normalize_string(s.text) for s in g.spans.get("mentions", []) if s.label_ == ADR}
        pred = {normalize_string(span_text(s)) for s in p.spans.get("mentions", []) if s.label_ == ADR}
        for k in truth - pred:
            cat = "fn_discontiguous" if k not in contiguous else "fn_unseen_in_train" if k not in train_strings else "fn_seen_in_train"
            out[cat] += 1
            examples.setdefault(cat, []).append(k)
        for k in pred - truth:
            cat = (
                "fp_gold_in_other_section_same_label" if k in label_gold.get(g._.label_id, set())
                else "fp_annotated_elsewhere_in_train" if k in train_strings
                else "fp_other"
            )
            out[cat] += 1
            examples.setdefault(cat, []).append(k)
        out["tp"] += len(truth & pred)
    return dict(out), {k: v[:12] for k, v in examples.items()}


def score(model: str, gold_path: str, pred_path: str, thresholds: str, out: str, linker_model: str = "") -> None:
    nlp, verifier = verifier_of(model)
    best = srsly.read_json(thresholds)["best"]
    verifier.keep_threshold, verifier.add_threshold = best["keep_threshold"], best["add_threshold"]
    gold, pred = load_docs(gold_path), load_docs(pred_path)
    t0 = time.time()
    after = list(verifier.pipe([d.copy() for d in pred], batch_size=16))
    seconds = time.time() - t0
    if linker_model:
        pred, after = link(linker_model, pred), link(linker_model, after)
    before_scores = levels(gold, pred)
    after_scores = levels(gold, after)
    sig = compare_systems(gold, pred, after, levels=("mention_strict", "reaction", "pt"))
    sig_label = compare_systems(gold, pred, after, unit="label", levels=("reaction", "pt"))
    changes: Counter = Counter()
    for (g, p), (_, a) in zip(align_docs(gold, pred), align_docs(gold, after)):
        truth = gold_reaction_strings(g)
        ps = {normalize_string(span_text(s)) for s in p.spans.get("mentions", []) if s.label_ == ADR}
        src = {}
        for s in a.spans.get("mentions", []):
            if s.label_ == ADR:
                src[normalize_string(span_text(s))] = (s._.attributes or {}).get("source", "tagger")
        for k in ps - set(src):
            changes[f"dropped_{'right' if k not in truth else 'wrong'}"] += 1
        for k, source in src.items():
            if k not in ps:
                changes[f"added_{source}_{'right' if k in truth else 'wrong'}"] += 1
    Path(out).mkdir(parents=True, exist_ok=True)
    db = DocBin(store_user_data=True)
    for d in after:
        db.add(d)
    db.to_disk(Path(out) / "verified.spacy")
    result = {
        "split": Path(gold_path).stem,
        "thresholds": best,
        "before": before_scores,
        "after": after_scores,
        "significance": sig,
        "significance_label": sig_label,
        "changes": dict(changes),
        "errors_before": error_analysis(gold, pred),
        "errors_after": error_analysis(gold, after),
        "verifier_seconds": seconds,
        "n_docs": len(after),
    }
    srsly.write_json(Path(out) / "scores.json", result)
    print(json.dumps({k: v for k, v in result.items() if not k.startswith("significance")}, indent=1))
    print({lvl: sig[lvl]["approximate_randomization"] for lvl in sig})
    print({lvl: sig_label[lvl]["approximate_randomization"] for lvl in sig_label})


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"predict": predict, "blank": blank, "tune": tune, "score": score}[cmd](*args)
