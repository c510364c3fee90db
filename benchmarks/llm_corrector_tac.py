"""Tagger alone vs tagger + LLM corrector (clinie.ADECorrect.v1) on TAC 2017.

The tagger runs once; its output (mentions + per-token entropy) is saved,
then the corrector (spaCy's ``llm`` component with the clinie task and a
spacy-llm model) corrects the uncertain sentences. Both are scored on the
same docs, with approximate randomisation between them.

    python benchmarks/llm_corrector_tac.py training/ade_cpu/model-best corpus/test.spacy \
        --demos corpus/train.spacy --limit 60 --output training/preds/llm_corrected_test.spacy
    # a larger model behind any OpenAI-compatible server instead of SmolLM2:
    ... --llm-model '{"@llm_models": "clinie.OpenAICompatible.v1", "base_url": "http://127.0.0.1:8000/v1", "model": "Qwen2.5-7B-Instruct"}'
"""
import argparse
import json
import time

import spacy
from spacy.tokens import DocBin
from spacy.training import Example

from spacy_clinie.readers import load_docs, unannotated
from spacy_clinie.extensions import copy_doc_meta
from spacy_clinie.scoring import compare_systems, evaluate_docs

LEVELS = ("mention_strict", "mention_relaxed", "reaction")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("gold")
    parser.add_argument("--demos", help="labelled .spacy for the demonstration pool (gold spans)")
    parser.add_argument("--n-demos", type=int, default=500)
    parser.add_argument("--limit", type=int, default=0, help="first N docs only (0: all)")
    parser.add_argument("--entropy-threshold", type=float, default=0.2)
    parser.add_argument("--output-format", default="json", choices=["json", "index"])
    parser.add_argument("--llm-model", default='{"@llm_models": "clinie.LlamaCpp.v1"}', help="spacy-llm model block as JSON")
    parser.add_argument("--output", required=True)
    parser.add_argument("--tagged", help="reuse the tagger's saved output (.spacy with tag entropies)")
    args = parser.parse_args()

    nlp = spacy.load(args.model)
    gold = load_docs(args.gold)
    if args.limit:
        gold = gold[: args.limit]
    words = sum(len(d) for d in gold)
    t0 = time.perf_counter()
    if args.tagged:
        tagged = list(DocBin().from_disk(args.tagged).get_docs(nlp.vocab))[: len(gold)]
    else:
        tagged = list(nlp.pipe(unannotated(nlp, gold), batch_size=8))
        DocBin(docs=tagged, store_user_data=True).to_disk(args.output.replace(".spacy", ".tagger.spacy"))
    t_tag = time.perf_counter() - t0
    assert all(d._.tag_entropy for d in tagged), "tagger output has no doc._.tag_entropy (store_entropy off?)"

    llm_nlp = spacy.blank("en", vocab=nlp.vocab)
    llm_nlp.tokenizer = nlp.tokenizer
    pipe = llm_nlp.add_pipe(
        "llm",
        name="llm_corrector",
        config={
            "task": {
                "@llm_tasks": "clinie.ADECorrect.v1",
                "entropy_threshold": args.entropy_threshold,
                "output_format": args.output_format,
                "demos": {"@llm_misc": "clinie.DemoPool.v1", "encoder": {"@misc": "clinie.SentenceEncoder.v1"}},
            },
            "model": json.loads(args.llm_model),
        },
    )
    if args.demos:
        demo_docs = load_docs(args.demos)
        pipe.task.initialize(lambda: (Example(d, d) for d in demo_docs), n_demos=args.n_demos)
    t0 = time.perf_counter()
    corrected = []
    for n, d in enumerate(tagged, 1):
        corrected.append(pipe(d.copy()))
        if n % 5 == 0:
            print(f"{n}/{len(tagged)} docs, {pipe.task.totals['prompted']} prompts, {time.perf_counter() - t0:.0f}s", flush=True)
    t_llm = time.perf_counter() - t0
    for g, c in zip(gold, corrected):
        copy_doc_meta(g, c)
    DocBin(docs=corrected, store_user_data=True).to_disk(args.output)

    s_tag = evaluate_docs(gold, tagged, levels=LEVELS)
    s_llm = evaluate_docs(gold, corrected, levels=LEVELS)
    cmp = compare_systems(gold, tagged, corrected, levels=LEVELS)
    totals = pipe.task.totals
    out = {
        "docs": len(gold),
        "words": words,
        "demos": len(pipe.task.demos),
        "llm_model": json.loads(args.llm_model),
        "entropy_threshold": args.entropy_threshold,
        "corrector_counts": totals,
        "seconds_per_doc": {"tagger": round(t_tag / len(gold), 3), "corrector": round(t_llm / len(gold), 3)},
        "seconds_per_prompt": round(t_llm / max(1, totals["prompted"]), 3),
        "tagger": {k: {m: round(s_tag[k]["micro"][m], 4) for m in "prf"} for k in LEVELS},
        "tagger+corrector": {k: {m: round(s_llm[k]["micro"][m], 4) for m in "prf"} for k in LEVELS},
        "ar_p": {k: cmp[k]["approximate_randomization"]["p_value"] for k in LEVELS},
        "delta_f": {k: round(-cmp[k]["approximate_randomization"]["delta_f"], 4) for k in LEVELS},
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
