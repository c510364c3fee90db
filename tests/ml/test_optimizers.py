"""The retraining loops (``clinie refine``, ``clinie adapt``) use the
optimiser of the pipeline's own training config at a constant rate."""
import spacy
from spacy.util import load_config
from thinc.api import Optimizer

from spacy_clinie.ml.optimizers import Adamax, retraining_optimizer

from ..conftest import ROOT


def test_retraining_optimizer_follows_the_cpu_config():
    config = load_config(ROOT / "configs" / "ade_cpu.cfg")
    nlp = spacy.blank("en")
    nlp.config["training"]["optimizer"] = config["training"]["optimizer"]
    opt = retraining_optimizer(nlp, 3e-5)
    assert type(opt) is Optimizer  # thinc's Adam
    assert opt.learn_rate == 3e-5
    for _ in range(100):  # constant: the config's warm-up/decay schedule is not reused
        opt.step_schedules()
    assert opt.learn_rate == 3e-5
    assert opt.L2 == config["training"]["optimizer"]["L2"] and opt.L2_is_weight_decay
    assert opt.grad_clip == config["training"]["optimizer"]["grad_clip"]
    # the pipeline's config is left as it was
    assert nlp.config["training"]["optimizer"]["learn_rate"]["@schedules"] == "warmup_linear.v1"


def test_retraining_optimizer_keeps_seed_000_adamax():
    config = load_config(ROOT / "configs" / "ade_gpu.cfg")
    nlp = spacy.blank("en")
    nlp.config["training"]["optimizer"] = config["training"]["optimizer"]
    opt = retraining_optimizer(nlp, 1e-5)
    assert isinstance(opt, Adamax)
    assert opt.learn_rate == 1e-5
    assert opt.L2 == config["training"]["optimizer"]["L2"]


def test_retraining_optimizer_without_a_training_block():
    nlp = spacy.blank("en")
    nlp.config["training"].pop("optimizer", None)
    opt = retraining_optimizer(nlp, 2e-5)
    assert type(opt) is Optimizer and opt.learn_rate == 2e-5
