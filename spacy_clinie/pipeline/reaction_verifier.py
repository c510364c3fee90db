"""``clinie_reaction_verifier``: a second stage that judges each reaction.

The tagger decides token by token; users, TAC and OnSIDES consume the set
of reaction strings per section. The verifier gathers every candidate
string of a doc (the tagger's spans, matches of the strings annotated in
training, coordination expansions that spell discontiguous strings) and
scores each one from all its occurrences in context and from how often it
is annotated where it occurs in other labels
(``candidates.reactions.FEATURE_NAMES``). Then:

- a candidate the tagger predicted is kept when its probability reaches
  ``keep_threshold`` (its spans are dropped from ``doc.spans[spans_key]``
  otherwise);
- a candidate only the dictionary or a coordination proposed is added when
  it reaches ``add_threshold``, as spans with ``attributes["source"]`` (a
  coordination's spans carry ``_.fragments``, so TAC XML and brat export the
  discontiguous string exactly).

Every kept span gets ``attributes["reaction_probability"]``, and
``doc._.reactions`` lists each accepted string with its probability and
sources. The thresholds are settings chosen on dev (``clinie
tune-verifier``) and saved in the pipeline's config.
"""
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
import srsly
from spacy import util
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate
from thinc.types import Floats2d

from ..candidates.coordination import CoordinationCandidate
from ..candidates.dictionary import TermDictionary, gold_reaction_strings
from ..candidates.reactions import ReactionCandidate, candidate_features, gather_candidates, gold_labels
from ..errors import Errors
from ..extensions import MENTIONS_KEY, ensure_mention_ids, get_mentions, register_extensions, set_mention_attrs
from ..ml import reaction_verifier  # noqa: F401  (registers the architecture)
from ..ml.losses import binary_cross_entropy
from ..scoring import ADR_LABEL, align_docs, normalize_string, span_text
from ..scoring.reactions import score_reactions

REACTION_PROBABILITY = "reaction_probability"
SOURCE = "source"

DEFAULT_VERIFIER_MODEL = Config().from_str(
    """
[model]
@architectures = "clinie.ReactionVerifier.v1"
hidden_width = 32
dropout = 0.1
"""
)["model"]

Coordination = Callable[[Doc, Iterable[Span]], List[CoordinationCandidate]]
Scored = Tuple[List[List[ReactionCandidate]], List[numpy.ndarray]]


@Language.factory(
    "clinie_reaction_verifier",
    requires=["doc.spans"],
    assigns=["doc.spans", "doc._.reactions"],
    default_config={
        "model": DEFAULT_VERIFIER_MODEL,
        "spans_key": MENTIONS_KEY,
        "label": ADR_LABEL,
        "keep_threshold": 0.0,
        "add_threshold": 0.5,
        "use_dictionary": True,
        "coordination": {"@misc": "clinie.CoordinationCandidates.v1"},
        "context": 4,
        "split_breaks": True,
        "set_reactions": True,
        "scorer": {"@scorers": "clinie.reaction_scorer.v1", "spans_key": MENTIONS_KEY},
    },
    default_score_weights={"reactions_f": 1.0, "reactions_p": 0.0, "reactions_r": 0.0},
)
def make_reaction_verifier(
    nlp: Language,
    name: str,
    model: Model[Floats2d, Floats2d],
    spans_key: str,
    label: str,
    keep_threshold: float,
    add_threshold: float,
    use_dictionary: bool,
    coordination: Optional[Coordination],
    context: int,
    split_breaks: bool,
    set_reactions: bool,
    scorer: Optional[Callable],
) -> "ReactionVerifier":
    """keep_threshold: lowest probability at which a reaction the tagger
    predicted is kept (0 keeps them all). add_threshold: lowest probability
    at which a dictionary or coordination candidate is added (above 1 adds
    none). use_dictionary: match the strings annotated in training.
    coordination: a coordination-expansion generator, or null. context:
    tokens before an occurrence searched for negation and hedge cues.
    split_breaks: a tagger span across a line break or a table's column gap
    is replaced by its pieces, each judged like a tagger reaction."""
    return ReactionVerifier(
        nlp.vocab,
        model,
        name,
        make_doc=nlp.make_doc,
        spans_key=spans_key,
        label=label,
        keep_threshold=keep_threshold,
        add_threshold=add_threshold,
        use_dictionary=use_dictionary,
        coordination=coordination,
        context=context,
        split_breaks=split_breaks,
        set_reactions=set_reactions,
        scorer=scorer,
    )


class ReactionVerifier(TrainablePipe):
    """Scores reaction candidates; keeps, drops and adds spans by threshold.

    Training (``spacy train``) draws candidates from the gold spans and their
    one-token boundary perturbations as well as from the dictionary and the
    coordinations, so the model sees the fragments a tagger produces; the
    dictionary rates of a training doc leave out its own drug label."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "reaction_verifier",
        *,
        make_doc: Callable[[str], Doc],
        spans_key: str = MENTIONS_KEY,
        label: str = ADR_LABEL,
        keep_threshold: float = 0.0,
        add_threshold: float = 0.5,
        use_dictionary: bool = True,
        coordination: Optional[Coordination] = None,
        context: int = 4,
        split_breaks: bool = False,
        set_reactions: bool = True,
        scorer: Optional[Callable] = None,
    ) -> None:
        register_extensions()
        self.vocab = vocab
        self.model = model
        self.name = name
        self.make_doc = make_doc
        self.spans_key = spans_key
        self.label = label
        self.keep_threshold = keep_threshold
        self.add_threshold = add_threshold
        self.use_dictionary = use_dictionary
        self.coordination = coordination
        self.context = context
        self.split_breaks = split_breaks
        self.set_reactions = set_reactions
        self.scorer = scorer
        self.dictionary = TermDictionary(vocab)
        self.cfg: Dict[str, Any] = {}
        self._train_cache: Dict[Tuple, Tuple[numpy.ndarray, numpy.ndarray]] = {}

    # ------------------------------------------------------------ candidates

    def candidates(self, doc: Doc, reference: Optional[Doc] = None) -> List[ReactionCandidate]:
        return gather_candidates(
            doc,
            dictionary=self.dictionary if self.use_dictionary else None,
            coordination=self.coordination,
            reference=reference,
            spans_key=self.spans_key,
            label=self.label,
            split_breaks=self.split_breaks,
        )

    def features(self, doc: Doc, candidates: Sequence[ReactionCandidate], *, own_label_out: bool = False) -> numpy.ndarray:
        exclude = str(doc._.label_id) if own_label_out and doc._.label_id else None
        return candidate_features(doc, candidates, self.dictionary, exclude_label=exclude, context=self.context)

    # ------------------------------------------------------------ prediction

    def predict(self, docs: Iterable[Doc]) -> Scored:
        """Candidates of each doc and their probabilities."""
        docs = list(docs)
        cands = [self.candidates(doc) for doc in docs]
        feats = [self.features(doc, c) for doc, c in zip(docs, cands)]
        flat = numpy.vstack(feats) if feats else numpy.zeros((0, 0), dtype="float32")
        if flat.shape[0] == 0:
            return cands, [numpy.zeros((0,), dtype="float32") for _ in docs]
        probs = self.model.ops.to_numpy(self.model.predict(self.model.ops.asarray2f(flat)))[:, 0]
        out, k = [], 0
        for c in cands:
            out.append(probs[k:k + len(c)])
            k += len(c)
        return cands, out

    def set_annotations(self, docs: Iterable[Doc], scores: Scored) -> None:
        for doc, cands, probs in zip(docs, scores[0], scores[1]):
            self._annotate(doc, cands, probs)

    def _annotate(self, doc: Doc, cands: List[ReactionCandidate], probs: numpy.ndarray) -> None:
        if not cands:
            return
        ensure_mention_ids(doc, self.spans_key)  # attributes are stored per mention id
        prob = {c.key: float(p) for c, p in zip(cands, probs)}
        by_key = {c.key: c for c in cands}
        kept: List[Span] = []
        for span in get_mentions(doc, self.spans_key):
            if span.label_ != self.label:
                kept.append(span)
                continue
            key = normalize_string(span_text(span))
            if key in prob and (prob[key] < self.keep_threshold or by_key[key].sources & {"broken", "tagger"} == {"broken"}):
                continue
            kept.append(span)
        spelled = {normalize_string(span_text(s)) for s in kept if s.label_ == self.label}
        used = {s.id_ for s in kept if s.id_}
        added: List[Tuple[Span, str, Dict[str, Any]]] = []
        n = 0
        for cand in cands:
            split = "split" in cand.sources
            threshold = self.keep_threshold if split else self.add_threshold
            if {"tagger", "broken"} & cand.sources or cand.key in spelled or prob[cand.key] < threshold:
                continue
            spelled.add(cand.key)
            if cand.fragments:
                first, last = cand.fragments[0], cand.fragments[-1]
                span = doc.char_span(first[0], last[1], label=self.label, alignment_mode="expand")
                todo = [(span, {"fragments": [list(f) for f in cand.fragments]})] if span is not None else []
            else:
                todo = [(doc[s.start:s.end], {"source": "split"} if split else {}) for s in cand.spans]
            for span, extra in todo:
                n += 1
                while f"V{n}" in used:
                    n += 1
                used.add(f"V{n}")
                added.append((Span(doc, span.start, span.end, self.label, span_id=f"V{n}"), cand.key, extra))
        doc.spans[self.spans_key] = kept + [s for s, _, _ in added]
        for span, key, extra in added:
            source = "coordination" if extra.get("fragments") else extra.get("source", "dictionary")
            attrs = {SOURCE: source, REACTION_PROBABILITY: prob[key], "confidence": prob[key]}
            if by_key[key].kind:
                attrs["kind"] = by_key[key].kind
            set_mention_attrs(doc, span.id_, attributes=attrs, fragments=extra.get("fragments"))
        for span in doc.spans[self.spans_key]:
            key = normalize_string(span_text(span))
            if span.label_ == self.label and key in prob and span.id_:
                attrs = dict(span._.attributes or {})
                attrs[REACTION_PROBABILITY] = prob[key]
                attrs.setdefault(SOURCE, "tagger")
                set_mention_attrs(doc, span.id_, attributes=attrs)
        if self.set_reactions:
            strings = sorted({normalize_string(span_text(s)) for s in doc.spans[self.spans_key] if s.label_ == self.label})
            doc._.reactions = [
                {
                    "id": f"R{i + 1}",
                    "str": key,
                    REACTION_PROBABILITY: prob.get(key),
                    "sources": sorted(by_key[key].sources) if key in by_key else ["tagger"],
                }
                for i, key in enumerate(strings)
            ]

    def sweep(self, gold: Sequence[Doc], pred: Sequence[Doc], grid: Sequence[float] = ()) -> List[Dict[str, float]]:
        """Reaction P/R/F1 on ``gold`` for every (keep, add) threshold pair of
        ``grid`` (default 0.00, 0.05, ..., 1.00 plus 1.01 = add none), from
        one scoring of ``pred`` (the docs as the upstream pipeline left
        them). Rows are sorted best F1 first."""
        grid = list(grid) or [round(0.05 * i, 2) for i in range(21)] + [1.01]
        units = []
        for g, p in align_docs(list(gold), list(pred)):
            (cands,), (probs,) = self.predict([p])
            truth = gold_reaction_strings(g, self.label, self.spans_key)
            scored = {c.key: (float(q), bool({"tagger", "split"} & c.sources)) for c, q in zip(cands, probs) if "broken" not in c.sources or "tagger" in c.sources}
            upstream = {normalize_string(span_text(s)) for s in get_mentions(p, self.spans_key) if s.label_ == self.label}
            fixed = upstream - {c.key for c in cands}  # spans the verifier does not judge (discontiguous)
            units.append((truth, scored, fixed))
        rows = []
        for keep in grid:
            for add in grid:
                tp = n_pred = n_gold = 0
                for truth, scored, fixed in units:
                    out = set(fixed) | {k for k, (q, tagged) in scored.items() if q >= (keep if tagged else add)}
                    tp += len(out & truth)
                    n_pred += len(out)
                    n_gold += len(truth)
                prec = tp / n_pred if n_pred else 0.0
                rec = tp / n_gold if n_gold else 0.0
                f = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
                rows.append({"keep_threshold": keep, "add_threshold": add, "p": prec, "r": rec, "f": f})
        rows.sort(key=lambda r: (-r["f"], r["keep_threshold"], -r["add_threshold"]))
        return rows

    # ------------------------------------------------------------ training

    def _batch(self, examples: Sequence[Example]) -> Tuple[numpy.ndarray, numpy.ndarray]:
        feats, truths = [], []
        for eg in examples:
            # an example's candidates depend only on its texts and the
            # dictionary, which is fixed after initialize: computed once
            key = (eg.reference.text, eg.reference._.doc_id, eg.reference._.label_id, len(eg.predicted.spans.get(self.spans_key, [])))
            if key not in self._train_cache:
                cands = self.candidates(eg.predicted, reference=eg.reference)
                self._train_cache[key] = (
                    self.features(eg.predicted, cands, own_label_out=True),
                    gold_labels(cands, gold_reaction_strings(eg.reference, self.label, self.spans_key)),
                )
            feats.append(self._train_cache[key][0])
            truths.append(self._train_cache[key][1])
        if not feats:
            return numpy.zeros((0, 0), dtype="float32"), numpy.zeros((0, 1), dtype="float32")
        return numpy.vstack(feats), numpy.vstack(truths)

    def get_loss(self, examples: Iterable[Example], scores: Floats2d) -> Tuple[float, Floats2d]:
        """Binary cross-entropy; the gradient is taken with respect to the
        logits (``Logistic`` passes it through unchanged)."""
        _, truths = self._batch(list(examples))
        return self._loss(scores, self.model.ops.asarray2f(truths))

    def _loss(self, scores: Floats2d, truths: Floats2d) -> Tuple[float, Floats2d]:
        if truths.shape != scores.shape:
            raise ValueError(Errors.E152.format(name=self.name, n_scored=scores.shape[0], n_targets=truths.shape[0]))
        d_scores = (scores - truths) / max(1, scores.shape[0])
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
        validate_examples(examples, "ReactionVerifier.update")
        feats, truths = self._batch(examples)
        if feats.shape[0] == 0:
            return losses
        set_dropout_rate(self.model, drop)
        scores, backprop = self.model.begin_update(self.model.ops.asarray2f(feats))
        loss, d_scores = self._loss(scores, self.model.ops.asarray2f(truths))
        backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def initialize(self, get_examples: Callable[[], Iterable[Example]], *, nlp: Optional[Language] = None) -> None:
        """Build the dictionary from the training references (strings and
        per-label counts), then size the model on a sample of features."""
        validate_get_examples(get_examples, "ReactionVerifier.initialize")
        self._train_cache = {}
        self.dictionary = TermDictionary(self.vocab).build((eg.reference for eg in get_examples()), self.make_doc, label=self.label)
        if not len(self.dictionary) and self.use_dictionary:
            raise ValueError(Errors.E153.format(name=self.name, label=self.label))
        sample = list(islice(get_examples(), 10))
        feats, truths = self._batch(sample)
        if feats.shape[0] == 0:
            raise ValueError(Errors.E154.format(name=self.name))
        self.model.initialize(X=self.model.ops.asarray2f(feats), Y=self.model.ops.asarray2f(truths))

    # ------------------------------------------------------------ serialisation

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        return srsly.msgpack_dumps({"model": self.model.to_bytes(), "dictionary": self.dictionary.to_bytes(), "cfg": self.cfg})

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "ReactionVerifier":
        msg = srsly.msgpack_loads(bytes_data)
        self.dictionary = TermDictionary(self.vocab).from_bytes(msg["dictionary"], self.make_doc)
        self._train_cache = {}
        self.cfg = msg.get("cfg", {})
        self.model.from_bytes(msg["model"])  # restores the layers' dims with their weights
        return self

    def to_disk(self, path: Path, *, exclude: Iterable[str] = tuple()) -> None:
        path = util.ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "verifier.msgpack").write_bytes(self.to_bytes(exclude=exclude))

    def from_disk(self, path: Path, *, exclude: Iterable[str] = tuple()) -> "ReactionVerifier":
        return self.from_bytes((util.ensure_path(path) / "verifier.msgpack").read_bytes(), exclude=exclude)

    def score(self, examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        return score_reactions(examples, spans_key=self.spans_key, label=self.label)
