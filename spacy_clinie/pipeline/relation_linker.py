"""``clinie_relation_linker``: relations between mentions, as ``doc._.relations``.

The pipe scores every candidate pair of mentions (``clinie.SpanPairCandidates.v1``:
ordered pairs within a token distance, optionally restricted by type) with a
multi-label classifier over pair features from a shared encoder
(``clinie.RelationModel.v1``), and writes one relation
``{"id", "label", "head", "tail", "score", "predicted_by"}`` per pair and label
whose probability reaches the label's threshold. Head and tail are mention
ids (``span.id_``), so DocBin, the TAC XML writer and the brat writer carry
the relations, and the soft-prompt tagger's relation-aware tags derive from
the same list. Conventions: TAC 2017, head = AdverseReaction, tail = the
modifier (XML arg1 / arg2); n2c2 2018, head = the modifier, tail = the Drug
(brat Arg1 / Arg2).
"""
from itertools import islice
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate
from thinc.types import Floats2d

from ..errors import Errors
from ..extensions import MENTIONS_KEY, ensure_mention_ids, register_extensions
from ..ml.losses import binary_cross_entropy
from ..ml import rel_model  # noqa: F401  (registers the architectures)
from ..ml.optimizers import ScaledOptimizer
from ..scoring.components import score_relations

DEFAULT_REL_MODEL_CONFIG = """
[model]
@architectures = "clinie.RelationModel.v1"

[model.pair_features]
@architectures = "clinie.SpanPairFeatures.v1"
label_width = 16
label_rows = 64

[model.pair_features.tok2vec]
@architectures = "spacy.HashEmbedCNN.v2"
pretrained_vectors = null
width = 96
depth = 2
embed_size = 2000
window_size = 1
maxout_pieces = 3
subword_features = true

[model.pair_features.get_candidates]
@misc = "clinie.SpanPairCandidates.v1"
spans_key = "mentions"
max_length = 50
label_pairs = null

[model.pair_features.pooling]
@layers = "reduce_mean.v1"

[model.classifier]
@architectures = "clinie.RelationClassifier.v1"
hidden_width = 128
dropout = 0.1
"""
DEFAULT_REL_MODEL = Config().from_str(DEFAULT_REL_MODEL_CONFIG)["model"]

PREDICTED_BY = "predicted_by"
GoldKey = Tuple[str, str]


@Language.factory(
    "clinie_relation_linker",
    requires=["doc.spans"],
    assigns=["doc._.relations"],
    default_config={
        "model": DEFAULT_REL_MODEL,
        "spans_key": MENTIONS_KEY,
        "threshold": 0.5,
        "thresholds": {},
        "exclusive": False,
        "use_gold_mentions": True,
        "overwrite": True,
        "head_lr_scale": 1.0,
        "scorer": {"@scorers": "clinie.relation_scorer.v1", "spans_key": MENTIONS_KEY},
    },
    default_score_weights={"relations_f": 1.0, "relations_p": 0.0, "relations_r": 0.0},
)
def make_relation_linker(
    nlp: Language,
    name: str,
    model: Model[List[Doc], Floats2d],
    spans_key: str,
    threshold: float,
    thresholds: Dict[str, float],
    exclusive: bool,
    use_gold_mentions: bool,
    overwrite: bool,
    head_lr_scale: float,
    scorer: Optional[Callable],
) -> "RelationLinker":
    """The default model has its own small CNN tok2vec so that the pipe works
    anywhere; ``configs/relations_euadr.cfg`` shares a transformer instead
    (``spacy-transformers.TransformerListener.v1``). ``head_lr_scale``
    multiplies the learning rate of this pipe's own layers: when a shared
    transformer is fine-tuned at its small rate, a classifier trained from
    scratch at that rate barely moves."""
    return RelationLinker(
        nlp.vocab,
        model,
        name,
        spans_key=spans_key,
        threshold=threshold,
        thresholds=thresholds,
        exclusive=exclusive,
        use_gold_mentions=use_gold_mentions,
        overwrite=overwrite,
        head_lr_scale=head_lr_scale,
        scorer=scorer,
    )


class RelationLinker(TrainablePipe):
    """Multi-label relation classification over candidate mention pairs.

    Thresholds are settings, not state: they come from the config each time
    the pipeline is built, so they can be tuned on a trained pipeline with
    ``spacy.load(path, config={"components": {name: {"threshold": ...}}})``.
    Labels are state (``cfg["labels"]``) and are saved with the model.
    """

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], Floats2d],
        name: str = "clinie_relation_linker",
        *,
        spans_key: str = MENTIONS_KEY,
        threshold: float = 0.5,
        thresholds: Optional[Dict[str, float]] = None,
        exclusive: bool = False,
        use_gold_mentions: bool = True,
        overwrite: bool = True,
        head_lr_scale: float = 1.0,
        scorer: Optional[Callable] = None,
    ) -> None:
        register_extensions()
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(Errors.E122.format(threshold=threshold))
        if head_lr_scale <= 0:
            raise ValueError(Errors.E123.format(head_lr_scale=head_lr_scale))
        self.vocab = vocab
        self.model = model
        self.name = name
        self.cfg: Dict[str, Any] = {"labels": [], "spans_key": spans_key}
        self.threshold = threshold
        self.thresholds = dict(thresholds or {})
        self.exclusive = exclusive
        self.use_gold_mentions = use_gold_mentions
        self.overwrite = overwrite
        self.head_lr_scale = head_lr_scale
        self.scorer = scorer

    # ------------------------------------------------------------ labels

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    @property
    def spans_key(self) -> str:
        return self.cfg["spans_key"]

    def add_label(self, label: str) -> int:
        if not isinstance(label, str):
            raise ValueError(Errors.E124.format(label=label))
        if label in self.labels:
            return 0
        self._allow_extra_label()
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    def _get_candidates(self, doc: Doc) -> List[Tuple[Span, Span]]:
        return self.model.attrs["get_candidates"](doc)

    # ------------------------------------------------------------ prediction

    def predict(self, docs: Iterable[Doc]) -> Floats2d:
        """Probabilities, one row per candidate pair (in candidate order, doc
        after doc) and one column per label. Does not modify the docs."""
        docs = list(docs)
        if not docs:
            return self.model.ops.alloc2f(0, len(self.labels))
        logits = self.model.predict(docs)
        return self.model.ops.sigmoid(logits)

    def _decode(self, scores: numpy.ndarray) -> List[List[Tuple[str, float]]]:
        """The labels of each pair whose probability reaches the threshold;
        with ``exclusive`` only the best label, if it reaches its own."""
        limits = numpy.asarray([self.thresholds.get(label, self.threshold) for label in self.labels], dtype="float32")
        out: List[List[Tuple[str, float]]] = []
        for row in scores:
            if self.exclusive:
                j = int(row.argmax()) if len(row) else -1
                out.append([(self.labels[j], float(row[j]))] if j >= 0 and row[j] >= limits[j] else [])
            else:
                out.append([(self.labels[j], float(row[j])) for j in numpy.flatnonzero(row >= limits)])
        return out

    def set_annotations(self, docs: Iterable[Doc], scores: Floats2d) -> None:
        """Write ``doc._.relations``. With ``overwrite`` the list is replaced;
        otherwise relations from elsewhere are kept, this pipe's earlier
        predictions are replaced, and a prediction equal to a kept relation
        (same head, tail and label) is not added twice. Mentions without an
        id get one (``M<n>``) since relations refer to mentions by id."""
        scores = self.model.ops.to_numpy(scores)
        i = 0
        for doc in docs:
            ensure_mention_ids(doc, self.spans_key)
            pairs = self._get_candidates(doc)
            decoded = self._decode(scores[i : i + len(pairs)])
            i += len(pairs)
            kept = [] if self.overwrite else [r for r in doc._.relations or [] if r.get(PREDICTED_BY) != self.name]
            seen = {(r["head"], r["tail"], r["label"]) for r in kept}
            used_ids = {str(r.get("id")) for r in kept}
            n = 0
            relations = list(kept)
            for (head, tail), labels in zip(pairs, decoded):
                for label, score in labels:
                    if (head.id_, tail.id_, label) in seen:
                        continue
                    n += 1
                    while f"R{n}" in used_ids:
                        n += 1
                    relations.append(
                        {"id": f"R{n}", "label": label, "head": head.id_, "tail": tail.id_, "score": round(score, 4), PREDICTED_BY: self.name}
                    )
            doc._.relations = relations
        if i != len(scores):
            raise ValueError(Errors.E125.format(n_scores=len(scores), n_pairs=i))

    # ------------------------------------------------------------ training

    def _gold_mentions_into_predicted(self, examples: Iterable[Example]) -> None:
        """Copy the reference mentions (with ids) into the predicted docs, as
        spaCy's entity linker does with ``use_gold_ents``."""
        key = self.spans_key
        for eg in examples:
            ref = list(eg.reference.spans[key]) if key in eg.reference.spans else []
            pred = eg.predicted
            spans = []
            for span in ref:
                new = pred.char_span(span.start_char, span.end_char, label=span.label_, span_id=span.id_, alignment_mode="expand")
                if new is not None:
                    spans.append(new)
            pred.spans[key] = spans

    def _truths(self, examples: Iterable[Example]) -> numpy.ndarray:
        """Binary targets aligned with the candidate pairs of the predicted
        docs: by mention id when the predicted mentions are the gold ones,
        else by character offsets and label."""
        index = {label: j for j, label in enumerate(self.labels)}
        rows: List[numpy.ndarray] = []
        for eg in examples:
            ref = eg.reference
            gold: Dict[GoldKey, Set[str]] = {}
            for rel in ref._.relations or []:
                gold.setdefault((rel["head"], rel["tail"]), set()).add(rel["label"])
            ref_ids = {(s.start_char, s.end_char, s.label_): s.id_ for s in ref.spans[self.spans_key]} if self.spans_key in ref.spans else {}
            for head, tail in self._get_candidates(eg.predicted):
                if self.use_gold_mentions:
                    key = (head.id_, tail.id_)
                else:
                    key = (
                        ref_ids.get((head.start_char, head.end_char, head.label_), ""),
                        ref_ids.get((tail.start_char, tail.end_char, tail.label_), ""),
                    )
                row = numpy.zeros(len(self.labels), dtype="float32")
                for label in gold.get(key, ()):
                    if label in index:
                        row[index[label]] = 1.0
                rows.append(row)
        if not rows:
            return numpy.zeros((0, len(self.labels)), dtype="float32")
        return numpy.vstack(rows)

    def get_loss(self, examples: Iterable[Example], scores: Floats2d) -> Tuple[float, Floats2d]:
        """Binary cross-entropy of the probabilities; the gradient is taken
        with respect to the logits (probability minus target)."""
        validate_examples(examples, "RelationLinker.get_loss")
        truths = self.model.ops.asarray2f(self._truths(examples))
        if truths.shape != scores.shape:
            raise ValueError(Errors.E126.format(n_scored=scores.shape[0], n_targets=truths.shape[0]))
        d_scores = scores - truths
        return binary_cross_entropy(self.model.ops, scores, truths), d_scores

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        losses = {} if losses is None else losses
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "RelationLinker.update")
        if not examples:
            return losses
        if self.use_gold_mentions:
            self._gold_mentions_into_predicted(examples)
        docs = [eg.predicted for eg in examples]
        set_dropout_rate(self.model, drop)
        logits, backprop = self.model.begin_update(docs)
        scores = self.model.ops.sigmoid(logits)
        loss, d_logits = self.get_loss(examples, scores)
        backprop(d_logits)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def finish_update(self, sgd: Optimizer) -> None:
        """Update this pipe's layers at ``head_lr_scale`` times the rate (a
        shared transformer is updated by its own pipe at the plain rate)."""
        self.model.finish_update(ScaledOptimizer(sgd, self.head_lr_scale))

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[List[str]] = None,
    ) -> None:
        """Labels from ``labels`` (e.g. ``[initialize.components.<name>.labels]``)
        or else from the relations of the training data; at least one needed."""
        validate_get_examples(get_examples, "RelationLinker.initialize")
        if labels is not None:
            for label in labels:
                self.add_label(label)
        else:
            for eg in get_examples():
                for rel in eg.reference._.relations or []:
                    self.add_label(rel["label"])
        if not self.labels:
            raise ValueError(Errors.E150.format(name=self.name))
        self.model.get_ref("output_layer").set_dim("nO", len(self.labels))
        sample = [eg.reference for eg in islice(get_examples(), 10)]
        self.model.initialize(X=sample)

    def _allow_extra_label(self) -> None:
        output = self.model.get_ref("output_layer")
        if output.has_param("W") is True:
            raise ValueError(Errors.E127.format(name=self.name))

    # ------------------------------------------------------------ scoring

    def score(self, examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        return score_relations(examples, spans_key=self.spans_key)


