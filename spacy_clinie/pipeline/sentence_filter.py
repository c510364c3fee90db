"""``clinie_sentence_filter``: seed 003's sentence filter in front of a
tagger.

The filter cuts each doc into sentence units (``spacy_clinie.sentences``:
sentences, also split at line breaks), classifies every unit with an
embedded sentence classifier (any pipeline that sets ``doc.cats``, e.g.
``configs/sentence_filter_cpu.cfg``'s textcat on MiniLM, or a
``clinie_ensemble`` of such classifiers) and writes the units whose
``cats[positive_label] >= threshold`` to ``doc.spans[sentences_key]``
(label = ``positive_label``). The group's ``attrs`` keep every unit's score
(``{"units": [[start, end, score], ...], "threshold": t}``), so the
decision can be analysed or redone with another threshold.

How the encoder work is skipped: ``clinie_soft_prompt_tagger`` and
``clinie_ensemble`` look for ``doc.spans[sentences_key]`` (their own
``sentences_key`` setting, default ``ade_sentences``). When it is there they
run their encoder only on the tokens of the kept units (concatenated in
order, so the encoder still fills whole windows), and tokens of rejected
units are tagged ``O`` without being encoded. A doc without the group (no
filter) is tagged whole; a doc whose group is empty gets no mentions.

The classifier pipeline is loaded at ``initialize`` from ``classifier`` (a
path) and saved inside the filter (``<pipe>/classifier/``), so ``spacy.load``
of the whole pipeline needs neither the original path nor an import.
"""
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import srsly
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example
from spacy.util import minibatch
from spacy.vocab import Vocab

from ..errors import Errors
from ..extensions import MENTIONS_KEY
from ..scoring.components import score_sentence_filter
from ..sentences import SENTENCES_KEY, sentence_units, unit_doc

Unit = Tuple[int, int]


@Language.factory(
    "clinie_sentence_filter",
    assigns=["doc.spans"],
    default_config={
        "classifier": None,
        "positive_label": "ADE",
        "threshold": 0.1,
        "sentences_key": SENTENCES_KEY,
        "split_newlines": True,
        "max_tokens": 0,
        "batch_size": 64,
        "scorer": {"@scorers": "clinie.sentence_filter_scorer.v1", "gold_key": MENTIONS_KEY},
    },
    default_score_weights={"sentences_f": 1.0, "sentences_p": 0.0, "sentences_r": 0.0, "sentences_mention_recall": 0.0, "sentences_kept_tokens": None},
)
def make_sentence_filter(
    nlp: Language,
    name: str,
    classifier: Optional[str],
    positive_label: str,
    threshold: float,
    sentences_key: str,
    split_newlines: bool,
    max_tokens: int,
    batch_size: int,
    scorer: Optional[Callable],
) -> "SentenceFilter":
    """classifier: path of a pipeline that sets doc.cats (loaded at initialize).
    positive_label / threshold: a unit is kept when cats[positive_label] >= threshold.
        The default 0.1 was chosen on TAC dev (by reaction F1, among 0.1/0.3/0.5)
        with the bag-of-words classifier, for both the 750-step and the 12-epoch
        tagger: higher thresholds drop gold mentions faster than false positives.
    sentences_key: span group for the kept units (what the tagger reads).
    split_newlines / max_tokens: unit segmentation (see spacy_clinie.sentences)."""
    return SentenceFilter(
        nlp.vocab,
        name,
        classifier=classifier,
        positive_label=positive_label,
        threshold=threshold,
        sentences_key=sentences_key,
        split_newlines=split_newlines,
        max_tokens=max_tokens,
        batch_size=batch_size,
        scorer=scorer,
    )


class SentenceFilter(Pipe):
    def __init__(
        self,
        vocab: Vocab,
        name: str = "clinie_sentence_filter",
        *,
        classifier: Optional[str] = None,
        positive_label: str = "ADE",
        threshold: float = 0.1,
        sentences_key: str = SENTENCES_KEY,
        split_newlines: bool = True,
        max_tokens: int = 0,
        batch_size: int = 64,
        scorer: Optional[Callable] = score_sentence_filter,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(Errors.E128.format(name=name, threshold=threshold))
        self.vocab = vocab
        self.name = name
        self.scorer = scorer
        self.classifier: Optional[Language] = None
        self.cfg: Dict[str, Any] = {
            "classifier_path": str(classifier) if classifier else None,
            "positive_label": positive_label,
            "threshold": threshold,
            "sentences_key": sentences_key,
            "split_newlines": split_newlines,
            "max_tokens": max_tokens,
            "batch_size": batch_size,
        }

    def initialize(
        self,
        get_examples: Optional[Callable[[], Iterable[Example]]] = None,
        *,
        nlp: Optional[Language] = None,
        classifier: Optional[str] = None,
    ) -> None:
        """Load the classifier pipeline from ``classifier`` (default: the
        config's path)."""
        import spacy

        path = classifier or self.cfg["classifier_path"]
        if not path:
            raise ValueError(Errors.E129.format(name=self.name))
        if not Path(path).exists():
            raise ValueError(Errors.E130.format(name=self.name, path=path))
        self.cfg["classifier_path"] = str(path)
        self.set_classifier(spacy.load(path))

    def set_classifier(self, nlp: Language) -> None:
        """Use a loaded pipeline as the classifier; it must know the positive label."""
        from .ensemble import textcat_info

        labels, _ = textcat_info(nlp)
        if labels and self.cfg["positive_label"] not in labels:
            raise ValueError(Errors.E131.format(name=self.name, positive_label=self.cfg['positive_label'], labels=labels))
        self.classifier = nlp

    def units(self, doc: Doc) -> List[Unit]:
        return sentence_units(doc, split_newlines=self.cfg["split_newlines"], max_tokens=self.cfg["max_tokens"])

    def predict(self, docs: Iterable[Doc]) -> List[List[Tuple[Unit, float]]]:
        """Per doc, its units with the classifier's positive-label score."""
        if self.classifier is None:
            raise ValueError(Errors.E132.format(name=self.name))
        docs = list(docs)
        units = [self.units(doc) for doc in docs]
        flat = (unit_doc(doc, s, e, self.classifier.vocab) for doc, us in zip(docs, units) for s, e in us)
        label = self.cfg["positive_label"]
        scores = [float(u.cats.get(label, 0.0)) for u in self.classifier.pipe(flat, batch_size=self.cfg["batch_size"])]
        out, k = [], 0
        for us in units:
            out.append(list(zip(us, scores[k : k + len(us)])))
            k += len(us)
        return out

    def __call__(self, doc: Doc) -> Doc:
        self.set_annotations([doc], self.predict([doc]))
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        for docs in minibatch(stream, size=batch_size):
            self.set_annotations(docs, self.predict(docs))
            yield from docs

    def set_annotations(self, docs: Iterable[Doc], predictions: List[List[Tuple[Unit, float]]]) -> None:
        key, label, t = self.cfg["sentences_key"], self.cfg["positive_label"], self.cfg["threshold"]
        for doc, units in zip(docs, predictions):
            kept = [Span(doc, s, e, label=label) for (s, e), score in units if score >= t]
            group = SpanGroup(doc, name=key, spans=kept, attrs={"threshold": t, "units": [[s, e, round(score, 4)] for (s, e), score in units]})
            doc.spans[key] = group

    def score(self, examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        if self.scorer is None:
            return {}
        return self.scorer(examples, sentences_key=self.cfg["sentences_key"], **kwargs)

    # ------------------------------------------------------------ serialisation

    def to_disk(self, path, *, exclude: Iterable[str] = ()) -> None:
        path = Path(path)
        shutil.rmtree(path / "classifier", ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "cfg", self.cfg)
        if self.classifier is not None:
            self.classifier.to_disk(path / "classifier")

    def from_disk(self, path, *, exclude: Iterable[str] = ()) -> "SentenceFilter":
        import spacy

        path = Path(path)
        saved = srsly.read_json(path / "cfg")
        self.cfg["classifier_path"] = saved.get("classifier_path")
        if (path / "classifier").exists():
            self.set_classifier(spacy.load(path / "classifier"))
        return self
