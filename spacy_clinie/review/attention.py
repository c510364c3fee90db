"""Encoder self-attention for one instance and task (seed 000, Figure 8).

The tagger's encoder is run as it runs for the task: ``[CLS]``, the task's
projected soft prompt, the words' subwords, ``[SEP]``. Attention is read with
``output_attentions=True`` and brought from subwords to display units
(``[CLS]``, each prompt piece, each word, ``[SEP]``): rows are averaged over
a unit's subwords and columns summed, so rows still sum to one.

Views computed here (plotted in :mod:`.plots`):
- saliency: per layer, the share of attention each unit receives from the
  words (mean over heads and word queries);
- flow: attention rollout (Abnar & Zuidema, 2020), the product over layers
  of ``0.5 * A + 0.5 * I``, i.e. how much each unit's final state draws on
  every input unit through all layers;
- importance: the rollout received by each prompt piece or word, as a
  percentage (from all words, or from one focus word), for bar and area plots.
"""
from dataclasses import dataclass, field
from typing import Any, List, Optional

import numpy
from spacy.tokens import Doc

from ..ml.soft_prompt import encode_window


@dataclass
class AttentionView:
    units: List[str]  # display labels
    kinds: List[str]  # "cls", "prompt", "context", "word", "sep"
    word_index: List[Optional[int]]  # token index in the instance for words
    layers: numpy.ndarray  # (L, U, U) mean over heads, unit level
    rollout: numpy.ndarray  # (U, U)
    n_words_shown: int
    n_words: int
    notes: List[str] = field(default_factory=list)

    @property
    def saliency(self) -> numpy.ndarray:
        """(L, U): share of attention each unit receives from the words."""
        words = [i for i, k in enumerate(self.kinds) if k == "word"]
        received = self.layers[:, words, :].mean(axis=1)
        return received / numpy.clip(received.sum(axis=1, keepdims=True), 1e-12, None)

    def importance(self, focus: Optional[int] = None) -> numpy.ndarray:
        """(U,) percentage of rollout attention received by prompt pieces and
        words ([CLS]/[SEP] excluded and the rest renormalised), from all
        words or from the word at token index ``focus``."""
        rows = [i for i, k in enumerate(self.kinds) if k == "word"]
        if focus is not None and focus in self.word_index:
            rows = [self.word_index.index(focus)]
        received = self.rollout[rows, :].mean(axis=0)
        mask = numpy.array([k in ("prompt", "word") for k in self.kinds])
        received = numpy.where(mask, received, 0.0)
        return 100.0 * received / max(received.sum(), 1e-12)

    def layer_importance(self, focus: Optional[int] = None) -> numpy.ndarray:
        """(L, U) like :meth:`importance` but per layer (raw attention)."""
        rows = [i for i, k in enumerate(self.kinds) if k == "word"]
        if focus is not None and focus in self.word_index:
            rows = [self.word_index.index(focus)]
        received = self.layers[:, rows, :].mean(axis=1)
        mask = numpy.array([k in ("prompt", "word") for k in self.kinds])
        received = numpy.where(mask[None, :], received, 0.0)
        return 100.0 * received / numpy.clip(received.sum(axis=1, keepdims=True), 1e-12, None)


def rollout(layers: numpy.ndarray) -> numpy.ndarray:
    """Attention rollout over subword-level, head-averaged layers (L, S, S)."""
    n = layers.shape[1]
    out = numpy.eye(n)
    for a in layers:
        a = 0.5 * a + 0.5 * numpy.eye(n)
        a = a / a.sum(axis=1, keepdims=True)
        out = a @ out
    return out


def _to_units(a: numpy.ndarray, groups: List[List[int]]) -> numpy.ndarray:
    """Subword matrix (..., S, S) to unit matrix (..., U, U): rows averaged,
    columns summed over each unit's subwords."""
    S = a.shape[-1]
    avg = numpy.zeros((len(groups), S))
    summ = numpy.zeros((S, len(groups)))
    for u, g in enumerate(groups):
        avg[u, g] = 1.0 / len(g)
        summ[g, u] = 1.0
    return avg @ a @ summ


def compute_attention(pipe: Any, doc: Doc, task: str) -> AttentionView:
    """Attention of the tagger's encoder on ``doc`` as run for ``task``. An
    instance longer than one encoder window shows its first window."""
    enc = encode_window(pipe.model, doc, task)
    tokenizer, budget, window, pieces = enc.tokenizer, enc.budget, enc.window, enc.pieces
    layers = enc.attentions
    notes: List[str] = []
    n_words = sum(1 for p in pieces if p)
    if enc.n_windows > 1:
        notes.append(f"attention shown for the first {len(window.words)} of {n_words} words (one encoder window)")
    # display units over the subword sequence [CLS] prompt words [SEP]
    units, kinds, word_index, groups = ["[CLS]"], ["cls"], [None], [[0]]
    for k, pid in enumerate(enc.prompt_ids):
        units.append("⟨" + tokenizer.convert_ids_to_tokens(pid) + "⟩")
        kinds.append("prompt")
        word_index.append(None)
        groups.append([1 + k])
    pos = 1 + len(enc.prompt_ids)
    for pid in enc.context_ids:  # the doc's context and its [SEP]
        units.append(tokenizer.convert_ids_to_tokens(pid))
        kinds.append("context")
        word_index.append(None)
        groups.append([pos])
        pos += 1
    for i in window.words:
        n = len(pieces[i][:budget])
        units.append(doc[i].text)
        kinds.append("word")
        word_index.append(i)
        groups.append(list(range(pos, pos + n)))
        pos += n
    units.append("[SEP]")
    kinds.append("sep")
    word_index.append(None)
    groups.append([pos])
    return AttentionView(
        units=units,
        kinds=kinds,
        word_index=word_index,
        layers=_to_units(layers, groups),
        rollout=_to_units(rollout(layers), groups),
        n_words_shown=len(window.words),
        n_words=n_words,
        notes=notes,
    )
