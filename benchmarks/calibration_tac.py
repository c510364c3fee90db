"""Calibration of the tagger's confidences on TAC: fit the isotonic maps of
``clinie_confidence_calibrator`` on dev predictions, then score the expected
calibration error (ECE, 10 equal-width bins) of mentions and reactions on
the test predictions before and after, and draw a reliability diagram.

    python benchmarks/tagger_tac.py MODEL corpus/dev.spacy --output training/preds/dev.spacy
    python benchmarks/tagger_tac.py MODEL corpus/test.spacy --output training/preds/test.spacy
    python benchmarks/calibration_tac.py corpus/dev.spacy training/preds/dev.spacy \\
        corpus/test.spacy training/preds/test.spacy --png docs/reliability.png --output metrics/calibration.json

Nothing is chosen on test: the maps come from dev alone.
"""
import argparse
import json
from pathlib import Path

from spacy_clinie.readers import load_docs
from spacy_clinie.pipeline.calibrator import IsotonicMap, fit_calibration
from spacy_clinie.scoring.calibration import expected_calibration_error, mention_outcomes, reaction_outcomes, reliability_bins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dev_gold")
    parser.add_argument("dev_pred")
    parser.add_argument("test_gold")
    parser.add_argument("test_pred")
    parser.add_argument("--png", default=None, help="reliability diagram (matplotlib)")
    parser.add_argument("--output", default=None, help="JSON with the maps, ECEs and bins")
    parser.add_argument("--folds", type=int, default=5, help="folds over dev drug labels for the cross-fitted dev ECE")
    parser.add_argument("--title", default="soft-prompt tagger, TAC 2017 test")
    args = parser.parse_args()

    dev_gold, dev_pred = load_docs(args.dev_gold), load_docs(args.dev_pred)
    fitted = fit_calibration(dev_gold, dev_pred)
    test_gold, test_pred = load_docs(args.test_gold), load_docs(args.test_pred)
    result = {"fit_on": args.dev_pred, "dev": fitted["fit"], "dev_cv": cross_fitted(dev_gold, dev_pred, args.folds), "maps": fitted["maps"], "test": {}}
    for level, rep in result["dev_cv"].items():
        print(f"dev {args.folds}-fold cross-fitted {level}: ECE {rep['ece_before']:.4f} -> {rep['ece_after']:.4f} (the shipping decision)")
    for level, outcomes in (("mention", mention_outcomes), ("reaction", reaction_outcomes)):
        raw, hits = outcomes(test_gold, test_pred)
        calibrated = IsotonicMap.from_dict(fitted["maps"][level])(raw)
        result["test"][level] = {
            "n": int(len(raw)),
            "accuracy": float(hits.mean()),
            "mean_raw_confidence": float(raw.mean()),
            "mean_calibrated_confidence": float(calibrated.mean()),
            "ece_before": expected_calibration_error(raw, hits),
            "ece_after": expected_calibration_error(calibrated, hits),
            "bins_before": reliability_bins(raw, hits),
            "bins_after": reliability_bins(calibrated, hits),
        }
        rep = result["test"][level]
        print(
            f"test {level}: n={rep['n']} accuracy={rep['accuracy']:.3f} mean confidence "
            f"{rep['mean_raw_confidence']:.3f} -> {rep['mean_calibrated_confidence']:.3f}; "
            f"ECE {rep['ece_before']:.4f} -> {rep['ece_after']:.4f}"
        )
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2))
    if args.png:
        draw(result["test"], args.png, args.title)
    print(json.dumps({level: {k: round(v, 4) for k, v in rep.items() if k.startswith("ece")} for level, rep in result["test"].items()}))


def cross_fitted(gold, pred, folds: int) -> dict:
    """ECE on dev with maps fitted on the other folds (folds by drug label),
    so the decision to ship calibration is made on dev without scoring a map
    on the docs it was fitted on."""
    import numpy

    labels = sorted({g._.label_id or g._.doc_id for g in gold})
    fold_of = {label: k % folds for k, label in enumerate(labels)}
    out = {}
    for level, outcomes in (("mention", mention_outcomes), ("reaction", reaction_outcomes)):
        raw_all, cal_all, hits_all = [], [], []
        for k in range(folds):
            held = [i for i, g in enumerate(gold) if fold_of[g._.label_id or g._.doc_id] == k]
            rest = [i for i in range(len(gold)) if i not in set(held)]
            if not held or not rest:
                continue
            fitted = fit_calibration([gold[i] for i in rest], [pred[i] for i in rest])
            raw, hits = outcomes([gold[i] for i in held], [pred[i] for i in held])
            raw_all.append(raw)
            hits_all.append(hits)
            cal_all.append(IsotonicMap.from_dict(fitted["maps"][level])(raw))
        raw, cal, hits = (numpy.concatenate(x) for x in (raw_all, cal_all, hits_all))
        out[level] = {"n": int(len(raw)), "ece_before": expected_calibration_error(raw, hits), "ece_after": expected_calibration_error(cal, hits)}
    return out


def draw(test: dict, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharey=True)
    for ax, (level, rep) in zip(axes, test.items()):
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
        for key, colour, name in (("bins_before", "tab:red", "raw"), ("bins_after", "tab:blue", "calibrated (dev fit)")):
            bins = rep[key]
            ece = rep["ece_before" if key == "bins_before" else "ece_after"]
            ax.plot([b["confidence"] for b in bins], [b["frequency"] for b in bins], marker="o", color=colour, label=f"{name}, ECE {ece:.3f}")
            for b in bins:
                ax.annotate(str(b["n"]), (b["confidence"], b["frequency"]), fontsize=6, color=colour, xytext=(2, -8), textcoords="offset points")
        ax.set_title(f"{level}s (n={rep['n']}, correct {rep['accuracy']:.2f})")
        ax.set_xlabel("confidence")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(loc="upper left", fontsize=8)
    axes[0].set_ylabel("observed frequency correct")
    fig.suptitle(f"Reliability: {title} (numbers: items per bin)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
