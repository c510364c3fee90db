"""The soft-prompt tagger's torch module: encoder, per-prompt projections,
per-task softmax or CRF heads (cf. spacy-transformers' wrapped HF models),
and its int8 inference copy.

Per task, a textual prompt is tokenised, embedded with the encoder's own
embedding table, projected by a trainable linear layer (identity at start)
and prepended to the input embeddings after ``[CLS]``. Tasks that share a
prompt share one encoder pass."""
import copy
import itertools
import os
import warnings
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from .crf import CRF


def _single_thread_after_fork() -> None:
    # spaCy's nlp.pipe(n_process=...) forks. The OpenMP pool that torch used
    # in the parent is not fork-safe, so a child that runs a parallel region
    # hangs (so does a child that asks for 2 threads again: tested with torch
    # 2.13); one intra-op thread per worker process avoids it. On N cores,
    # use n_process = N rather than fewer workers with more threads.
    torch.set_num_threads(1)


os.register_at_fork(after_in_child=_single_thread_after_fork)
# Hugging Face tokenizers warn (and disable themselves) after a fork when
# their own parallelism was used; windows are tokenised per doc anyway.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HEADS = ("crf", "softmax")


class SoftPromptModule(nn.Module):
    """Encoder + per-prompt projections + per-task heads (+ CRFs)."""

    def __init__(
        self,
        encoder: nn.Module,
        tokenizer: Any,
        tag_names: Dict[str, List[str]],
        prompts: Dict[str, Optional[str]],
        heads: Dict[str, str],
        strategy: str,
        dropout: float,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.tag_names = tag_names
        self.tasks = list(tag_names)
        self.head_types = {t: heads.get(t, "crf") for t in self.tasks}
        self.task_prompt = {t: prompts.get(t) or "" for t in self.tasks}
        self.prompt_keys = sorted(set(self.task_prompt.values()))
        hidden = encoder.config.hidden_size
        self.proj = nn.ModuleDict()
        for i, text in enumerate(self.prompt_keys):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
            self.register_buffer(f"prompt_ids_{i}", torch.tensor(ids, dtype=torch.long), persistent=True)
            if ids:
                lin = nn.Linear(hidden, hidden)
                with torch.no_grad():
                    lin.weight.copy_(torch.eye(hidden))
                    lin.bias.zero_()
                self.proj[str(i)] = lin
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({t: nn.Linear(hidden, len(tags)) for t, tags in tag_names.items()})
        self.crfs = nn.ModuleDict({t: CRF(tags) for t, tags in tag_names.items() if self.head_types[t] == "crf"})
        self.strategy = strategy
        if strategy == "frozen":
            for p in self.encoder.parameters():
                p.requires_grad_(False)

    @property
    def max_prompt_len(self) -> int:
        return max(len(getattr(self, f"prompt_ids_{i}")) for i in range(len(self.prompt_keys)))

    def embed(self, i: int, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, int]:
        """Input embeddings and attention mask with prompt group ``i``'s
        projected prompt after ``[CLS]``, and the prompt's length."""
        emb_layer = self.encoder.get_input_embeddings()
        ids, mask = batch["ids_full"], batch["mask_full"]
        emb = emb_layer(ids)
        prompt_ids = getattr(self, f"prompt_ids_{i}")
        P = len(prompt_ids)
        if P:
            prompt = self.proj[str(i)](emb_layer(prompt_ids)).unsqueeze(0).expand(ids.shape[0], -1, -1)
            emb = torch.cat([emb[:, :1], prompt, emb[:, 1:]], dim=1)
            mask = torch.cat([mask[:, :1], torch.ones(ids.shape[0], P, dtype=mask.dtype, device=mask.device), mask[:, 1:]], dim=1)
        return emb, mask, P

    def _encode(self, i: int, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Word-level hidden states (N, W, H) for prompt group ``i``; with
        ``batch["autocast"]`` (a dtype) the encoder runs under autocast and
        its output is cast back, so the heads and CRFs stay fp32."""
        emb, mask, P = self.embed(i, batch)
        low = batch.get("autocast")
        if low is None:
            hidden = self.encoder(inputs_embeds=emb, attention_mask=mask).last_hidden_state
        else:
            with torch.autocast(device_type=emb.device.type, dtype=low):
                hidden = self.encoder(inputs_embeds=emb, attention_mask=mask).last_hidden_state
            hidden = hidden.to(emb.dtype)
        pos = batch["word_pos"] + 1 + P  # skip [CLS] and the prompt
        return hidden.gather(1, pos.unsqueeze(2).expand(-1, -1, hidden.shape[2]))

    def forward(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        word_mask = batch["word_mask"]
        n_words = word_mask.sum().clamp(min=1)
        out: Dict[str, Any] = {"emissions": {}, "losses": {}}
        for i, text in enumerate(self.prompt_keys):
            words = self.dropout(self._encode(i, batch))
            for task in self.tasks:
                if self.task_prompt[task] != text:
                    continue
                em = self.heads[task](words)
                out["emissions"][task] = em
                gold = batch.get("gold", {}).get(task)
                if gold is None:
                    continue
                known = word_mask & (gold >= 0)  # -100: no gold for this task in this window's doc
                if self.head_types[task] == "crf":
                    loss = self.crfs[task].nll(em, gold.clamp(min=0), known) / n_words
                else:
                    loss = nn.functional.cross_entropy(em[known], gold[known], reduction="sum") / n_words
                out["losses"][task] = loss
        if out["losses"]:
            weights = batch["task_weights"]
            out["loss"] = sum(weights.get(t, 1.0) * l for t, l in out["losses"].items())
        if batch.get("decode"):
            out["decoded"] = {}
            for task, em in out["emissions"].items():
                if self.head_types[task] == "crf":
                    paths = self.crfs[task].decode(em, word_mask)
                    probs = self.crfs[task].marginals(em, word_mask)
                else:
                    probs = torch.softmax(em, dim=-1) * word_mask.unsqueeze(2).float()
                    paths = [row[: int(m.sum())].tolist() for row, m in zip(em.argmax(-1), word_mask)]
                out["decoded"][task] = (paths, probs.detach().cpu().numpy())
        return out


def quantize_int8(module: SoftPromptModule) -> SoftPromptModule:
    """An inference copy of ``module`` whose Linear layers (encoder, prompt
    projections, heads) are dynamically quantised to int8, weights per
    output channel. Every other tensor (embeddings, LayerNorms, CRFs) and
    the tokenizer are shared with ``module``, not copied."""
    linear = {id(p) for m in module.modules() if isinstance(m, nn.Linear) for p in m.parameters()}
    shared = itertools.chain(module.parameters(), module.buffers(), [module.tokenizer])
    memo = {id(t): t for t in shared if id(t) not in linear}
    clone = copy.deepcopy(module, memo).eval()
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notices
        warnings.simplefilter("ignore")
        return quantize_dynamic(clone, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
