"""Cost of the drug components: words/s of the packaged pipeline with and
without ``clinie_drug_ner`` and ``clinie_drug_ade_linker``, interleaved in
one run on the same cores.

The pipeline is loaded once; "without" runs the same object with the two
components disabled (``nlp.select_pipes``), so both variants share the
tagger, the MedDRA index and the warm caches. Each repeat times both
variants over the same texts (the first N sections of the TAC test split),
alternating which goes first; words are the non-space tokens of the
pipeline's tokenizer. Reports words/s per repeat, the median and range,
and the median slowdown, plus how many drug mentions and links the
components made. Then, as a second measure that a change of machine load
during the run cannot skew, the share of the time each component takes
when every batch goes through the components one by one. Run it alone (it
is a timing benchmark):

    flock /work/notes/heavy.lock nice -n 5 python benchmarks/drug_links_cost.py training/en_clinie_ade corpus/test.spacy \\
        --limit 100 --repeats 3 --output training/drug_links_cost.json
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import spacy
import torch
from spacy.util import minibatch

import spacy_clinie  # noqa: F401
from spacy_clinie.readers import load_docs
from spacy_clinie.extensions import get_mentions

COMPONENT_FACTORIES = ("clinie_drug_ner", "clinie_drug_ade_linker")


def drug_pipes(nlp) -> List[str]:
    """The names of the pipeline's drug components (by factory)."""
    names = [name for name in nlp.pipe_names if nlp.get_pipe_meta(name).factory in COMPONENT_FACTORIES]
    if len(names) != 2:
        raise SystemExit(f"error: expected one {COMPONENT_FACTORIES[0]} and one {COMPONENT_FACTORIES[1]} in {nlp.pipe_names}")
    return names


def timed(nlp, texts: List[str], batch_size: int, disable: List[str]) -> Dict[str, Any]:
    start = time.perf_counter()
    with nlp.select_pipes(disable=disable):
        docs = list(nlp.pipe(texts, batch_size=batch_size))
    seconds = time.perf_counter() - start
    drugs = sum(1 for d in docs for s in get_mentions(d) if s.label_ == "Drug")
    links = sum(1 for d in docs for r in d._.relations or [] if r.get("label") == "ADE-Drug")
    return {"seconds": seconds, "drugs": drugs, "links": links}


def per_component(nlp, texts: List[str], batch_size: int) -> Dict[str, float]:
    """Seconds spent in the tokenizer and in each enabled component, batch
    by batch: every batch goes through all components in turn, so a change
    of machine load during the run touches all of them alike."""
    times: Dict[str, float] = {"tokenizer": 0.0, **{name: 0.0 for name in nlp.pipe_names}}
    for batch in minibatch(texts, size=batch_size):
        start = time.perf_counter()
        docs = [nlp.make_doc(t) for t in batch]
        times["tokenizer"] += time.perf_counter() - start
        for name, proc in nlp.pipeline:
            start = time.perf_counter()
            docs = list(proc.pipe(docs, batch_size=batch_size)) if hasattr(proc, "pipe") else [proc(d) for d in docs]
            times[name] += time.perf_counter() - start
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="assembled pipeline (training/en_clinie_ade)")
    parser.add_argument("corpus", type=Path, help="TAC test split (.spacy)")
    parser.add_argument("--limit", type=int, default=100, help="first N sections")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    nlp = spacy.load(args.model)
    names = drug_pipes(nlp)
    texts = [d.text for d in load_docs(args.corpus)[: args.limit]]
    words = sum(1 for t in texts for tok in nlp.make_doc(t) if not tok.is_space)
    print(f"{args.model}: {nlp.pipe_names}; {len(texts)} sections, {words:,} words; torch threads {args.threads}")
    timed(nlp, texts[:8], args.batch_size, [])  # warm-up: lazy loads, caches
    variants = {"with": [], "without": names}
    runs: Dict[str, List[Dict[str, Any]]] = {v: [] for v in variants}
    for rep in range(args.repeats):
        order = list(variants) if rep % 2 == 0 else list(variants)[::-1]
        for v in order:
            result = timed(nlp, texts, args.batch_size, variants[v])
            result["words_per_s"] = words / result["seconds"]
            runs[v].append(result)
            print(f"  repeat {rep + 1} {v:7s}: {result['words_per_s']:8,.0f} words/s ({result['seconds']:.1f} s)", flush=True)
    summary = {}
    for v, rs in runs.items():
        wps = [r["words_per_s"] for r in rs]
        summary[v] = {"median": statistics.median(wps), "min": min(wps), "max": max(wps), "runs": wps}
    shares = []
    for rep in range(args.repeats):
        times = per_component(nlp, texts, args.batch_size)
        shares.append(sum(times[n] for n in names) / sum(times.values()))
        summary.setdefault("per_component_seconds", []).append(times)
        print(f"  repeat {rep + 1} per component: drug components {sum(times[n] for n in names):.1f} s of {sum(times.values()):.1f} s "
              f"({100 * shares[-1]:.1f}%): " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()), flush=True)
    summary["drug_share_runs"] = shares
    summary["drug_share_median"] = statistics.median(shares)
    ratios = [w["seconds"] / wo["seconds"] for w, wo in zip(runs["with"], runs["without"])]
    summary["slowdown_median"] = statistics.median(ratios)
    summary["slowdown_runs"] = ratios
    summary["drugs"], summary["links"] = runs["with"][0]["drugs"], runs["with"][0]["links"]
    print()
    print("| pipeline | words/s median (min–max) |")
    print("|---|---|")
    for v in variants:
        s = summary[v]
        print(f"| {v} the drug components | {s['median']:,.0f} ({s['min']:,.0f}–{s['max']:,.0f}) |")
    print(f"time with / without, per repeat: {', '.join(f'{r:.3f}' for r in ratios)} (median {summary['slowdown_median']:.3f})")
    print(f"share of the time in the drug components, per repeat: {', '.join(f'{100 * x:.1f}%' for x in shares)} (median {100 * summary['drug_share_median']:.1f}%)")
    print(f"drug mentions {summary['drugs']}, ADE-Drug links {summary['links']} in {len(texts)} sections")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        meta = {"model": str(args.model), "sections": len(texts), "words": words, "pipes": nlp.pipe_names, "threads": args.threads}
        args.output.write_text(json.dumps({**meta, **summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
