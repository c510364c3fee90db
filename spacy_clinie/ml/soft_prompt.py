"""Soft-prompt multi-task tagger (seed 000) as a thinc Model over a PyTorchShim.

Per task, a textual prompt is tokenised, embedded with the encoder's own
embedding table, projected by a trainable linear layer (W_p, b_p; identity at
start) and prepended to the input embeddings: ``[CLS] prompt tokens [SEP]``.
The attention mask covers the prompt; prompt positions get no labels. Tasks
that share a prompt share one encoder pass (seed 003's multi-output model:
two heads, one pass). Each task has a softmax or CRF head over word-level
emissions (the first subword of each spaCy token).

Documents longer than the encoder's window are cut into overlapping windows
of whole words; each word takes its prediction from the window in which it is
farthest from an edge. The window budget accounts for the prompt.

Optionally every window also sees a short text about its doc (``context``,
a Doc extension such as ``section``), between the prompt and the words like
BERT's first segment: ``[CLS] prompt context [SEP] words [SEP]``. A drug
label's sections follow different annotation conventions; the context lets
one model learn them without guessing the section from the window.

The torch module, the tokenizer and the Hugging Face config are serialised
together, so a saved pipeline loads without the original weights.

Inference precision (``model.attrs["inference"]``, set by the pipe) trades a
little accuracy for CPU time at prediction only; training and the saved
weights always stay fp32: ``int8`` runs a dynamically quantised copy of the
module (Linear layers in int8, built on first use), ``bf16`` runs the encoder
under bfloat16 autocast (fast only on CPUs with bf16 instructions: AVX512-BF16
or AMX). ``model.attrs["bucket_by_length"]`` sorts a batch's windows by length
before cutting it into steps, so short windows are not padded to long ones.
"""
import contextlib
import copy
import io
import itertools
import os
import random
import tarfile
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
import srsly
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, PyTorchShim, get_torch_default_device
from torch import nn

from ..util import resolve_model_path
from .crf import CRF
from .optimizers import ScaledOptimizer

STRATEGIES = ("full", "frozen")
INFERENCE = ("fp32", "int8", "bf16")


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
                if self.head_types[task] == "crf":
                    loss = self.crfs[task].nll(em, gold.clamp(min=0), word_mask) / n_words
                else:
                    loss = nn.functional.cross_entropy(em[word_mask], gold[word_mask], reduction="sum") / n_words
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


# ------------------------------------------------------------------ batching


@dataclass
class Window:
    doc: int
    words: List[int]  # indices of the doc's tokens in this window
    core: Tuple[int, int]  # range (positions in ``words``) this window is trusted for


def word_pieces(tokenizer: Any, docs: Sequence[Doc]) -> List[List[List[int]]]:
    """Subword ids per token per doc (whitespace tokens get none)."""
    out = []
    for doc in docs:
        texts = [t.text for t in doc]
        if not texts:
            out.append([])
            continue
        enc = tokenizer(texts, is_split_into_words=True, add_special_tokens=False)
        pieces: List[List[int]] = [[] for _ in texts]
        for sub, w in zip(enc["input_ids"], enc.word_ids()):
            if w is not None:
                pieces[w].append(sub)
        out.append(pieces)
    return out


def make_windows(pieces: List[List[int]], doc_index: int, budget: int, stride: int) -> List[Window]:
    """Overlapping windows of whole words, each at most ``budget`` subwords
    (a longer single word is truncated to its first ``budget`` pieces)."""
    words = [i for i, p in enumerate(pieces) if p]
    if not words:
        return []
    lengths = [min(len(pieces[i]), budget) for i in words]
    windows: List[Tuple[int, int]] = []
    start = 0
    while True:
        total, end = 0, start
        while end < len(words) and total + lengths[end] <= budget:
            total += lengths[end]
            end += 1
        windows.append((start, end))
        if end >= len(words):
            break
        # next window starts ``stride`` subwords later, but always moves on
        acc, nxt = 0, start
        while nxt < end and acc + lengths[nxt] <= stride:
            acc += lengths[nxt]
            nxt += 1
        start = max(nxt, start + 1)
    out = []
    for k, (s, e) in enumerate(windows):
        # trusted core: from the midpoint of the overlap with the previous
        # window to the midpoint of the overlap with the next one
        core_s = s if k == 0 else (s + windows[k - 1][1]) // 2
        core_e = e if k == len(windows) - 1 else (windows[k + 1][0] + e) // 2
        out.append(Window(doc_index, words[s:e], (core_s - s, max(core_e, core_s) - s)))
    return out


def context_ids(
    tokenizer: Any, docs: Sequence[Any], name: Optional[str], max_len: int, drop: float = 0.0
) -> Optional[List[List[int]]]:
    """Per doc, the subword ids of ``doc._.<name>`` (at most ``max_len``)
    followed by ``[SEP]``; just ``[SEP]`` for a doc without one, or, with
    probability ``drop``, in training, so that such docs are seen too.
    ``docs`` may hold token lists (the sentence filter's views)."""
    if not name:
        return None
    if not Doc.has_extension(name):
        raise ValueError(f"context {name!r} is not a registered Doc extension (doc._.{name})")
    out = []
    for doc in docs:
        owner = doc if isinstance(doc, Doc) else (doc[0].doc if len(doc) else None)
        text = owner._.get(name) if owner is not None else None
        ids: List[int] = []
        if isinstance(text, str) and text.strip() and not (drop and random.random() < drop):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_len]
        out.append(ids + [tokenizer.sep_token_id])
    return out


def collate(
    module: SoftPromptModule,
    pieces: List[List[List[int]]],
    windows: List[Window],
    budget: int,
    gold: Optional[List[Dict[str, List[int]]]],
    device: torch.device,
    context: Optional[List[List[int]]] = None,
) -> Dict[str, Any]:
    """Padded id, mask and word-position tensors for ``windows``: ``[CLS]``
    (context ids) words ``[SEP]``; the prompt goes in at embedding time."""
    tok = module.tokenizer
    cls_id, sep_id, pad_id = tok.cls_token_id, tok.sep_token_id, tok.pad_token_id or 0
    N = len(windows)
    ctx = [context[w.doc] if context is not None else [] for w in windows]
    max_sub = max(len(c) + sum(min(len(pieces[w.doc][i]), budget) for i in w.words) for c, w in zip(ctx, windows))
    max_words = max(len(w.words) for w in windows)
    ids = torch.full((N, max_sub + 2), pad_id, dtype=torch.long)
    mask = torch.zeros((N, max_sub + 2), dtype=torch.long)
    word_pos = torch.zeros((N, max_words), dtype=torch.long)
    word_mask = torch.zeros((N, max_words), dtype=torch.bool)
    tasks = module.tasks
    gold_t = {t: torch.full((N, max_words), -100, dtype=torch.long) for t in tasks} if gold is not None else None
    for n, w in enumerate(windows):
        pos = len(ctx[n])
        row = [cls_id] + ctx[n]
        for j, i in enumerate(w.words):
            piece = pieces[w.doc][i][:budget]
            word_pos[n, j] = pos
            word_mask[n, j] = True
            row.extend(piece)
            pos += len(piece)
            if gold_t is not None:
                for t in tasks:
                    gold_t[t][n, j] = gold[w.doc][t][i]
        if gold_t is not None:
            # A window may start inside a mention: its first word is then the
            # window's B- tag (an I- at a sequence start is impossible under
            # the BIO constraints and would make the CRF loss unbounded).
            for t in tasks:
                first = int(gold_t[t][n, 0])
                if first >= 0 and module.tag_names[t][first].startswith("I-"):
                    gold_t[t][n, 0] = module.tag_names[t].index("B-" + module.tag_names[t][first][2:])
        row.append(sep_id)
        ids[n, : len(row)] = torch.tensor(row)
        mask[n, : len(row)] = 1
    batch = {
        "ids_full": ids.to(device),
        "mask_full": mask.to(device),
        "word_pos": word_pos.to(device),
        "word_mask": word_mask.to(device),
    }
    if gold_t is not None:
        batch["gold"] = {t: v.to(device) for t, v in gold_t.items()}
    return batch


@dataclass
class TaggerOutput:
    """What the model returns: a loss when gold was given; otherwise per doc
    and task, a tag index per token and per-token tag probabilities."""

    loss: Optional[float]
    tags: List[Dict[str, List[int]]]
    probs: List[Dict[str, numpy.ndarray]]


def _stitch(
    module: SoftPromptModule, docs: Sequence[Doc], windows: List[Window], decoded: Dict[str, Any]
) -> Tuple[List[Dict[str, List[int]]], List[Dict[str, numpy.ndarray]]]:
    tags = [{t: [0] * len(doc) for t in module.tasks} for doc in docs]
    probs = [{t: numpy.zeros((len(doc), len(module.tag_names[t])), dtype="float32") for t in module.tasks} for doc in docs]
    for task in module.tasks:
        o_index = module.tag_names[task].index("O")
        for d, doc in enumerate(docs):
            probs[d][task][:, o_index] = 1.0  # whitespace tokens: certainly O
        paths, prob = decoded[task]
        for n, w in enumerate(windows):
            lo, hi = w.core
            for j in range(lo, hi):
                i = w.words[j]
                tags[w.doc][task][i] = paths[n][j]
                probs[w.doc][task][i] = prob[n, j]
    return tags, probs


def run_batch(
    model: Model, docs: Sequence[Doc], gold: Optional[List[Dict[str, List[int]]]], is_train: bool
) -> Tuple[TaggerOutput, Any]:
    shim: PyTorchShim = model.shims[0]
    module: SoftPromptModule = shim._model
    if module is None:
        raise ValueError("The soft-prompt tagger is not initialised: call nlp.initialize() first.")
    budget = model.attrs["budget"]
    pieces = word_pieces(module.tokenizer, docs)
    windows = [w for d, p in enumerate(pieces) for w in make_windows(p, d, budget, model.attrs["stride"])]
    predicting = not is_train and gold is None
    if predicting and model.attrs.get("bucket_by_length"):
        # longest first, so each step pads to a similar length; _stitch reads
        # each window's own doc and positions, so the order is free
        windows.sort(key=lambda w: -sum(min(len(pieces[w.doc][i]), budget) for i in w.words))
    if not windows:  # only empty or whitespace docs
        tags, probs = _stitch(module, docs, [], {t: ([], None) for t in module.tasks})
        return TaggerOutput(loss=0.0 if gold is not None else None, tags=tags, probs=probs), lambda d_loss: None
    context = context_ids(
        module.tokenizer, docs, model.attrs["context"], model.attrs["context_len"], model.attrs["context_dropout"] if is_train else 0.0
    )
    device = shim.device
    mode = model.attrs.get("inference", "fp32") if predicting else "fp32"
    if mode == "int8" and device.type != "cpu":
        raise ValueError(f"inference = 'int8' runs on CPU only (torch dynamic quantisation); the tagger is on {device}: use 'bf16' or 'fp32'")
    loss_total = 0.0
    chunk = model.attrs["max_windows_per_step"]
    decoded_all: Dict[str, Any] = {}
    for k in range(0, len(windows), chunk):
        part = windows[k : k + chunk]
        batch = collate(module, pieces, part, budget, gold, device, context)
        batch["task_weights"] = model.attrs["task_weights"]
        batch["decode"] = gold is None
        if mode == "bf16":
            batch["autocast"] = torch.bfloat16
        if is_train:
            out, bp = shim.begin_update(ArgsKwargs(args=(batch,), kwargs={}))
            loss = out["loss"]
            # Backpropagate each chunk at once, so that only one chunk's graph
            # is alive; gradients accumulate until the pipe's finish_update.
            bp(ArgsKwargs(args=(loss,), kwargs={"grad_tensors": (torch.ones_like(loss),)}))
            loss_total += float(loss.detach())
        else:
            if mode == "int8":
                with torch.no_grad():
                    out = shim.int8_module()(batch)
            else:
                out = shim.predict(ArgsKwargs(args=(batch,), kwargs={}))
            if gold is not None:
                loss_total += float(out["loss"])
            else:
                for task, (paths, prob) in out["decoded"].items():
                    prev_paths, prev_probs = decoded_all.get(task, ([], []))
                    decoded_all[task] = (prev_paths + paths, prev_probs + [prob])
    if gold is not None:
        return TaggerOutput(loss=loss_total, tags=[], probs=[]), lambda d_loss: None
    merged = {}
    for task, (paths, probs) in decoded_all.items():
        width = max(p.shape[1] for p in probs)
        padded = [numpy.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0))) for p in probs]
        merged[task] = (paths, numpy.concatenate(padded, 0))
    tags, probs = _stitch(module, docs, windows, merged)
    return TaggerOutput(loss=None, tags=tags, probs=probs), lambda d_loss: None


# ------------------------------------------------------------------ thinc model


class SoftPromptShim(PyTorchShim):
    """A PyTorchShim whose new layers (prompt projections, heads, CRF
    transitions) take ``head_lr_scale`` times the optimiser's learning rate.

    They start from scratch, while the encoder starts pretrained: at an
    encoder-sized rate (1e-4, a few hundred steps) a CRF's transition scores
    move by about 1e-3 and the heads barely leave their initialisation, so
    the encoder ends up fitting a random projection.
    """

    def __init__(self, *args: Any, head_lr_scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_lr_scale = head_lr_scale
        self._int8: Optional[Tuple[SoftPromptModule, SoftPromptModule]] = None

    def int8_module(self) -> SoftPromptModule:
        """The int8 inference copy of the current weights (built on first
        use; dropped whenever the fp32 weights change)."""
        if self._int8 is None or self._int8[0] is not self._model:
            self._int8 = (self._model, quantize_int8(self._model))
        return self._int8[1]

    def finish_update(self, optimizer: Any) -> None:
        # thinc keys a shim's parameters (shim id, torch parameter name)
        self._int8 = None
        super().finish_update(ScaledOptimizer(optimizer, self.head_lr_scale, scales=_not_encoder))

    @contextlib.contextmanager
    def use_params(self, params: Any):
        self._int8 = None
        with super().use_params(params):
            yield
        self._int8 = None

    def from_bytes(self, bytes_data: bytes) -> "SoftPromptShim":
        self._int8 = None
        return super().from_bytes(bytes_data)


def _not_encoder(key: Tuple[int, str]) -> bool:
    return not key[1].startswith("encoder.")


def _serialize(module: Optional[SoftPromptModule]) -> bytes:
    """HF config + tokenizer files + tags/prompts + state dict, in one tar."""
    if module is None:
        return b""
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        module.encoder.config.to_json_file(os.path.join(tmp, "config.json"))
        module.tokenizer.save_pretrained(os.path.join(tmp, "tokenizer"))
        meta = {
            "tag_names": module.tag_names,
            "prompts": module.task_prompt,
            "heads": module.head_types,
            "strategy": module.strategy,
            "dropout": module.dropout.p,
        }
        srsly.write_json(os.path.join(tmp, "meta.json"), meta)
        torch.save(module.state_dict(), os.path.join(tmp, "state.pt"))
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(tmp, arcname=".")
    return buf.getvalue()


def _deserialize(_: Any, data: bytes, device: torch.device) -> Optional[SoftPromptModule]:
    if not data:
        return None
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            tar.extractall(tmp, filter="data")
        meta = srsly.read_json(os.path.join(tmp, "meta.json"))
        config = AutoConfig.from_pretrained(os.path.join(tmp, "config.json"))
        try:  # same architecture as at initialisation: no pooler where possible
            encoder = AutoModel.from_config(config, add_pooling_layer=False)
        except TypeError:
            encoder = AutoModel.from_config(config)
        tokenizer = AutoTokenizer.from_pretrained(os.path.join(tmp, "tokenizer"))
        tokenizer.model_max_length = 10**9
        module = SoftPromptModule(encoder, tokenizer, meta["tag_names"], meta["prompts"], meta["heads"], meta["strategy"], meta["dropout"])
        module.load_state_dict(torch.load(os.path.join(tmp, "state.pt"), map_location=device))
    module.to(device)
    return module


def _forward(model: Model, X: Tuple[List[Doc], Optional[List[Dict[str, List[int]]]]], is_train: bool):
    docs, gold = X
    return run_batch(model, docs, gold, is_train)


def _init(model: Model, X: Any = None, Y: Any = None) -> None:
    """Load the pretrained encoder and build heads for ``attrs["tag_names"]``
    (set by the pipe from its labels)."""
    from transformers import AutoModel, AutoTokenizer

    tag_names = model.attrs.get("tag_names")
    if not tag_names:
        raise ValueError("Set model.attrs['tag_names'] (the pipe does this from its labels) before initialising.")
    name = resolve_model_path(model.attrs["encoder"])
    tokenizer = AutoTokenizer.from_pretrained(name)
    tokenizer.model_max_length = 10**9  # whole docs are tokenised, then windowed
    try:  # BERT-style encoders: skip the unused pooler
        encoder = AutoModel.from_pretrained(name, add_pooling_layer=False)
    except TypeError:
        encoder = AutoModel.from_pretrained(name)
    module = SoftPromptModule(encoder, tokenizer, tag_names, model.attrs["prompts"], model.attrs["heads"], model.attrs["strategy"], model.attrs["dropout"])
    _check_budget(model, module)
    shim: PyTorchShim = model.shims[0]
    module.to(get_torch_default_device())
    shim._model = module


def _check_budget(model: Model, module: SoftPromptModule) -> None:
    max_pos = getattr(module.encoder.config, "max_position_embeddings", 512)
    # RoBERTa-style models reserve padding_idx + 1 positions
    if module.encoder.config.model_type in ("roberta", "xlm-roberta", "camembert"):
        max_pos -= 2
    ctx = model.attrs["context_len"] + 1 if model.attrs["context"] else 0
    needed = model.attrs["budget"] + module.max_prompt_len + ctx + 2
    if needed > max_pos:
        raise ValueError(
            f"window ({model.attrs['budget']}) + longest prompt ({module.max_prompt_len}) + context ({ctx}) "
            f"+ 2 special tokens = {needed} exceeds the encoder's {max_pos} positions: lower `window` or "
            "shorten the prompts or the context."
        )
    if model.attrs["context"] and not Doc.has_extension(model.attrs["context"]):
        raise ValueError(f"context {model.attrs['context']!r} is not a registered Doc extension (doc._.{model.attrs['context']})")


@registry.architectures("clinie.SoftPromptTagger.v1")
def build_soft_prompt_tagger(
    encoder: str,
    prompts: Dict[str, Optional[str]],
    heads: Dict[str, str],
    strategy: str = "full",
    window: int = 256,
    stride: int = 192,
    dropout: float = 0.1,
    task_weights: Dict[str, float] = {"concepts": 1.0, "aux": 0.5},
    max_windows_per_step: int = 16,
    head_lr_scale: float = 1.0,
    context: Optional[str] = None,
    context_len: int = 16,
    context_dropout: float = 0.0,
) -> Model[Tuple[List[Doc], Optional[List[Dict[str, List[int]]]]], TaggerOutput]:
    """Soft-prompt encoder with per-task softmax or CRF heads.

    encoder: Hugging Face name or local path (``pkg:module/subdir`` for weights
        shipped in a Python package).
    prompts: textual prompt per task (``concepts``, ``aux``); tasks with the same
        prompt share one encoder pass; an empty prompt means none.
    heads: ``crf`` or ``softmax`` per task.
    strategy: ``full`` trains everything; ``frozen`` trains only the prompt
        projections and heads.
    window, stride: subword budget of a window (prompt excluded) and the step
        between overlapping windows.
    task_weights: weight of each task's loss in the sum.
    max_windows_per_step: windows per forward/backward pass (memory bound).
    head_lr_scale: learning-rate multiplier for the layers trained from
        scratch (prompt projections, heads, CRFs); the encoder gets the
        optimiser's rate.
    context: a Doc extension (e.g. ``section``) whose text every window of
        the doc sees after the prompt; docs without it get none.
    context_len: at most this many subwords of it (the budget accounts for it).
    context_dropout: in training, the share of docs shown without their
        context, so that docs without one (plain notes) stay well served.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    for task, head in heads.items():
        if head not in HEADS:
            raise ValueError(f"head for {task!r} must be one of {HEADS}, got {head!r}")
    if not 0 < stride <= window:
        raise ValueError(f"stride ({stride}) must be in (0, window={window}]")
    if head_lr_scale <= 0:
        raise ValueError(f"head_lr_scale must be positive, got {head_lr_scale}")
    if context_len < 1:
        raise ValueError(f"context_len must be at least 1, got {context_len}")
    if not 0.0 <= context_dropout < 1.0:
        raise ValueError(f"context_dropout must be in [0, 1), got {context_dropout}")
    shim = SoftPromptShim(None, serialize_model=_serialize, deserialize_model=_deserialize, head_lr_scale=head_lr_scale)
    return Model(
        "soft_prompt_tagger",
        _forward,
        init=_init,
        shims=[shim],
        attrs={
            "encoder": encoder,
            "prompts": dict(prompts),
            "heads": dict(heads),
            "strategy": strategy,
            "budget": window,
            "stride": stride,
            "dropout": dropout,
            "task_weights": dict(task_weights),
            "max_windows_per_step": max_windows_per_step,
            "context": context or None,
            "context_len": context_len,
            "context_dropout": context_dropout,
            # prediction-time settings, owned by the pipe (never saved as its
            # weights): see the module docstring
            "inference": "fp32",
            "bucket_by_length": False,
        },
    )
