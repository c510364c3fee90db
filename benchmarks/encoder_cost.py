"""Training-step cost of the CPU default encoder against a BERT-base-sized one.

Why: the TAC targets of issue 4 point at a biomedical BERT-base encoder
(seed 000 used SciBERT). No such weights can be had here, but what one would
cost to fine-tune on this CPU depends only on its shape, so this times one
forward + backward + Adam step of randomly initialised encoders of each shape
on the same batch of subword windows.

    python benchmarks/encoder_cost.py                  # 4 windows of 270 subwords (window 256 + prompt)
    python benchmarks/encoder_cost.py --length 460     # ade_gpu.cfg's window 448
"""
import argparse
import time

import torch
from transformers import BertConfig, BertModel

SHAPES = {
    "MiniLM-L6-H384 (all-MiniLM-L6-v2, ade_cpu.cfg)": {
        "vocab_size": 30522,
        "hidden_size": 384,
        "num_hidden_layers": 6,
        "num_attention_heads": 12,
        "intermediate_size": 1536,
    },
    "BERT-base (SciBERT scivocab)": {
        "vocab_size": 31090,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
    },
}


def step_seconds(model: BertModel, ids: torch.Tensor, steps: int) -> float:
    """Best wall time of ``steps`` training steps after one warm-up step."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        model(input_ids=ids).last_hidden_state.pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=4, help="windows per step")
    parser.add_argument("--length", type=int, default=270, help="subwords per window")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per encoder (after one warm-up)")
    args = parser.parse_args()
    torch.manual_seed(0)
    ids = torch.randint(1000, 30000, (args.batch, args.length))
    base = None
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, batch {args.batch} x {args.length} subwords")
    for name, shape in SHAPES.items():
        model = BertModel(BertConfig(max_position_embeddings=512, **shape))
        seconds = step_seconds(model, ids, args.steps)
        n_params = sum(p.numel() for p in model.parameters()) / 1e6
        base = base or seconds
        print(f"{name}: {n_params:.1f}M parameters, {seconds:.2f} s per step ({seconds / base:.1f}x)")


if __name__ == "__main__":
    main()
