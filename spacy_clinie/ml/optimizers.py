"""Adamax (Kingma & Ba 2015, sec. 7.1), the optimiser of seed 000, as a
thinc Optimizer so spaCy's training loop and the PyTorch shim can use it;
``ScaledOptimizer``, which gives layers trained from scratch a larger step
than a pretrained encoder sharing the same optimiser; and
``retraining_optimizer``, the optimiser of a pipeline's own training config
for the short retraining loops (``clinie refine``, ``clinie adapt``)."""
import copy
from typing import Any, Callable, Optional, Tuple

from spacy.language import Language
from thinc.api import Optimizer
from thinc.types import FloatsXd
from spacy.util import registry

from thinc.optimizers import FloatOrSeq


class Adamax(Optimizer):
    """Adam's update with the infinity norm: ``u = max(b2 * u, |g|)``,
    ``w -= lr / (1 - b1^t) * m / (u + eps)``. Weight decay is decoupled
    (``L2_is_weight_decay``), as in thinc's Adam."""

    def _adam(self, ops, weights: FloatsXd, gradient: FloatsXd, lr_scale: float, key, nr_upd: int):
        xp = ops.xp
        w = ops.reshape1f(weights, weights.size)
        g = ops.reshape1f(gradient, gradient.size)
        if key not in self.mom1:
            self.mom1[key] = ops.alloc1f(weights.size)
            self.mom2[key] = ops.alloc1f(weights.size)
        m, u = self.mom1[key], self.mom2[key]
        m *= self.b1
        m += (1.0 - self.b1) * g
        xp.maximum(self.b2 * u, xp.abs(g), out=u)
        step = self.learn_rate * lr_scale / (1.0 - self.b1**nr_upd)
        w -= step * m / (u + self.eps)
        return ops.reshape_f(w, weights.shape), ops.reshape_f(g, gradient.shape)


@registry.optimizers("clinie.Adamax.v1")
def create_adamax(
    learn_rate: FloatOrSeq = 5e-5,
    *,
    L2: FloatOrSeq = 0.05,
    beta1: FloatOrSeq = 0.9,
    beta2: FloatOrSeq = 0.999,
    eps: FloatOrSeq = 1e-8,
    grad_clip: FloatOrSeq = 1.0,
    L2_is_weight_decay: bool = True,
    use_averages: bool = False,
) -> Optimizer:
    """Seed 000's defaults: learning rate 5e-5, weight decay 0.05."""
    return Adamax(
        learn_rate,
        L2=L2,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        grad_clip=grad_clip,
        L2_is_weight_decay=L2_is_weight_decay,
        use_averages=use_averages,
        use_radam=False,
    )


class ScaledOptimizer:
    """``sgd`` with the learning rate of every update whose parameter key
    ``scales(key)`` accepts (all of them by default) multiplied by ``scale``
    (thinc's per-update ``lr_scale``); schedules, moments and step counts stay
    those of ``sgd``. Used for ``head_lr_scale``: new layers next to a
    fine-tuned encoder, which keeps the plain rate."""

    def __init__(self, sgd: Optimizer, scale: float, scales: Optional[Callable[[Tuple[int, str]], bool]] = None) -> None:
        self.sgd = sgd
        self.scale = scale
        self.scales = scales

    def __call__(self, key: Tuple[int, str], weights: FloatsXd, gradient: FloatsXd, *, lr_scale: float = 1.0) -> Any:
        if self.scales is None or self.scales(key):
            lr_scale *= self.scale
        return self.sgd(key, weights, gradient, lr_scale=lr_scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sgd, name)


def retraining_optimizer(nlp: Language, learn_rate: float) -> Optimizer:
    """The optimiser in ``nlp``'s ``[training.optimizer]`` (what the pipeline
    was trained with: Adam for the CPU config, seed 000's Adamax for the GPU
    one) at a constant ``learn_rate``. Retraining on a few hundred reviewed or
    LLM-annotated sentences is far shorter than the training schedule's
    warm-up and decay, so the schedule is not reused. A pipeline whose config
    has no optimiser block gets spaCy's default (Adam)."""
    block = copy.deepcopy(dict(nlp.config.get("training", {}).get("optimizer") or {}))
    if not block:
        block = {"@optimizers": "Adam.v1"}
    block["learn_rate"] = float(learn_rate)
    return registry.resolve({"optimizer": block})["optimizer"]
