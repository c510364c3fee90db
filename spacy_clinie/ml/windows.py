"""Windowing for the soft-prompt tagger (cf. spacy-transformers' span
getters and ``layers/``): subword pieces per token, overlapping windows of
whole words that fit the encoder, the doc's context ids, padded batches, and
stitching the windows' predictions back into per-token tags.

Documents longer than the encoder's window are cut into overlapping windows
of whole words; each word takes its prediction from the window in which it
is farthest from an edge. The window budget accounts for the prompt."""
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy
import torch
from spacy.tokens import Doc

if TYPE_CHECKING:
    from .soft_prompt_module import SoftPromptModule


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
    module: "SoftPromptModule",
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
                    g = gold[w.doc].get(t)  # None: unknown for this doc, left at -100 (no loss)
                    if g is not None:
                        gold_t[t][n, j] = g[i]
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


def stitch(
    module: "SoftPromptModule", docs: Sequence[Doc], windows: List[Window], decoded: Dict[str, Any]
) -> Tuple[List[Dict[str, List[int]]], List[Dict[str, numpy.ndarray]]]:
    """Per doc and task, tag indices and tag probabilities from the windows'
    decoded outputs: each word takes them from the window whose trusted core
    holds it; whitespace tokens are certainly ``O``."""
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
