"""SALA on a real domain shift (issue 20, items 3 and 4), TAC 2017.

Source: the `adverse reactions` sections (tables, lists). Target: the
`warnings and precautions` and `boxed warnings` sections (narrative prose).
No test text is used for adaptation: the unlabelled pool is the train
split's target sections (gold hidden from the loop), settings and the edit
gate come from the dev split's target sections, and the test split's target
sections are only scored.

    B="python benchmarks/domain_shift_tac.py"
    $B split corpus training/shift                  # the five corpora below + their sizes
    python -m spacy train configs/ade_cpu.cfg --output training/shift/source \
        --paths.train training/shift/source_train.spacy --paths.dev training/shift/source_dev.spacy \
        --training.max_epochs 8 --training.optimizer.learn_rate.total_steps 800
    # the edit gate, fitted on the source model's LLM edits over the dev target sections
    G="python benchmarks/llm_edit_gate_tac.py"
    $G tag training/shift/source/model-best - training/shift/target_dev.spacy training/shift/gate/dev.tagger.spacy
    $G answer training/shift/gate/dev.tagger.spacy training/shift/gate/dev.answers.jsonl --demos training/shift/source_train.spacy
    $G fit training/shift/target_dev.spacy training/shift/gate/dev.tagger.spacy training/shift/gate/dev.answers.jsonl \
        training/shift/gate/gate.json --train training/shift/source_train.spacy
    # settings chosen on dev with gold annotation (--sim 0): --k 64 / 256, --rehearsal 0 / 1, --learn-rate 2e-5 / 5e-6
    $B run training/shift/source/model-best training/shift/select/gold_k64 --sim 0 --k 64
    # adaptation runs (each resumable; K = 256 from the dev choice): the 135M LLM gated, the simulated annotator at four qualities
    $B run training/shift/source/model-best training/shift/runs/llm_gated --llm --gate training/shift/gate/gate.json
    $B run training/shift/source/model-best training/shift/runs/sim_0.00 --sim 0.0   # = gold annotation of the same K units
    $B run training/shift/source/model-best training/shift/runs/sim_0.15 --sim 0.15   # also 0.30, 0.50
    # the ceiling: the tagger trained on all sections, scored on the same dev / test target sections
    python -m spacy train configs/ade_cpu.cfg --output training/ade_all5 --training.max_epochs 5 \
        --training.optimizer.learn_rate.total_steps 935
    $B score training/ade_all5/model-best training/shift/ceiling
    # the shipped 12-epoch tagger (configs/ade_cpu.cfg as is) as the ceiling of the plot
    $B score training/ade_cpu/model-best training/shift/ceiling12
    $B report training/shift --ceiling training/shift/ceiling12 --plot docs/adapt_break_even.png

``--sim R`` sets the simulated annotator's miss, spurious and boundary
rates all to R (``--miss`` etc. set them one by one).
"""
import argparse
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import srsly
from spacy.tokens import Doc, DocBin

from spacy_clinie.readers import load_docs
from spacy_clinie.tokenizer import make_blank

SOURCE = ("adverse reactions",)
TARGET = ("warnings and precautions", "boxed warnings")
SPLITS = {
    "source_train": ("train", SOURCE),
    "source_dev": ("dev", SOURCE),
    "pool": ("train", TARGET),
    "target_dev": ("dev", TARGET),
    "target_test": ("test", TARGET),
}
LEVELS = ("mention_strict", "mention_relaxed", "reaction")


def cmd_split(args: argparse.Namespace) -> None:
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    nlp = make_blank()
    loaded = {name: load_docs(Path(args.corpus) / f"{name}.spacy", nlp) for name in ("train", "dev", "test")}
    stats: Dict[str, Any] = {}
    for name, (split, sections) in SPLITS.items():
        docs = [d for d in loaded[split] if d._.section in sections]
        DocBin(docs=docs, store_user_data=True).to_disk(out / f"{name}.spacy")
        stats[name] = {
            "split": split,
            "sections": len(docs),
            "labels": len({d._.label_id for d in docs}),
            "words": sum(1 for d in docs for t in d if not t.is_space and not t.is_punct),
            "mentions": sum(len(d.spans.get("mentions", [])) for d in docs),
            "gold_entries": sum(len(d._.reactions or []) for d in docs),
        }
    srsly.write_json(out / "split.json", stats)
    print(json.dumps(stats, indent=1))


def make_task(gate_path: Optional[str], dictionary_from: str) -> Any:
    """llm_edit_gate_tac.py's clinie.ADECorrect.v2 task with the demo
    retriever, gated by the fitted gate at ``gate_path`` (dictionary feature:
    the source train strings, no MedDRA linker, as when the gate was
    fitted), else ungated. The entropy threshold is the task default: SALA
    picks its units by rank, not by threshold."""
    from dictionary_baseline import train_strings  # benchmarks/, this script's folder
    from llm_edit_gate_tac import make_task as make_gate_task

    from spacy_clinie.llm.gate import EditGate

    gate = EditGate(dictionary=train_strings(load_docs(dictionary_from))).from_disk(gate_path) if gate_path else None
    return make_gate_task(0.05, gate, encoder=True)


def sim_rates(args: argparse.Namespace) -> Dict[str, float]:
    base = args.sim if args.sim is not None else 0.0
    return {
        "miss_rate": args.miss if args.miss is not None else base,
        "spurious_rate": args.spurious if args.spurious is not None else base,
        "boundary_rate": args.boundary if args.boundary is not None else base,
    }


def cmd_run(args: argparse.Namespace) -> None:
    from spacy_llm.registry import registry

    from spacy_clinie.llm.adapt import SalaRun

    folder = Path(args.shift)
    nlp = make_blank()
    pool = load_docs(folder / "pool.spacy", nlp)
    eval_sets = {"dev": load_docs(folder / "target_dev.spacy", nlp), "test": load_docs(folder / "target_test.spacy", nlp)}
    task = make_task(args.gate, str(folder / "source_train.spacy"))
    if args.llm:
        llm = registry.llm_models.get("clinie.LlamaCpp.v1")()
        annotator: Dict[str, Any] = {"kind": "llm", "model": "clinie.LlamaCpp.v1 (SmolLM2-135M-Instruct Q4_1)", "gated": bool(args.gate)}
    else:
        rates = sim_rates(args)
        llm = registry.llm_models.get("clinie.SimulatedAnnotator.v1")(gold_path=str(folder / "pool.spacy"), seed=args.seed, **rates)
        annotator = {"kind": "simulated", **rates, "seed": args.seed, "gated": bool(args.gate)}
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"k": args.k, "ratio": args.ratio, "tau": args.tau, "n_iter": args.n_iter, "epochs": args.epochs,
                "learn_rate": args.learn_rate, "batch_size": args.batch_size, "rehearsal": args.rehearsal}
    srsly.write_json(out / "run.json", {"model": args.model, "annotator": annotator, "settings": settings})
    t0 = time.time()
    run = SalaRun(args.model, [d.text for d in pool], out, task=task, llm=llm, eval_sets=eval_sets, seed=args.seed,
                  log=lambda m: print(m, flush=True), **settings)
    state = run.run()
    print(json.dumps({"history": state["history"], "seconds": state.get("seconds"), "wall": round(time.time() - t0, 1)}, indent=1))


def cmd_score(args: argparse.Namespace) -> None:
    """A fixed model (the all-sections ceiling) on the dev and test target sections."""
    import spacy

    from spacy_clinie.readers import unannotated
    from spacy_clinie.scoring import evaluate_docs

    folder = Path(args.shift)
    nlp = spacy.load(args.model)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    result = {"model": args.model}
    for name in ("dev", "test"):
        gold = load_docs(folder / f"target_{name}.spacy", nlp)
        docs = list(nlp.pipe(unannotated(nlp, gold), batch_size=8))
        DocBin(docs=docs, store_user_data=True).to_disk(out / f"pred_{name}.spacy")
        s = evaluate_docs(gold, docs, levels=LEVELS)
        result[name] = {k: {m: round(s[k]["micro"][m], 4) for m in "prf"} for k in LEVELS}
    srsly.write_json(out / "scores.json", result)
    print(json.dumps(result, indent=1))


def annotation_quality(run: Path, pool: List[Doc], iteration: int = 1) -> Optional[Dict[str, Any]]:
    """Strict P/R/F1 of the annotator's answers (before and after the gate)
    on the units it annotated in ``iteration``, against the pool's hidden gold."""
    from spacy_clinie.llm.models.simulated import annotator_scores

    state = srsly.read_json(run / "state.json")
    log = state.get("annotations_by_iteration", {}).get(str(iteration))
    if not log:
        return None
    out: Dict[str, Any] = {"units": len(log)}
    for what in ("answer", "applied"):
        pairs = []
        for key, row in log.items():
            i, s, e = (int(x) for x in key.split(":"))
            gold = [(sp.start - s, sp.end - s, sp.label_) for sp in pool[i].spans.get("mentions", []) if sp.start >= s and sp.end <= e]
            pairs.append(([tuple(x) for x in row[what]], gold))
        out[what] = annotator_scores(pairs)
    return out


def cmd_report(args: argparse.Namespace) -> None:
    from spacy_clinie.scoring import compare_systems, evaluate_docs

    folder = Path(args.shift)
    nlp = make_blank()
    pool = load_docs(folder / "pool.spacy", nlp)
    gold = {name: load_docs(folder / f"target_{name}.spacy", nlp) for name in ("dev", "test")}
    runs = sorted(p for p in (folder / "runs").iterdir() if (p / "state.json").exists())
    rows: List[Dict[str, Any]] = []
    source_pred = None
    for run in runs:
        state = srsly.read_json(run / "state.json")
        meta = srsly.read_json(run / "run.json")
        last = state.get("finetuned", 0)
        if source_pred is None:
            source_pred = load_docs(run / "iter_0" / "pred_test.spacy", nlp)
        final = load_docs(run / f"iter_{last}" / "pred_test.spacy", nlp)
        cmp = compare_systems(gold["test"], source_pred, final, levels=LEVELS)
        seconds = state.get("seconds", {})
        per_iter = [sum(v.values()) for k, v in seconds.items() if k != "init" and isinstance(v, dict)]
        rows.append({
            "run": run.name,
            "annotator": meta["annotator"],
            "settings": meta["settings"],
            "history": [{"iteration": h["iteration"], "dev": (h.get("scores") or {}).get("dev"), "test": (h.get("scores") or {}).get("test"),
                         "clean": h.get("clean"), "llm_counts": h.get("llm_counts")} for h in state["history"]],
            "quality": annotation_quality(run, pool),
            "vs_source_test": {k: {"delta_f": round(-cmp[k]["approximate_randomization"]["delta_f"], 4),
                                   "p": cmp[k]["approximate_randomization"]["p_value"]} for k in LEVELS},
            "seconds_per_iteration": round(sum(per_iter) / len(per_iter), 1) if per_iter else None,
            "seconds_init": seconds.get("init"),
        })
    ceiling = None
    ceiling_dir = Path(args.ceiling) if args.ceiling else folder / "ceiling"
    if (ceiling_dir / "pred_test.spacy").exists():
        cpred = load_docs(ceiling_dir / "pred_test.spacy", nlp)
        s = evaluate_docs(gold["test"], cpred, levels=LEVELS)
        cmp = compare_systems(gold["test"], source_pred, cpred, levels=LEVELS) if source_pred is not None else None
        ceiling = {"test": {k: round(s[k]["micro"]["f"], 4) for k in LEVELS},
                   "vs_source_test": {k: {"delta_f": round(-cmp[k]["approximate_randomization"]["delta_f"], 4),
                                          "p": cmp[k]["approximate_randomization"]["p_value"]} for k in LEVELS} if cmp else None,
                   "scores": srsly.read_json(ceiling_dir / "scores.json")}
    report = {"runs": rows, "ceiling": ceiling, "split": srsly.read_json(folder / "split.json")}
    srsly.write_json(folder / "report.json", report)
    print(json.dumps(report, indent=1))
    if args.plot:
        break_even = plot(rows, ceiling, args.plot, args.metric)
        report["break_even_annotator_f"] = break_even
        srsly.write_json(folder / "report.json", report)
        print(f"break-even annotator F1 ({args.metric}, final iteration, test): {break_even}")


def final_f(row: Dict[str, Any], split: str, metric: str) -> float:
    return row["history"][-1][split][metric]


def plot(rows: List[Dict[str, Any]], ceiling: Optional[Dict[str, Any]], path: str, metric: str) -> Optional[float]:
    """Target test F1 after adaptation against the annotator's strict F1 on
    the K units, simulated annotators as a line, the 135M model as points;
    horizontal lines for the source model, gold-K and the ceiling. Returns
    the annotator F1 where the simulated line crosses the source model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = {"mention_strict_f": "mention_strict", "reaction_f": "reaction"}[metric]
    source = rows[0]["history"][0]["test"][metric]
    sims = sorted((r for r in rows if r["annotator"]["kind"] == "simulated" and r["quality"]), key=lambda r: r["quality"]["answer"]["f"])
    xs = [r["quality"]["answer"]["f"] for r in sims]
    ys = [final_f(r, "test", metric) for r in sims]
    gold_k = next((final_f(r, "test", metric) for r in sims if r["annotator"]["miss_rate"] == r["annotator"]["spurious_rate"] == r["annotator"]["boundary_rate"] == 0.0), None)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.plot(xs, ys, "o-", color="tab:blue", label="adapted with a simulated annotator")
    for r in rows:
        if r["annotator"]["kind"] == "llm" and r["quality"]:
            y = final_f(r, "test", metric)
            gated = r["annotator"]["gated"]
            ax.plot([r["quality"]["answer"]["f"]], [y], "s", color="tab:red",
                    label=f"SmolLM2-135M answers{' (gated run)' if gated else ''}, F1 {r['quality']['answer']['f']:.2f}")
            if gated:  # what actually trained the tagger: the answers after the gate
                ax.plot([r["quality"]["applied"]["f"]], [y], "s", mfc="none", color="tab:red",
                        label=f"the same after the gate, F1 {r['quality']['applied']['f']:.2f}")
    ax.axhline(source, color="gray", ls="--", label=f"source model alone ({source:.3f})")
    if gold_k is not None:
        ax.axhline(gold_k, color="tab:green", ls=":", label=f"gold annotation of the same K units ({gold_k:.3f})")
    if ceiling:
        ax.axhline(ceiling["test"][key], color="black", ls="-.", label=f"trained on all sections ({ceiling['test'][key]:.3f})")
    break_even = None
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if (y0 - source) * (y1 - source) <= 0 and y1 != y0:
            break_even = round(x0 + (source - y0) * (x1 - x0) / (y1 - y0), 3)
            break
    if break_even is not None:
        ax.axvline(break_even, color="tab:blue", ls=":", lw=0.8)
        ax.annotate(f"break-even ≈ {break_even:.2f}", (break_even, source), textcoords="offset points", xytext=(5, -14), fontsize=8)
    ax.set_xlabel("annotator strict F1 on the K annotated units (pool, hidden gold)")
    ax.set_ylabel(f"target test {key.replace('_', ' ')} F1")
    ax.set_title("SALA, adverse reactions → warnings / boxed warnings (TAC test)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return break_even


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split", help="source / pool / target corpora from the converted TAC splits")
    s.add_argument("corpus")
    s.add_argument("output")
    r = sub.add_parser("run", help="one resumable SALA run on the pool, scored on the dev and test target sections")
    r.add_argument("model")
    r.add_argument("output")
    r.add_argument("--shift", default="training/shift")
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--llm", action="store_true", help="the default local LLM (SmolLM2-135M)")
    who.add_argument("--sim", type=float, help="simulated annotator, all three error rates")
    r.add_argument("--miss", type=float)
    r.add_argument("--spurious", type=float)
    r.add_argument("--boundary", type=float)
    r.add_argument("--gate", help="fitted edit gate (llm_edit_gate_tac.py fit); without it edits are ungated")
    r.add_argument("--k", type=int, default=256, help="chosen on dev: gold annotation of 64 units lowered dev strict F1, of 256 raised it")
    r.add_argument("--ratio", type=float, default=0.1)
    r.add_argument("--tau", type=float, default=0.05)
    r.add_argument("--n-iter", type=int, default=2)
    r.add_argument("--epochs", type=int, default=3)
    r.add_argument("--learn-rate", type=float, default=2e-5)
    r.add_argument("--batch-size", type=int, default=8)
    r.add_argument("--rehearsal", type=float, default=1.0)
    r.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("score", help="a fixed model on the target sections (the ceiling)")
    c.add_argument("model")
    c.add_argument("output")
    c.add_argument("--shift", default="training/shift")
    p = sub.add_parser("report", help="tables, AR p-values, annotator quality, break-even plot")
    p.add_argument("shift")
    p.add_argument("--plot")
    p.add_argument("--ceiling", help="output folder of `score` for the ceiling row (default: SHIFT/ceiling)")
    p.add_argument("--metric", default="mention_strict_f", choices=("mention_strict_f", "reaction_f"))
    args = parser.parse_args()
    {"split": cmd_split, "run": cmd_run, "score": cmd_score, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
