"""The do-no-harm gate on LLM corrector edits (issue 20, item 2) on TAC 2017.

Four steps, so the slow LLM runs once per split and the gate is applied
to the very same answers:

    # 0. the tagger + confidence calibrator on dev and test (mentions, tag entropies, calibrated confidences)
    python benchmarks/llm_edit_gate_tac.py tag training/ade_cpu/model-best training/ade_cpu/calibration.json \
        corpus/dev.spacy training/preds/gate20/dev.tagger.spacy
    # 1. the corrector's answers on the tagger's uncertain sentences (LLM runs here)
    python benchmarks/llm_edit_gate_tac.py answer training/preds/gate20/dev.tagger.spacy \
        training/preds/gate20/dev.answers.jsonl --demos corpus/train.spacy --entropy-threshold 0.1
    # 2. fit the acceptance model on the dev edits (labelled against dev gold) and choose its
    #    threshold on 5-fold out-of-fold probabilities (1.0 = apply nothing when no threshold gains)
    python benchmarks/llm_edit_gate_tac.py fit corpus/dev.spacy training/preds/gate20/dev.tagger.spacy \
        training/preds/gate20/dev.answers.jsonl training/preds/gate20/gate.json --train corpus/train.spacy \
        --linker training/en_clinie_ade_issue25
    # 3. tagger alone vs ungated vs gated (writes A/B .spacy files for clinie evaluate --compare)
    python benchmarks/llm_edit_gate_tac.py score corpus/test.spacy training/preds/gate20/test.tagger.spacy \
        training/preds/gate20/test.answers.jsonl training/preds/gate20/gate.json training/preds/gate20/test \
        --linker training/en_clinie_ade_issue25
    clinie evaluate corpus/test.spacy training/preds/gate20/test.gated.spacy --compare training/preds/gate20/test.tagger.spacy
    # does the gate open for a better annotator? answer with the simulated annotator instead
    # (a planning simulation that reads the split's gold; never a result for a real LLM)
    python benchmarks/llm_edit_gate_tac.py answer training/preds/gate20/dev.tagger.spacy \
        training/preds/gate20/sim0.15/dev.answers.jsonl --demos corpus/train.spacy --sim 0.15 --sim-gold corpus/dev.spacy

The ``*.tagger.spacy`` inputs are the tagger's output (mentions, tag
entropies, calibrated confidences from ``clinie_confidence_calibrator``).
Gating re-applies the stored answers through the task's own ``apply``
(what spaCy's ``llm`` component calls), once with the gate off and once on.
"""
import argparse
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import srsly
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy_llm.registry import registry

from spacy_clinie.readers import load_docs
from spacy_clinie.extensions import copy_doc_meta
from spacy_clinie.llm.gate import EditGate, PipelineLinkScorer
from spacy_clinie.llm.gate_fit import answers_threshold, collect_answers, fit_gate, read_answers
from spacy_clinie.llm.tasks.ade_correct.task import STAT_KEYS, ADECorrectTask
from spacy_clinie.llm.types import Response
from spacy_clinie.scoring import compare_systems, evaluate_docs
from spacy_clinie.tokenizer import make_blank

LEVELS = ("mention_strict", "mention_relaxed", "reaction")


def make_task(threshold: float, gate: Optional[EditGate] = None, encoder: bool = False) -> ADECorrectTask:
    demos: Dict[str, Any] = {"@llm_misc": "clinie.DemoPool.v1"}
    if encoder:
        demos["encoder"] = {"@misc": "clinie.SentenceEncoder.v1"}
    from spacy.util import registry as spacy_registry

    pool = spacy_registry.resolve({"d": demos})["d"]
    task = registry.llm_tasks.get("clinie.ADECorrect.v2")(entropy_threshold=threshold, demos=pool, gate_mode="off")
    task.gate = gate
    return task


def read_tagged(path: str, vocab: Any) -> List[Doc]:
    docs = list(DocBin().from_disk(path).get_docs(vocab))
    assert all(d._.tag_entropy for d in docs), f"{path}: no doc._.tag_entropy (store_entropy off?)"
    return docs


def cmd_tag(args: argparse.Namespace) -> None:
    import spacy

    from spacy_clinie.readers import unannotated

    nlp = spacy.load(args.model)
    if "confidence_calibrator" not in nlp.pipe_names and args.calibration != "-":
        cal = nlp.add_pipe("clinie_confidence_calibrator", name="confidence_calibrator", config={"labels": ["AdverseReaction"]})
        cal.set_calibration(srsly.read_json(args.calibration))
    gold = load_docs(args.gold)
    if args.limit:
        gold = gold[: args.limit]
    tagged = list(nlp.pipe(unannotated(nlp, gold), batch_size=8))
    DocBin(docs=tagged, store_user_data=True).to_disk(args.output)
    print(f"{len(tagged)} docs tagged -> {args.output}")


def cmd_answer(args: argparse.Namespace) -> None:
    nlp = make_blank()
    docs = read_tagged(args.tagged, nlp.vocab)
    if args.limit:
        docs = docs[: args.limit]
    task = make_task(args.entropy_threshold, encoder=True)
    if args.demos:
        demo_docs = load_docs(args.demos)
        task.initialize(lambda: (Example(d, d) for d in demo_docs), n_demos=args.n_demos)
    if args.sim is not None:  # a simulation for planning: answers from the split's own gold
        if not args.sim_gold:
            raise SystemExit("--sim needs --sim-gold (the .spacy whose gold the simulated annotator reads)")
        model = registry.llm_models.get("clinie.SimulatedAnnotator.v1")(
            gold_path=args.sim_gold, seed=args.seed, miss_rate=args.sim, spurious_rate=args.sim, boundary_rate=args.sim)
    else:
        model = registry.llm_models.get("clinie.LlamaCpp.v1")()
    t0 = time.perf_counter()

    def report(n: int) -> None:
        if n % 5 == 0:
            print(f"{n}/{len(docs)} docs, {time.perf_counter() - t0:.0f}s", flush=True)

    answers = collect_answers(task, model, docs, args.output, progress=report)
    n_prompts = sum(len(a) for a in answers)
    print(json.dumps({"docs": len(docs), "prompts": n_prompts, "seconds": round(time.perf_counter() - t0, 1),
                      "seconds_per_prompt": round((time.perf_counter() - t0) / max(1, n_prompts), 3)}))


def build_gate(args: argparse.Namespace) -> EditGate:
    from dictionary_baseline import train_strings  # benchmarks/, this script's folder

    strings = train_strings(d for p in args.train for d in load_docs(p)) if args.train else set()
    return EditGate(dictionary=strings, link_scorer=PipelineLinkScorer(args.linker) if args.linker else None)


def read_inputs(args: argparse.Namespace) -> Tuple[List[Doc], List[Doc], List[List[Response]], float]:
    """Gold, tagger output and stored answers, cut to the docs answered
    (a run stopped by its time limit covers the first sections only)."""
    gold = load_docs(args.gold)
    tagged = read_tagged(args.tagged, make_blank().vocab)
    answers, threshold = read_answers(args.answers), answers_threshold(args.answers)
    return gold[: len(answers)], tagged[: len(answers)], answers, threshold


def cmd_fit(args: argparse.Namespace) -> None:
    gold, tagged, answers, threshold = read_inputs(args)
    task = make_task(threshold, build_gate(args))
    fitted = fit_gate(task, gold, tagged, answers, folds=args.folds, c=args.c, select_threshold=args.select_threshold)
    # dev scores: each doc gated by the gate fitted on the other folds' docs
    systems = apply_gates(gold, tagged, answers, task.entropy_threshold, lambda n: fitted.fold_gates[n % args.folds])
    report = {**fitted.report, "threshold_fitted_on": threshold, "dev_cross_fitted": compare_to_tagger(gold, systems)}
    gate = fitted.gate
    gate.fit_report = report  # the file keeps how the gate did on dev
    gate.to_disk(args.output)
    print(json.dumps({**report, "coef": dict(zip(gate.to_dict()["features"], [round(c, 3) for c in gate.to_dict()["coef"]])),
                      "intercept": round(gate.intercept, 3)}, indent=1))


def apply_gates(gold: List[Doc], tagged: List[Doc], answers: List[List[Response]], threshold: float, gate_for: Any) -> Dict[str, Any]:
    """The tagger's docs, and copies with the stored answers applied through
    the task with the gate off and on (``gate_for(doc_index)``)."""
    systems: Dict[str, Any] = {"tagger": tagged, "counts": {}}
    for name, mode in (("ungated", "off"), ("gated", "on")):
        out, totals = [], dict.fromkeys(STAT_KEYS, 0)
        for n, (g, doc, responses) in enumerate(zip(gold, tagged, answers)):
            gate = gate_for(n)
            gate.mode = mode
            task = make_task(threshold, gate)
            d = doc.copy()
            task.apply(d, task.select(d), responses)
            out.append(copy_doc_meta(g, d))
            for k, v in task.totals.items():
                totals[k] += v
        systems[name] = out
        systems["counts"][name] = {k: v for k, v in totals.items() if v}
    return systems


def compare_to_tagger(gold: List[Doc], systems: Dict[str, Any]) -> Dict[str, Any]:
    names = ("tagger", "ungated", "gated")
    scores = {name: evaluate_docs(gold, systems[name], levels=LEVELS) for name in names}
    result: Dict[str, Any] = {"docs": len(gold), "counts": systems["counts"],
                              "f": {name: {k: {m: round(s[k]["micro"][m], 4) for m in "prf"} for k in LEVELS} for name, s in scores.items()}}
    for name in ("ungated", "gated"):
        cmp = compare_systems(gold, systems["tagger"], systems[name], levels=LEVELS)
        result[f"{name}_vs_tagger"] = {k: {"delta_f": round(-cmp[k]["approximate_randomization"]["delta_f"], 4),
                                           "p": cmp[k]["approximate_randomization"]["p_value"]} for k in LEVELS}
    return result


def cmd_score(args: argparse.Namespace) -> None:
    gold, tagged, answers, threshold = read_inputs(args)
    gate = build_gate(args).from_disk(args.gate)
    systems = apply_gates(gold, tagged, answers, threshold, lambda n: gate)
    prefix = Path(args.output_prefix)
    for name, docs in systems.items():
        if name != "counts":
            DocBin(docs=docs, store_user_data=True).to_disk(f"{prefix}.{name}.spacy")
    result = compare_to_tagger(gold, systems)
    print(json.dumps(result, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tag", help="tagger + calibrator over a corpus, saved with tag entropies")
    t.add_argument("model")
    t.add_argument("calibration", help="calibration maps (clinie calibrate --output), used when the model has no calibrator; - for none (raw confidences)")
    t.add_argument("gold")
    t.add_argument("output")
    t.add_argument("--limit", type=int, default=0)
    a = sub.add_parser("answer", help="run the LLM corrector on the tagger's uncertain sentences, store its answers")
    a.add_argument("tagged")
    a.add_argument("output")
    a.add_argument("--demos")
    a.add_argument("--n-demos", type=int, default=500)
    a.add_argument("--entropy-threshold", type=float, default=0.1)
    a.add_argument("--limit", type=int, default=0)
    a.add_argument("--sim", type=float, default=None,
                   help="answer with clinie.SimulatedAnnotator.v1 at this miss/spurious/boundary rate instead of the LLM (planning only)")
    a.add_argument("--sim-gold", default=None, help="gold .spacy the simulated annotator answers from")
    a.add_argument("--seed", type=int, default=0)
    for name in ("fit", "score"):
        p = sub.add_parser(name)
        p.add_argument("gold")
        p.add_argument("tagged")
        p.add_argument("answers")
        if name == "score":
            p.add_argument("gate")
        p.add_argument("output" if name == "fit" else "output_prefix")
        p.add_argument("--train", nargs="*", default=["corpus/train.spacy"], help="dictionary of train strings")
        p.add_argument("--linker", help="pipeline whose meddra_linker gives link scores")
        if name == "fit":
            p.add_argument("--c", type=float, default=1.0)
            p.add_argument("--folds", type=int, default=5)
            p.add_argument("--select-threshold", action=argparse.BooleanOptionalAction, default=True,
                           help="choose the acceptance threshold on the out-of-fold dev probabilities (default); off: 0.5")
    args = parser.parse_args()
    {"tag": cmd_tag, "answer": cmd_answer, "fit": cmd_fit, "score": cmd_score}[args.cmd](args)


if __name__ == "__main__":
    main()
