"""``clinie refine``: retrain the tagger on review feedback, with seed 000's
forgetting guard.

A few hundred corrected instances can pull a tagger away from what it
learned on the full training set. So each epoch over the feedback is saved
as a checkpoint and scored on a held-out dev split; when dev F1 falls below
the best seen so far (the starting model counts as epoch 0), the best
checkpoint is restored before training goes on, and the best one is what
``model-best`` holds at the end. Every decision is printed and written to
``refine_report.json``.
"""
import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import minibatch

from ..ml.optimizers import retraining_optimizer
from ..scoring import evaluate_docs
from .export import feedback_docs
from .store import FeedbackStore

AfterEpoch = Callable[[Language, int], None]


@dataclass
class EpochResult:
    epoch: int
    loss: float
    dev_f: float
    checkpoint: str
    decision: str  # "start", "best", "reverted"
    detail: str


@dataclass
class RefineResult:
    best_epoch: int
    best_f: float
    start_f: float
    n_train: int
    n_dev: int
    model_best: str
    epochs: List[EpochResult] = field(default_factory=list)

    def to_dict(self) -> Dict:
        return asdict(self)


def _plain(nlp: Language, doc: Doc) -> Doc:
    """An unannotated copy with the same tokens (the tagger's input)."""
    out = Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])
    out._.doc_id = doc._.doc_id
    return out


def dev_f1(nlp: Language, gold: Sequence[Doc], metric: str = "mention_strict") -> float:
    """Micro F1 of ``nlp`` on ``gold`` at ``metric`` (a level of
    :func:`spacy_clinie.scoring.evaluate_docs`)."""
    pred = list(nlp.pipe([_plain(nlp, d) for d in gold]))
    return float(evaluate_docs(gold, pred, levels=(metric,))[metric]["micro"]["f"])


def split_feedback(docs: List[Doc], fraction: float, seed: int) -> Tuple[List[Doc], List[Doc]]:
    """Seeded hold-out of ``fraction`` of the feedback docs (at least one)."""
    if len(docs) < 2:
        raise ValueError(f"{len(docs)} reviewed instance(s): need at least 2 to hold out a dev split, or pass dev docs")
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    n_dev = min(len(docs) - 1, max(1, round(fraction * len(docs))))
    dev = set(order[:n_dev])
    return [d for i, d in enumerate(docs) if i not in dev], [d for i, d in enumerate(docs) if i in dev]


def refine(
    model: Union[str, Path],
    feedback: Union[str, Path, FeedbackStore],
    output_dir: Union[str, Path],
    *,
    dev: Optional[Union[str, Path, Sequence[Doc]]] = None,
    dev_fraction: float = 0.2,
    epochs: int = 2,
    learning_rate: float = 5e-5,
    batch_size: int = 8,
    dropout: float = 0.1,
    seed: int = 0,
    metric: str = "mention_strict",
    tagger: Optional[str] = None,
    after_epoch: Optional[AfterEpoch] = None,
    log: Callable[[str], None] = print,
) -> RefineResult:
    """Retrain MODEL's soft-prompt tagger on the feedback in a review store.

    model: pipeline folder or package with a ``clinie_soft_prompt_tagger``.
    feedback: the review store (path or :class:`FeedbackStore`); instances
        with a decision for every task are the training data.
    output_dir: gets ``checkpoints/epoch-N`` per epoch, ``model-best`` and
        ``refine_report.json``.
    dev: gold docs or a ``.spacy`` path for the forgetting guard; default: a
        seeded ``dev_fraction`` of the feedback instances.
    epochs, learning_rate, batch_size, dropout, seed: the update loop
        (seed 000 retrains for 2 epochs). The optimiser is the one in the
        pipeline's own training config, at the constant ``learning_rate``.
    metric: evaluation level whose micro F1 the guard watches.
    after_epoch: called as ``after_epoch(nlp, epoch)`` after each epoch's
        updates, before the checkpoint is saved and scored: for custom
        logging or schedules, or to plant a bad epoch and watch the guard
        revert it.
    """
    import spacy

    from ..readers import load_docs
    from ..pipeline.soft_prompt_tagger import find_tagger

    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    output_dir = Path(output_dir)
    (output_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    store = feedback if isinstance(feedback, FeedbackStore) else FeedbackStore(feedback)
    if not store.path.exists() or not store.get_meta():
        raise ValueError(f"{store.path}: not a review feedback store (run clinie review first)")
    nlp = spacy.load(model)
    name, _ = find_tagger(nlp, tagger)
    docs, incomplete = feedback_docs(store, nlp.vocab)
    if dev is None:
        train_docs, dev_docs = split_feedback(docs, dev_fraction, seed)
        dev_source = f"{len(dev_docs)} held-out feedback instances (seed {seed})"
    else:
        train_docs = docs
        dev_docs = load_docs(dev, nlp) if isinstance(dev, (str, Path)) else list(dev)
        dev_source = f"{len(dev_docs)} docs from {dev if isinstance(dev, (str, Path)) else 'the given docs'}"
    if not train_docs:
        raise ValueError(f"{store.path}: no fully reviewed instances to train on ({incomplete} partly reviewed)")
    examples = [Example(_plain(nlp, d), d) for d in train_docs]
    log(f"feedback: {len(train_docs)} training instances ({incomplete} partly reviewed left out); dev: {dev_source}")

    start_f = dev_f1(nlp, dev_docs, metric)
    best_epoch, best_f, best_path = 0, start_f, Path(model)
    result = RefineResult(0, start_f, start_f, len(train_docs), len(dev_docs), "")
    result.epochs.append(EpochResult(0, 0.0, start_f, str(model), "start", f"starting model: dev {metric} F1 {start_f:.4f}"))
    log(f"epoch 0 (starting model): dev {metric} F1 {start_f:.4f}")

    rng = random.Random(seed)
    optimizer = retraining_optimizer(nlp, learning_rate)
    for epoch in range(1, epochs + 1):
        losses: Dict[str, float] = {}
        order = list(examples)
        rng.shuffle(order)
        with nlp.select_pipes(enable=[name]):
            for batch in minibatch(order, size=batch_size):
                nlp.update(batch, sgd=optimizer, drop=dropout, losses=losses)
        if after_epoch is not None:
            after_epoch(nlp, epoch)
        checkpoint = output_dir / "checkpoints" / f"epoch-{epoch}"
        nlp.to_disk(checkpoint)
        f = dev_f1(nlp, dev_docs, metric)
        loss = float(losses.get(name, 0.0))
        if f >= best_f:
            detail = f"dev {metric} F1 {f:.4f} >= best {best_f:.4f} (epoch {best_epoch}): kept as the new best"
            best_epoch, best_f, best_path = epoch, f, checkpoint
            decision = "best"
        else:
            detail = (
                f"dev {metric} F1 fell to {f:.4f} from {best_f:.4f} (epoch {best_epoch}): "
                f"forgetting guard restored epoch {best_epoch}"
            )
            decision = "reverted"
            nlp = spacy.load(best_path)
            optimizer = retraining_optimizer(nlp, learning_rate)  # moments belonged to the dropped weights
        log(f"epoch {epoch}: loss {loss:.4f}; {detail}")
        result.epochs.append(EpochResult(epoch, loss, f, str(checkpoint), decision, detail))

    model_best = output_dir / "model-best"
    if model_best.exists():
        shutil.rmtree(model_best)
    if best_epoch == 0:  # MODEL may be a package name: write it out
        spacy.load(best_path).to_disk(model_best)
    else:
        shutil.copytree(best_path, model_best)
    result.best_epoch, result.best_f, result.model_best = best_epoch, best_f, str(model_best)
    why = (
        "no epoch beat the starting model on dev, so model-best is the starting model"
        if best_epoch == 0
        else f"epoch {best_epoch} had the best dev {metric} F1 ({best_f:.4f}; start {start_f:.4f})"
    )
    log(f"kept epoch {best_epoch} in {model_best}: {why}")
    (output_dir / "refine_report.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result
