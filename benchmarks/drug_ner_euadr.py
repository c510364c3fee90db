"""EU-ADR: drug mentions of ``clinie_drug_ner`` against the gold Drug spans.

EU-ADR annotates the drug ("Chemicals & Drugs") and disorder of each
relation row, so a drug of a sentence that takes part in no relation is not
annotated: precision is a lower bound. Strict (same offsets) and relaxed
(overlap) P/R/F1 over the 137 sentences, for the default settings and for
ablations of one setting each (AR p-values against the default, over
sentences, as ``clinie evaluate --compare``), then the misses and false
alarms of the default sorted into kinds:

- miss, boundary: a predicted drug overlaps it (gold includes "intravenous",
  "high-dose", "-loaded nanocapsules", …);
- miss, short form: a token of 2–8 letters/digits with capitals, not
  defined in its sentence ("CsA", "MMF", "SRL");
- miss, not in the dictionary: anything else;
- false alarm, boundary: it overlaps a gold drug;
- false alarm, inside another gold mention (Disorder / Gene);
- false alarm, unannotated: it overlaps no gold mention (listed, to check
  by eye whether it is a drug EU-ADR left out).

    python benchmarks/drug_ner_euadr.py corpus/euadr/EUADR_drug_disease.spacy --output training/drug_ner_euadr.json
"""
import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from spacy.tokens import Doc

import spacy_clinie  # noqa: F401
from spacy_clinie.readers import load_docs, unannotated
from spacy_clinie.extensions import get_mentions
from spacy_clinie.scoring import align_docs, approximate_randomization, evaluate_docs, unit_counts
from spacy_clinie.tokenizer import make_blank

ROOT = Path(__file__).resolve().parents[1]
SHORT_FORM = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{1,7}")
LEVELS = ("mention_strict", "mention_relaxed")
ABLATIONS: Dict[str, Dict[str, Any]] = {
    "default": {},
    "merge_brand_generic=false": {"merge_brand_generic": False},
    "abbreviations=false": {"abbreviations": False},
    "deny_mesh_trees=[]": {"deny_mesh_trees": []},
    "abbreviations=false, deny_mesh_trees=[]": {"abbreviations": False, "deny_mesh_trees": []},
    "include_classes=false": {"include_classes": False},
    "case=sensitive": {"case": "sensitive"},
    "fuzzy=true": {"fuzzy": True},
}


def predict(gold: Sequence[Doc], config: Dict[str, Any]) -> List[Doc]:
    nlp = make_blank()
    nlp.add_pipe("clinie_drug_ner", config=config)
    return list(nlp.pipe(unannotated(nlp, gold)))


def overlaps(a: Tuple[int, int], spans: List[Tuple[int, int]]) -> bool:
    return any(a[0] < e and s < a[1] for s, e in spans)


def error_kinds(gold: Sequence[Doc], pred: Sequence[Doc]) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for g, p in align_docs(gold, pred):
        g_drugs = [(s.start_char, s.end_char) for s in get_mentions(g) if s.label_ == "Drug"]
        g_other = [(s.start_char, s.end_char) for s in get_mentions(g) if s.label_ != "Drug"]
        p_drugs = [(s.start_char, s.end_char) for s in get_mentions(p) if s.label_ == "Drug"]
        for span in set(g_drugs) - set(p_drugs):
            text = g.text[span[0] : span[1]]
            if overlaps(span, p_drugs):
                kind = "miss, boundary"
            elif SHORT_FORM.fullmatch(text) and not text.islower() and sum(c.isupper() for c in text) >= 1:
                kind = "miss, short form"
            else:
                kind = "miss, not in the dictionary"
            out.setdefault(kind, []).append(text)
        for span in set(p_drugs) - set(g_drugs):
            text = g.text[span[0] : span[1]]
            if overlaps(span, g_drugs):
                kind = "false alarm, boundary"
            elif overlaps(span, g_other):
                kind = "false alarm, inside another gold mention"
            else:
                kind = "false alarm, unannotated"
            out.setdefault(kind, []).append(text)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, nargs="?", default=ROOT / "corpus" / "euadr" / "EUADR_drug_disease.spacy")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    gold = load_docs(args.corpus)
    n_gold = sum(1 for d in gold for s in get_mentions(d) if s.label_ == "Drug")
    print(f"{len(gold)} sentences, {n_gold} gold Drug mentions")
    results: Dict[str, Any] = {}
    counts: Dict[str, Dict[str, Any]] = {}
    preds: Dict[str, List[Doc]] = {}
    for name, config in ABLATIONS.items():
        preds[name] = predict(gold, config)
        results[name] = evaluate_docs(gold, preds[name], levels=LEVELS, labels=["Drug"])
        counts[name] = {lv: unit_counts(align_docs(gold, preds[name]), lv, labels={"Drug"}) for lv in LEVELS}
    print("| settings | strict P | strict R | strict F1 | relaxed P | relaxed R | relaxed F1 | pred | AR p strict / relaxed vs default |")
    print("|---|---|---|---|---|---|---|---|---|")
    significance: Dict[str, Dict[str, Any]] = {}
    for name in ABLATIONS:
        s, r = results[name]["mention_strict"]["micro"], results[name]["mention_relaxed"]["micro"]
        if name == "default":
            sig = "—"
        else:
            significance[name] = {lv: approximate_randomization(counts[name][lv], counts["default"][lv]) for lv in LEVELS}
            sig = " / ".join(f"{significance[name][lv]['p_value']:.3f}" for lv in LEVELS)
        print(f"| {name} | {s['p']:.3f} | {s['r']:.3f} | {s['f']:.3f} | {r['p']:.3f} | {r['r']:.3f} | {r['f']:.3f} | {s['n_pred']} | {sig} |")
    kinds = error_kinds(gold, preds["default"])
    print("\nDefault settings, errors by kind:")
    for kind in sorted(kinds):
        texts = Counter(kinds[kind])
        print(f"- {kind}: {len(kinds[kind])} — " + "; ".join(f"{t} ×{n}" if n > 1 else t for t, n in texts.most_common()))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "scores": {n: {lv: r[lv]["micro"] for lv in LEVELS} for n, r in results.items()},
            "significance": significance,
            "errors": kinds,
        }
        args.output.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
