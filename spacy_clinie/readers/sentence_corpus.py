"""``clinie.SentenceCorpus.v1``: sentence-classification examples from
annotated docs (seed 003's filter training data).

Each doc of a ``.spacy`` file is cut into sentence units
(``spacy_clinie.sentences.sentence_units``, the same units the
``clinie_sentence_filter`` classifies); a unit overlapping a mention in
``doc.spans[spans_key]`` is positive (``cats = {ADE: 1, NO_ADE: 0}``), the
others negative. Class imbalance (seeds 002 and 003):

- ``upsample_positives``: each positive unit appears this many times
  (seed 002 uses 3); a fraction such as 2.5 adds the third copy to a seeded
  half of the positives;
- ``sampling = "weighted"``: weighted random sampling with replacement;
  a positive unit is ``positive_weight`` times as likely to be drawn as a
  negative one (``"balanced"``: n_negative / n_positive, so both classes are
  drawn equally often); ``n_samples`` draws (0: as many as there are units).

The reader keeps one random generator across calls. ``spacy train`` calls a
reader once when ``max_epochs >= 0`` (the sample is then shuffled every
epoch) and once per epoch with ``max_epochs = -1`` (streamed), which draws a
fresh weighted sample each epoch.
"""
import random
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import registry

from ..extensions import MENTIONS_KEY, register_extensions
from ..sentences import sentence_units, unit_doc, unit_has_span

SAMPLING = ("none", "weighted")


def sentence_examples(
    docs: List[Doc],
    nlp: Language,
    *,
    spans_key: str = MENTIONS_KEY,
    positive_label: str = "ADE",
    negative_label: str = "NO_ADE",
    split_newlines: bool = True,
    max_tokens: int = 0,
) -> List[Example]:
    """One example per sentence unit, in corpus order."""
    out = []
    for doc in docs:
        spans = list(doc.spans.get(spans_key, []))
        for s, e in sentence_units(doc, split_newlines=split_newlines, max_tokens=max_tokens):
            positive = unit_has_span((s, e), spans)
            ref = unit_doc(doc, s, e, nlp.vocab)
            ref.cats = {positive_label: float(positive), negative_label: float(not positive)}
            out.append(Example(unit_doc(doc, s, e, nlp.vocab), ref))
    return out


def is_positive(eg: Example, positive_label: str) -> bool:
    return eg.reference.cats.get(positive_label, 0.0) >= 0.5


def upsample(examples: List[Example], factor: float, positive_label: str, rng: random.Random) -> List[Example]:
    """Positives repeated ``factor`` times (fractional part: that share of
    them get one more copy); negatives once; order kept."""
    if factor < 1:
        raise ValueError(f"upsample_positives must be >= 1, got {factor}")
    whole, frac = int(factor), factor - int(factor)
    out = []
    for eg in examples:
        if is_positive(eg, positive_label):
            out.extend([eg] * (whole + (rng.random() < frac if frac else 0)))
        else:
            out.append(eg)
    return out


def weighted_sample(
    examples: List[Example], positive_weight: Union[float, str], n: int, positive_label: str, rng: random.Random
) -> List[Example]:
    """``n`` draws with replacement, positives ``positive_weight`` times as
    likely as negatives (``"balanced"``: both classes equally likely)."""
    n_pos = sum(is_positive(eg, positive_label) for eg in examples)
    n_neg = len(examples) - n_pos
    if positive_weight == "balanced":
        w_pos = n_neg / n_pos if n_pos and n_neg else 1.0
    else:
        w_pos = float(positive_weight)
    if w_pos <= 0:
        raise ValueError(f"positive_weight must be > 0, got {positive_weight}")
    weights = [w_pos if is_positive(eg, positive_label) else 1.0 for eg in examples]
    return rng.choices(examples, weights=weights, k=n)


class SentenceCorpus:
    def __init__(
        self,
        path: Union[str, Path],
        *,
        spans_key: str = MENTIONS_KEY,
        positive_label: str = "ADE",
        negative_label: str = "NO_ADE",
        upsample_positives: float = 1.0,
        sampling: str = "none",
        positive_weight: Union[float, str] = "balanced",
        n_samples: int = 0,
        shuffle: bool = False,
        seed: int = 0,
        limit: int = 0,
        split_newlines: bool = True,
        max_tokens: int = 0,
    ) -> None:
        if sampling not in SAMPLING:
            raise ValueError(f"sampling must be one of {SAMPLING}, got {sampling!r}")
        if upsample_positives < 1:
            raise ValueError(f"upsample_positives must be >= 1, got {upsample_positives}")
        self.path = Path(path)
        self.spans_key = spans_key
        self.positive_label = positive_label
        self.negative_label = negative_label
        self.upsample_positives = upsample_positives
        self.sampling = sampling
        self.positive_weight = positive_weight
        self.n_samples = n_samples
        self.shuffle = shuffle
        self.limit = limit
        self.split_newlines = split_newlines
        self.max_tokens = max_tokens
        self.rng = random.Random(seed)
        self._cache: Optional[Tuple[int, List[Example]]] = None

    def units(self, nlp: Language) -> List[Example]:
        """The corpus's units, in order (segmented once per vocab)."""
        if self._cache is not None and self._cache[0] == id(nlp.vocab):
            return list(self._cache[1])
        register_extensions()
        if not self.path.exists():
            raise ValueError(f"{self.path}: no such corpus file")
        docs = list(DocBin().from_disk(self.path).get_docs(nlp.vocab))
        if self.limit:
            docs = docs[: self.limit]
        examples = sentence_examples(
            docs,
            nlp,
            spans_key=self.spans_key,
            positive_label=self.positive_label,
            negative_label=self.negative_label,
            split_newlines=self.split_newlines,
            max_tokens=self.max_tokens,
        )
        self._cache = (id(nlp.vocab), examples)
        return list(examples)

    def __call__(self, nlp: Language) -> Iterator[Example]:
        examples = self.units(nlp)
        if self.upsample_positives != 1:
            examples = upsample(examples, self.upsample_positives, self.positive_label, self.rng)
        if self.sampling == "weighted":
            n = self.n_samples or len(examples)
            examples = weighted_sample(examples, self.positive_weight, n, self.positive_label, self.rng)
        elif self.shuffle:
            examples = list(examples)
            self.rng.shuffle(examples)
        yield from examples

    def class_counts(self, nlp: Language) -> Tuple[int, int]:
        """(positive, negative) units before any resampling."""
        examples = self.units(nlp)
        pos = sum(is_positive(eg, self.positive_label) for eg in examples)
        return pos, len(examples) - pos


@registry.readers("clinie.SentenceCorpus.v1")
def create_sentence_corpus(
    path: Path,
    spans_key: str = MENTIONS_KEY,
    positive_label: str = "ADE",
    negative_label: str = "NO_ADE",
    upsample_positives: float = 1.0,
    sampling: str = "none",
    positive_weight: Union[float, str] = "balanced",
    n_samples: int = 0,
    shuffle: bool = False,
    seed: int = 0,
    limit: int = 0,
    split_newlines: bool = True,
    max_tokens: int = 0,
) -> SentenceCorpus:
    """Sentence units of a ``.spacy`` corpus as textcat examples (see the
    module docstring for upsampling and weighted random sampling)."""
    return SentenceCorpus(
        path,
        spans_key=spans_key,
        positive_label=positive_label,
        negative_label=negative_label,
        upsample_positives=upsample_positives,
        sampling=sampling,
        positive_weight=positive_weight,
        n_samples=n_samples,
        shuffle=shuffle,
        seed=seed,
        limit=limit,
        split_newlines=split_newlines,
        max_tokens=max_tokens,
    )


def count_units(path: Union[str, Path], nlp: Optional[Language] = None) -> Tuple[int, int]:
    """(positive, negative) sentence units of a corpus file."""
    from ..tokenizer import make_blank

    return SentenceCorpus(path).class_counts(nlp or make_blank())
