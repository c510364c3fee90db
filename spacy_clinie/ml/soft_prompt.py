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
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, PyTorchShim, get_torch_default_device

from ..util import resolve_model_path
from .soft_prompt_module import HEADS, SoftPromptModule
from .soft_prompt_shim import SoftPromptShim, deserialize_module, serialize_module
from .windows import Window, collate, context_ids, make_windows, stitch, word_pieces

STRATEGIES = ("full", "frozen")
INFERENCE = ("fp32", "int8", "bf16")


@dataclass
class TaggerOutput:
    """What the model returns: a loss when gold was given; otherwise per doc
    and task, a tag index per token and per-token tag probabilities."""

    loss: Optional[float]
    tags: List[Dict[str, List[int]]]
    probs: List[Dict[str, numpy.ndarray]]


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
        # longest first, so each step pads to a similar length; stitch reads
        # each window's own doc and positions, so the order is free
        windows.sort(key=lambda w: -sum(min(len(pieces[w.doc][i]), budget) for i in w.words))
    if not windows:  # only empty or whitespace docs
        tags, probs = stitch(module, docs, [], {t: ([], None) for t in module.tasks})
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
    tags, probs = stitch(module, docs, windows, merged)
    return TaggerOutput(loss=None, tags=tags, probs=probs), lambda d_loss: None


@dataclass
class EncodedWindow:
    """One window of a doc as the encoder sees it for a task, with the
    encoder's attentions: what the review app's attention view shows."""

    window: Window
    n_windows: int
    pieces: List[List[int]]  # subword ids per token of the doc
    budget: int  # subwords per window (a longer word keeps its first ``budget``)
    prompt_ids: List[int]  # the task's prompt, after [CLS]
    context_ids: List[int]  # the doc's context and its [SEP]; empty without one
    # (layers, S, S): attention averaged over heads, over the real positions
    # [CLS] prompt context words [SEP]
    attentions: numpy.ndarray
    tokenizer: Any


def encode_window(model: Model, doc: Doc, task: str, *, window: int = 0) -> EncodedWindow:
    """Run the tagger's encoder on window ``window`` of ``doc`` with
    ``task``'s prompt, as prediction does (eval mode, no gradients), and
    return its inputs and attentions."""
    module: Optional[SoftPromptModule] = model.shims[0]._model
    if module is None:
        raise ValueError("the tagger is not initialised")
    tokenizer = module.tokenizer
    budget = model.attrs["budget"]
    pieces = word_pieces(tokenizer, [doc])
    windows = make_windows(pieces[0], 0, budget, model.attrs["stride"])
    if not windows:
        raise ValueError("the instance has no words to attend to")
    chosen = windows[window]
    device = next(module.parameters()).device
    context = context_ids(tokenizer, [doc], model.attrs.get("context"), model.attrs.get("context_len", 0))
    batch = collate(module, pieces, [chosen], budget, None, device, context)
    group = module.prompt_keys.index(module.task_prompt[task])
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            emb, mask, _ = module.embed(group, batch)
            out = module.encoder(inputs_embeds=emb, attention_mask=mask, output_attentions=True)
    finally:
        module.train(was_training)
    n_real = int(mask[0].sum())
    layers = numpy.stack([a[0].mean(dim=0)[:n_real, :n_real].float().cpu().numpy() for a in out.attentions])
    return EncodedWindow(
        window=chosen,
        n_windows=len(windows),
        pieces=pieces[0],
        budget=budget,
        prompt_ids=getattr(module, f"prompt_ids_{group}").tolist(),
        context_ids=context[0] if context else [],
        attentions=layers,
        tokenizer=tokenizer,
    )


# ------------------------------------------------------------------ thinc model


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
    shim = SoftPromptShim(None, serialize_model=serialize_module, deserialize_model=deserialize_module, head_lr_scale=head_lr_scale)
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
