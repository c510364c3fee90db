"""``clinie_ensemble``: several trained pipelines voting on spans and cats
(seed 002's hard / soft / weighted-soft voting, seed 003's majority vote over
k-fold members).

Members are whole spaCy pipelines (a soft-prompt tagger, a textcat, a
``span_ruler``...), listed by path in ``members``. They are loaded at
``initialize`` (not when the component is created) and saved **inside** the
ensemble (``<pipe>/members/member0/`` ...), so ``spacy.load`` of a saved
ensemble needs neither the original paths nor an import. Each member sees a
copy of the doc's tokens in its own vocab (never the doc itself), so members
cannot disagree on tokenisation and ``predict`` does not touch the docs.

What is voted (``pipeline/voting.py`` has the rules and their tie-breaking):
- spans in ``doc.spans[spans_key]``, on exact (start, end, label); a
  member's confidence is ``span._.attributes["confidence"]`` (1.0 when it has
  none, e.g. rule-based members);
- ``doc.cats`` (sentence or document classifiers), when members set them and
  ``cats = true``.

Written: ``doc.spans[spans_key]`` with ids ``M1``..., and per mention
``span._.attributes = {"confidence": score, "votes": k, "members": n}`` and
``span._.kind`` (the members' majority); ``doc.cats``.

With a ``clinie_sentence_filter`` in front (``doc.spans[sentences_key]``
present), members only see the tokens of the kept sentences, so their
encoders skip the rest.

Extra members (the hook for LLM members, seed 002's first-token logits):
``extra_members`` maps a name to any object with
``predict(docs) -> List[MemberPrediction]`` (spans by token or character
offsets with a probability, and/or cats), registered in ``@misc`` and
referenced from the config; optional ``initialize(get_examples, nlp=...)``,
``to_disk(path)`` and ``from_disk(path)`` are called when present.
"""
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Protocol, Sequence, Tuple

import srsly
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import minibatch
from spacy.vocab import Vocab

from ..errors import Errors
from ..extensions import MENTIONS_KEY, register_extensions, set_mention_attrs
from ..scoring.components import score_ensemble
from ..sentences import SENTENCES_KEY, kept_token_indices, tokens_doc
from .voting import METHODS, SpanKey, member_scores, vote_cats, vote_spans


@dataclass
class MemberPrediction:
    """One member's prediction for one doc. ``spans``: (start, end, label)
    token offsets -> probability; ``char_spans``: the same by character
    offsets (snapped outwards to tokens), for members that work on text;
    ``kinds``: optional span -> kind; ``cats``: label -> probability."""

    spans: Dict[SpanKey, float] = field(default_factory=dict)
    char_spans: Dict[SpanKey, float] = field(default_factory=dict)
    kinds: Dict[SpanKey, str] = field(default_factory=dict)
    cats: Dict[str, float] = field(default_factory=dict)


class EnsembleMember(Protocol):
    def predict(self, docs: List[Doc]) -> List[MemberPrediction]: ...


@Language.factory(
    "clinie_ensemble",
    assigns=["doc.spans", "doc.cats"],
    default_config={
        "members": [],
        "extra_members": {},
        "voting": "soft",
        "weights": {},
        "weights_from": None,
        "threshold": 0.5,
        "min_votes": None,
        "spans_key": MENTIONS_KEY,
        "overlaps": False,
        "cats": True,
        "exclusive_cats": None,
        "sentences_key": SENTENCES_KEY,
        "batch_size": 16,
        "overwrite": True,
        "scorer": {"@scorers": "clinie.ensemble_scorer.v1"},
    },
    default_score_weights={f"{MENTIONS_KEY}_f": 1.0, f"{MENTIONS_KEY}_p": 0.0, f"{MENTIONS_KEY}_r": 0.0, "cats_score": 0.0},
)
def make_ensemble(
    nlp: Language,
    name: str,
    members: List[str],
    extra_members: Dict[str, Any],
    voting: str,
    weights: Dict[str, float],
    weights_from: Optional[str],
    threshold: float,
    min_votes: Optional[int],
    spans_key: Optional[str],
    overlaps: bool,
    cats: bool,
    exclusive_cats: Optional[bool],
    sentences_key: Optional[str],
    batch_size: int,
    overwrite: bool,
    scorer: Optional[Callable],
) -> "Ensemble":
    """members: paths of trained pipelines, loaded at initialize.
    extra_members: name -> object with ``predict(docs)`` (e.g. an LLM).
    voting: hard | soft | weighted_soft.
    weights: member name (``member0``... in ``members`` order, or the
        extra member's key) -> weight, for weighted_soft (missing: 1.0).
    weights_from: read each pipeline member's weight from its
        ``meta["performance"][weights_from]`` at initialize (e.g.
        ``mentions_f``, seed 002's dev F1 weights); ``weights`` overrides.
    threshold: soft methods accept a span with mean confidence >= threshold.
    min_votes: hard voting needs this many votes (null: strict majority).
    spans_key: span group to vote on and write (null: no span voting).
    overlaps: keep overlapping accepted spans (false: best first).
    cats: vote on doc.cats; exclusive_cats: null infers it from the members'
        textcat components.
    sentences_key: when a doc has this span group (from
        clinie_sentence_filter), members only see those tokens.
    """
    return Ensemble(
        nlp.vocab,
        name,
        members=members,
        extra_members=extra_members,
        voting=voting,
        weights=weights,
        weights_from=weights_from,
        threshold=threshold,
        min_votes=min_votes,
        spans_key=spans_key,
        overlaps=overlaps,
        cats=cats,
        exclusive_cats=exclusive_cats,
        sentences_key=sentences_key,
        batch_size=batch_size,
        overwrite=overwrite,
        scorer=scorer,
    )


def _contiguous(start: int, end: int, index: Sequence[int]) -> List[Tuple[int, int]]:
    """Map a span over a compacted doc (token i = original ``index[i]``) back
    to original token ranges, split where kept sentences were not adjacent."""
    pieces = []
    s = start
    for i in range(start + 1, end + 1):
        if i == end or index[i] != index[i - 1] + 1:
            pieces.append((index[s], index[i - 1] + 1))
            s = i
    return pieces


def _confidence(span: Span) -> float:
    attrs = span._.attributes or {}
    conf = attrs.get("confidence")
    return 1.0 if conf is None else float(conf)


class PipelineMember:
    """A trained pipeline as an ensemble member."""

    def __init__(self, nlp: Language, spans_key: Optional[str], sentences_key: Optional[str], batch_size: int) -> None:
        self.nlp = nlp
        self.spans_key = spans_key
        self.sentences_key = sentences_key
        self.batch_size = batch_size

    def predict(self, docs: List[Doc]) -> List[MemberPrediction]:
        register_extensions()
        indices = [kept_token_indices(doc, self.sentences_key) for doc in docs]
        copies = [
            tokens_doc(doc, idx if idx is not None else range(len(doc)), self.nlp.vocab)
            for doc, idx in zip(docs, indices)
        ]
        out = []
        for doc, idx, copy in zip(docs, indices, self.nlp.pipe(copies, batch_size=self.batch_size)):
            pred = MemberPrediction(cats=dict(copy.cats))
            if self.spans_key and self.spans_key in copy.spans:
                for span in copy.spans[self.spans_key]:
                    pieces = [(span.start, span.end)] if idx is None else _contiguous(span.start, span.end, idx)
                    for s, e in pieces:
                        key = (s, e, span.label_)
                        pred.spans[key] = max(pred.spans.get(key, 0.0), min(max(_confidence(span), 0.0), 1.0))
                        if span._.kind:
                            pred.kinds[key] = span._.kind
            out.append(pred)
        return out


def textcat_info(nlp: Language) -> Tuple[List[str], Optional[bool]]:
    """The cats labels of ``nlp``'s classifiers (textcats and ensembles) and
    whether they are exclusive (None when it has no classifier)."""
    from spacy.pipeline import TextCategorizer
    from spacy.pipeline.textcat_multilabel import MultiLabel_TextCategorizer

    labels: List[str] = []
    exclusive = None
    for _, pipe in nlp.pipeline:
        if isinstance(pipe, TextCategorizer):
            labels.extend(lab for lab in pipe.labels if lab not in labels)
            exclusive = not isinstance(pipe, MultiLabel_TextCategorizer)
        elif isinstance(pipe, Ensemble):
            labels.extend(lab for lab in pipe.cfg.get("cat_labels", []) if lab not in labels)
            exclusive = pipe.cfg.get("exclusive_cats")
    return labels, exclusive


class Ensemble(Pipe):
    def __init__(
        self,
        vocab: Vocab,
        name: str = "clinie_ensemble",
        *,
        members: Sequence[str] = (),
        extra_members: Optional[Dict[str, Any]] = None,
        voting: str = "soft",
        weights: Optional[Dict[str, float]] = None,
        weights_from: Optional[str] = None,
        threshold: float = 0.5,
        min_votes: Optional[int] = None,
        spans_key: Optional[str] = MENTIONS_KEY,
        overlaps: bool = False,
        cats: bool = True,
        exclusive_cats: Optional[bool] = None,
        sentences_key: Optional[str] = SENTENCES_KEY,
        batch_size: int = 16,
        overwrite: bool = True,
        scorer: Optional[Callable] = score_ensemble,
    ) -> None:
        if voting not in METHODS:
            raise ValueError(Errors.E108.format(name=name, methods=METHODS, voting=voting))
        register_extensions()
        self.vocab = vocab
        self.name = name
        self.scorer = scorer
        self.extra_members: Dict[str, Any] = dict(extra_members or {})
        for key, member in self.extra_members.items():
            if not callable(getattr(member, "predict", None)):
                raise TypeError(Errors.E109.format(name=name, key=key))
        self.pipelines: Dict[str, Language] = {}
        self.cfg: Dict[str, Any] = {
            "member_paths": [str(p) for p in members],
            "member_names": [],
            "voting": voting,
            "weights": dict(weights or {}),
            "weights_from": weights_from,
            "threshold": threshold,
            "min_votes": min_votes,
            "spans_key": spans_key,
            "overlaps": overlaps,
            "cats": cats,
            "exclusive_cats": exclusive_cats,
            "cat_labels": [],
            "sentences_key": sentences_key,
            "batch_size": batch_size,
            "overwrite": overwrite,
        }

    # ------------------------------------------------------------ members

    @property
    def member_names(self) -> List[str]:
        return list(self.pipelines) + list(self.extra_members)

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["cat_labels"])

    def member_weights(self) -> List[float]:
        return [float(self.cfg["weights"].get(n, 1.0)) for n in self.member_names]

    def _members(self) -> List[Any]:
        b = self.cfg["batch_size"]
        runners: List[Any] = [
            PipelineMember(nlp, self.cfg["spans_key"], self.cfg["sentences_key"], b) for nlp in self.pipelines.values()
        ]
        return runners + list(self.extra_members.values())

    def add_member(self, nlp: Language, name: Optional[str] = None) -> str:
        """Add a loaded pipeline as a member; returns its name."""
        name = name or f"member{len(self.pipelines)}"
        if name in self.pipelines or name in self.extra_members:
            raise ValueError(Errors.E110.format(name=self.name, member=name))
        self.pipelines[name] = nlp
        self.cfg["member_names"] = list(self.pipelines)
        self._update_member_info(name, nlp)
        return name

    def _update_member_info(self, name: str, nlp: Language) -> None:
        key = self.cfg["weights_from"]
        if key and name not in self.cfg["weights"]:
            perf = (nlp.meta.get("performance") or {}).get(key)
            if perf is None:
                raise ValueError(Errors.E111.format(name=self.name, member=name, key=key))
            self.cfg["weights"][name] = float(perf)
        labels, exclusive = textcat_info(nlp)
        self.cfg["cat_labels"] += [lab for lab in labels if lab not in self.cfg["cat_labels"]]
        if self.cfg["exclusive_cats"] is None and exclusive is not None:
            self.cfg["exclusive_cats"] = exclusive

    def initialize(
        self,
        get_examples: Optional[Callable[[], Iterable[Example]]] = None,
        *,
        nlp: Optional[Language] = None,
        members: Optional[Sequence[str]] = None,
    ) -> None:
        """Load the member pipelines from ``members`` (default: the paths of
        the config) and initialise extra members."""
        import spacy

        paths = [str(p) for p in (members if members is not None else self.cfg["member_paths"])]
        self.cfg["member_paths"] = paths
        self.pipelines = {}
        self.cfg["member_names"] = []
        self.cfg["cat_labels"] = []
        for path in paths:
            if not Path(path).exists():
                raise ValueError(Errors.E112.format(name=self.name, path=path))
            self.add_member(spacy.load(path))
        for member in self.extra_members.values():
            init = getattr(member, "initialize", None)
            if callable(init):
                init(get_examples, nlp=nlp)
        self._check()

    def _check(self) -> None:
        n = len(self.member_names)
        if not n:
            raise ValueError(Errors.E113.format(name=self.name))
        if self.cfg["voting"] == "hard" and self.cfg["min_votes"] is not None and not 1 <= self.cfg["min_votes"] <= n:
            raise ValueError(Errors.E114.format(name=self.name, n=n, min_votes=self.cfg['min_votes']))
        unknown = set(self.cfg["weights"]) - set(self.member_names)
        if unknown:
            raise ValueError(Errors.E115.format(name=self.name, unknown=sorted(unknown), member_names=self.member_names))

    # ------------------------------------------------------------ inference

    def predict(self, docs: Iterable[Doc]) -> List[List[MemberPrediction]]:
        """Per member, per doc predictions (docs are not modified)."""
        docs = list(docs)
        if not self.member_names:
            raise ValueError(Errors.E116.format(name=self.name))
        out = []
        for name, member in zip(self.member_names, self._members()):
            preds = list(member.predict(docs))
            if len(preds) != len(docs):
                raise ValueError(Errors.E117.format(name=self.name, member=name, n_preds=len(preds), n_docs=len(docs)))
            out.append(preds)
        return out

    def _token_spans(self, doc: Doc, pred: MemberPrediction) -> Dict[SpanKey, float]:
        spans = member_scores(pred.spans.items())
        for (start, end, label), p in pred.char_spans.items():
            span = doc.char_span(start, end, label=label, alignment_mode="expand")
            if span is not None and len(span):
                key = (span.start, span.end, label)
                spans[key] = max(spans.get(key, 0.0), min(max(float(p), 0.0), 1.0))
        return spans

    def __call__(self, doc: Doc) -> Doc:
        self.set_annotations([doc], self.predict([doc]))
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        for docs in minibatch(stream, size=batch_size):
            self.set_annotations(docs, self.predict(docs))
            yield from docs

    def set_annotations(self, docs: Iterable[Doc], predictions: List[List[MemberPrediction]]) -> None:
        cfg = self.cfg
        weights = self.member_weights()
        n = len(predictions)
        for d, doc in enumerate(docs):
            per_member = [predictions[m][d] for m in range(n)]
            key = cfg["spans_key"]
            if key and (cfg["overwrite"] or key not in doc.spans):
                member_spans = [self._token_spans(doc, p) for p in per_member]
                accepted = vote_spans(
                    member_spans,
                    cfg["voting"],
                    weights=weights,
                    threshold=cfg["threshold"],
                    min_votes=cfg["min_votes"],
                    overlaps=cfg["overlaps"],
                )
                doc._.mention_attrs = {}
                spans = []
                for i, ((start, end, label), v) in enumerate(accepted):
                    span = Span(doc, start, end, label=label, span_id=f"M{i + 1}")
                    kinds = [p.kinds[(start, end, label)] for p in per_member if (start, end, label) in p.kinds]
                    set_mention_attrs(
                        doc,
                        span.id_,
                        attributes={"confidence": round(v.score, 4), "votes": v.votes, "members": n},
                        kind=max(sorted(set(kinds)), key=kinds.count) if kinds else None,
                    )
                    spans.append(span)
                doc.spans[key] = spans
                doc._.relations = doc._.relations or []
            if cfg["cats"]:
                labels = list(cfg["cat_labels"])
                for p in per_member:
                    labels.extend(lab for lab in p.cats if lab not in labels)
                if labels and any(p.cats for p in per_member):
                    doc.cats = vote_cats(
                        [p.cats for p in per_member],
                        labels,
                        cfg["voting"],
                        exclusive=cfg["exclusive_cats"] is not False,
                        weights=weights,
                        threshold=cfg["threshold"],
                        min_votes=cfg["min_votes"],
                    )

    def score(self, examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        if self.scorer is None:
            return {}
        return self.scorer(
            examples,
            spans_key=self.cfg["spans_key"],
            cat_labels=list(self.cfg["cat_labels"]) if self.cfg["cats"] else [],
            exclusive_cats=self.cfg["exclusive_cats"],
            **kwargs,
        )

    # ------------------------------------------------------------ serialisation

    def to_disk(self, path, *, exclude: Iterable[str] = ()) -> None:
        path = Path(path)
        if path.exists():
            shutil.rmtree(path / "members", ignore_errors=True)
            shutil.rmtree(path / "extra", ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "cfg", self.cfg)
        for name, nlp in self.pipelines.items():
            (path / "members").mkdir(exist_ok=True)
            nlp.to_disk(path / "members" / name)
        for name, member in self.extra_members.items():
            if callable(getattr(member, "to_disk", None)):
                (path / "extra").mkdir(exist_ok=True)
                member.to_disk(path / "extra" / name)

    def _restore_cfg(self, saved: Dict[str, Any]) -> None:
        """Saved member data, with the voting settings of the config this
        component was built from (so ``spacy.load(..., config=...)``
        overrides such as ``voting`` or ``threshold`` take effect)."""
        for key in ("voting", "threshold", "min_votes", "overlaps", "cats", "sentences_key", "batch_size", "overwrite", "spans_key"):
            saved.pop(key, None)
        saved["weights"] = {**saved.get("weights", {}), **self.cfg["weights"]}
        if self.cfg["exclusive_cats"] is not None:
            saved.pop("exclusive_cats", None)
        self.cfg.update(saved)

    def from_disk(self, path, *, exclude: Iterable[str] = ()) -> "Ensemble":
        import spacy

        path = Path(path)
        self._restore_cfg(srsly.read_json(path / "cfg"))
        self.pipelines = {name: spacy.load(path / "members" / name) for name in self.cfg["member_names"]}
        for name, member in self.extra_members.items():
            if callable(getattr(member, "from_disk", None)) and (path / "extra" / name).exists():
                member.from_disk(path / "extra" / name)
        return self

    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        return srsly.msgpack_dumps(
            {
                "cfg": self.cfg,
                "configs": {name: nlp.config.to_str() for name, nlp in self.pipelines.items()},
                "members": {name: nlp.to_bytes() for name, nlp in self.pipelines.items()},
            }
        )

    def from_bytes(self, data: bytes, *, exclude: Iterable[str] = ()) -> "Ensemble":
        from spacy.util import load_model_from_config
        from thinc.api import Config

        msg = srsly.msgpack_loads(data)
        self._restore_cfg(msg["cfg"])
        self.pipelines = {}
        for name in self.cfg["member_names"]:
            nlp = load_model_from_config(Config().from_str(msg["configs"][name]), auto_fill=True, validate=False)
            self.pipelines[name] = nlp.from_bytes(msg["members"][name])
        return self
