"""``clinie_textcat``: spaCy's exclusive ``textcat`` with a label-weighted
loss (seed 003's third class-imbalance strategy, beside upsampling and
weighted random sampling in ``clinie.SentenceCorpus.v1``).

spaCy's textcat loss is the mean squared error between the scores and the
one-hot truth. Here each example's squared error (and gradient) is
multiplied by the weight of its gold label (``label_weights``, missing
labels 1.0), so with ``{"ADE": 3.0}`` a missed positive sentence costs three
times a false alarm. Everything else (model, scorer, serialisation) is
spaCy's ``textcat``; the weights live in ``cfg``.
"""
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from spacy.language import Language
from spacy.pipeline.textcat import DEFAULT_SINGLE_TEXTCAT_MODEL, TextCategorizer
from spacy.tokens import Doc
from spacy.training import Example, validate_examples
from spacy.vocab import Vocab
from thinc.api import Model
from thinc.types import Floats2d

from ..errors import Errors


@Language.factory(
    "clinie_textcat",
    assigns=["doc.cats"],
    default_config={
        "threshold": 0.0,
        "label_weights": {},
        "model": DEFAULT_SINGLE_TEXTCAT_MODEL,
        "scorer": {"@scorers": "spacy.textcat_scorer.v2"},
    },
    default_score_weights={
        "cats_score": 1.0,
        "cats_score_desc": None,
        "cats_micro_p": None,
        "cats_micro_r": None,
        "cats_micro_f": None,
        "cats_macro_p": None,
        "cats_macro_r": None,
        "cats_macro_f": None,
        "cats_macro_auc": None,
        "cats_f_per_type": None,
    },
)
def make_weighted_textcat(
    nlp: Language,
    name: str,
    model: Model[List[Doc], List[Floats2d]],
    threshold: float,
    label_weights: Dict[str, float],
    scorer: Optional[Callable],
) -> "WeightedTextCategorizer":
    """An exclusive text classifier whose loss weights each example by the
    weight of its gold label."""
    return WeightedTextCategorizer(nlp.vocab, model, name, threshold=threshold, label_weights=label_weights, scorer=scorer)


class WeightedTextCategorizer(TextCategorizer):
    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "clinie_textcat",
        *,
        threshold: float,
        label_weights: Optional[Dict[str, float]] = None,
        scorer: Optional[Callable] = None,
    ) -> None:
        super().__init__(vocab, model, name, threshold=threshold, scorer=scorer)
        weights = {k: float(v) for k, v in (label_weights or {}).items()}
        if any(v < 0 for v in weights.values()):
            raise ValueError(Errors.E137.format(name=name, weights=weights))
        self.cfg["label_weights"] = weights

    def row_weights(self, truths) -> "Floats2d":
        """(n, 1) weight of each example's gold label (1.0 without weights)."""
        w = self.model.ops.asarray2f([[self.cfg["label_weights"].get(lab, 1.0) for lab in self.labels]])
        # rows without a gold label (all missing) keep weight 1
        row = (truths * w).sum(axis=1, keepdims=True)
        has_gold = truths.sum(axis=1, keepdims=True) > 0
        return self.model.ops.xp.where(has_gold, row, 1.0)

    def get_loss(self, examples: Iterable[Example], scores) -> Tuple[float, float]:
        validate_examples(examples, "WeightedTextCategorizer.get_loss")
        self._validate_categories(examples)
        truths, not_missing = self._examples_to_truth(examples)
        not_missing = self.model.ops.asarray(not_missing)
        d_scores = (scores - truths) * not_missing
        if self.cfg["label_weights"]:
            d_scores = d_scores * self.row_weights(self.model.ops.asarray(truths))
            loss = float(((scores - truths) * not_missing * d_scores).mean())
        else:
            loss = float((d_scores**2).mean())
        return loss, d_scores
