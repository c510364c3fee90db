"""Relation classification architectures (the split of spaCy's rel_component
tutorial, ``scripts/rel_model.py``): candidate generation, pair features and
a multi-label classifier. Functions here read spans and tokens of a Doc but
never write to it; labels, loss and Doc writes live in
``pipeline/relation_linker.py``.

A candidate is an ordered pair ``(head, tail)`` of spans from one span group.
Its feature vector concatenates the pooled token vectors of the head, of the
tail and of the tokens between them (zeros when adjacent or overlapping), a
hashed embedding of each span's label, and two scalars: whether the head
comes first, and log(1 + gap in tokens). The classifier returns one logit
per relation label (the pipe applies the sigmoid, so the loss is a proper
binary cross-entropy).
"""
from typing import Callable, List, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc, Span
from spacy.util import registry
from thinc.api import Dropout, HashEmbed, Linear, Model, Ragged, Relu, chain, reduce_mean
from thinc.types import Floats2d

from ..util import resolve_model_path

CandidateGetter = Callable[[Doc], List[Tuple[Span, Span]]]

# A Hugging Face name or local path for spacy-transformers' ``name``, with
# ``pkg:<module>/<subdir>`` resolved into an installed package: configs of
# stock transformer pipelines need no machine-specific path.
registry.misc.register("clinie.EncoderPath.v1", func=resolve_model_path)


class SpanPairCandidates:
    """Ordered pairs of distinct spans of ``doc.spans[spans_key]`` whose gap
    is at most ``max_length`` tokens, optionally restricted to
    ``(head_label, tail_label)`` pairs. A class, not a closure, so that
    pipelines pickle."""

    def __init__(self, spans_key: str, max_length: int, label_pairs: Optional[List[List[str]]]) -> None:
        if label_pairs and any(len(pair) != 2 for pair in label_pairs):
            raise ValueError(f"label_pairs must be [head_label, tail_label] pairs, got {label_pairs!r}")
        self.spans_key = spans_key
        self.max_length = max_length
        self.allowed = {tuple(pair) for pair in label_pairs} if label_pairs else None

    def __call__(self, doc: Doc) -> List[Tuple[Span, Span]]:
        if self.spans_key not in doc.spans:
            return []
        # stable sort: spans with equal offsets and label keep the group's order
        spans = sorted(doc.spans[self.spans_key], key=lambda s: (s.start, s.end, s.label_))
        pairs = []
        for i, head in enumerate(spans):
            for j, tail in enumerate(spans):
                if i == j:
                    continue
                if self.allowed is not None and (head.label_, tail.label_) not in self.allowed:
                    continue
                gap = max(head.start, tail.start) - min(head.end, tail.end)
                if gap <= self.max_length:
                    pairs.append((head, tail))
        return pairs


@registry.misc("clinie.SpanPairCandidates.v1")
def create_span_pair_candidates(
    spans_key: str = "mentions",
    max_length: int = 50,
    label_pairs: Optional[List[List[str]]] = None,
) -> CandidateGetter:
    """Candidate pairs for the relation linker: ordered pairs of distinct
    spans within ``max_length`` tokens. ``label_pairs`` (``[[head_label,
    tail_label], ...]``) restricts them by type: TAC 2017 relations go from an
    AdverseReaction to its modifiers, n2c2 2018 ones from a modifier to a
    Drug; left out, every ordered pair is a candidate."""
    return SpanPairCandidates(spans_key, max_length, label_pairs)


def _segments(doc_offset: int, head: Span, tail: Span) -> Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]:
    first, second = (head, tail) if head.start <= tail.start else (tail, head)
    between = (first.end, second.start) if second.start > first.end else (0, 0)
    return (
        (doc_offset + head.start, doc_offset + head.end),
        (doc_offset + tail.start, doc_offset + tail.end),
        (doc_offset + between[0], doc_offset + between[1]),
    )


@registry.architectures("clinie.SpanPairFeatures.v1")
def build_span_pair_features(
    tok2vec: Model[List[Doc], List[Floats2d]],
    get_candidates: CandidateGetter,
    pooling: Optional[Model[Ragged, Floats2d]] = None,
    label_width: int = 16,
    label_rows: int = 64,
) -> Model[List[Doc], Floats2d]:
    """One row per candidate pair of every doc, in the order of
    ``get_candidates``: [head pool, tail pool, between pool, head label
    embedding, tail label embedding, head-first, log(1 + gap)]."""
    pooling = pooling if pooling is not None else reduce_mean()
    label_embed = HashEmbed(nO=label_width, nV=label_rows, seed=17)
    model: Model[List[Doc], Floats2d] = Model(
        "span_pair_features",
        _pair_forward,
        init=_pair_init,
        dims={"nO": None},
        layers=[tok2vec, pooling, label_embed],
        refs={"tok2vec": tok2vec, "pooling": pooling, "label_embed": label_embed},
        attrs={"get_candidates": get_candidates},
    )
    if tok2vec.has_dim("nO") and tok2vec.get_dim("nO") is not None:
        model.set_dim("nO", 3 * tok2vec.get_dim("nO") + 2 * label_width + 2)
    return model


def _pair_init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> None:
    tok2vec = model.get_ref("tok2vec")
    tok2vec.initialize(X=X)
    model.get_ref("label_embed").initialize()
    width = tok2vec.get_dim("nO")
    model.set_dim("nO", 3 * width + 2 * model.get_ref("label_embed").get_dim("nO") + 2)


def _pair_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[Floats2d, Callable]:
    ops = model.ops
    tok2vec = model.get_ref("tok2vec")
    pooling = model.get_ref("pooling")
    label_embed = model.get_ref("label_embed")
    get_candidates: CandidateGetter = model.attrs["get_candidates"]
    tokvecs, bp_tokvecs = tok2vec(docs, is_train)
    lengths = [len(v) for v in tokvecs]
    X = ops.flatten(tokvecs) if tokvecs else ops.alloc2f(0, tok2vec.get_dim("nO"))
    width = X.shape[1]
    label_width = label_embed.get_dim("nO")
    starts: List[int] = []
    ends: List[int] = []
    head_labels: List[int] = []
    tail_labels: List[int] = []
    scalars: List[Tuple[float, float]] = []
    offset = 0
    for doc, n in zip(docs, lengths):
        for head, tail in get_candidates(doc):
            for s, e in _segments(offset, head, tail):
                starts.append(s)
                ends.append(e)
            head_labels.append(head.label)
            tail_labels.append(tail.label)
            gap = max(0, max(head.start, tail.start) - min(head.end, tail.end))
            scalars.append((1.0 if head.start <= tail.start else 0.0, float(numpy.log1p(gap))))
        offset += n
    n_pairs = len(head_labels)
    n_out = 3 * width + 2 * label_width + 2
    if n_pairs == 0:
        empty = ops.alloc2f(0, n_out)

        def backprop_empty(dY: Floats2d) -> List[Doc]:
            bp_tokvecs([ops.alloc2f(n, width) for n in lengths])
            return []

        return empty, backprop_empty
    seg_lengths = numpy.asarray(ends, dtype="int32") - numpy.asarray(starts, dtype="int32")
    nonempty = numpy.flatnonzero(seg_lengths > 0)
    index = numpy.concatenate([numpy.arange(starts[i], ends[i], dtype="int32") for i in nonempty])
    index_xp = ops.asarray1i(index)
    gathered = X[index_xp]
    pooled, bp_pooled = pooling(Ragged(gathered, ops.asarray1i(seg_lengths[nonempty])), is_train)
    seg_vecs = ops.alloc2f(len(seg_lengths), width)
    nonempty_xp = ops.asarray1i(nonempty)
    seg_vecs[nonempty_xp] = pooled
    keys = ops.asarray(numpy.asarray(head_labels + tail_labels, dtype="uint64"), dtype="uint64")
    label_vecs, bp_labels = label_embed(keys, is_train)
    Y = ops.xp.hstack(
        [
            seg_vecs.reshape((n_pairs, 3 * width)),
            label_vecs[:n_pairs],
            label_vecs[n_pairs:],
            ops.asarray2f(numpy.asarray(scalars, dtype="float32")),
        ]
    )

    def backprop(dY: Floats2d) -> List[Doc]:
        d_seg = dY[:, : 3 * width].reshape((n_pairs * 3, width))
        d_labels = ops.xp.vstack(
            [dY[:, 3 * width : 3 * width + label_width], dY[:, 3 * width + label_width : 3 * width + 2 * label_width]]
        )
        bp_labels(ops.xp.ascontiguousarray(d_labels))
        d_pooled = bp_pooled(ops.xp.ascontiguousarray(d_seg[nonempty_xp]))
        dX = ops.alloc2f(*X.shape)
        ops.scatter_add(dX, index_xp, d_pooled.data)
        bp_tokvecs(ops.unflatten(dX, ops.asarray1i(lengths)))
        return []

    return Y, backprop


@registry.architectures("clinie.RelationClassifier.v1")
def build_relation_classifier(
    hidden_width: int = 128,
    dropout: float = 0.1,
    nO: Optional[int] = None,
) -> Model[Floats2d, Floats2d]:
    """A hidden ReLU layer and a linear output of one logit per label (nO is
    set by the pipe from its labels)."""
    output = Linear(nO=nO)
    model = chain(Relu(nO=hidden_width), Dropout(dropout), output)
    model.set_ref("output_layer", output)
    return model


@registry.architectures("clinie.RelationModel.v1")
def build_relation_model(
    pair_features: Model[List[Doc], Floats2d],
    classifier: Model[Floats2d, Floats2d],
) -> Model[List[Doc], Floats2d]:
    """Docs -> a (n_candidates, n_labels) matrix of logits, candidates in the
    order of ``model.attrs["get_candidates"]`` applied to each doc."""
    if pair_features.has_dim("nO") and pair_features.get_dim("nO") is not None:
        first = classifier.layers[0]
        if first.has_dim("nI") is None:  # known but unset
            first.set_dim("nI", pair_features.get_dim("nO"))
    model = chain(pair_features, classifier)
    model.attrs["get_candidates"] = pair_features.attrs["get_candidates"]
    model.set_ref("tok2vec", pair_features.get_ref("tok2vec"))
    model.set_ref("pair_features", pair_features)
    model.set_ref("output_layer", classifier.get_ref("output_layer"))
    return model


def candidate_keys(pairs: Sequence[Tuple[Span, Span]]) -> List[Tuple[Tuple[int, int, str], Tuple[int, int, str]]]:
    """Offsets-and-label keys of candidate pairs, to align them with gold."""
    return [((h.start_char, h.end_char, h.label_), (t.start_char, t.end_char, t.label_)) for h, t in pairs]

