"""clinie refine on tiny feedback: a planted bad epoch is reverted by the
forgetting guard, and the CLI prints what it kept and why."""
import json

import spacy
import torch
from typer.testing import CliRunner

from spacy_clinie.cli import app
from spacy_clinie.readers import load_docs
from spacy_clinie.review.refine import dev_f1, refine
from spacy_clinie.review.session import ReviewSession
from spacy_clinie.review.store import FeedbackStore


def gold_feedback(review_env, path):
    """A store where the reviewer took the gold for every item."""
    nlp = spacy.load(review_env["model"])
    session = ReviewSession(nlp, load_docs(review_env["data"], nlp), FeedbackStore(path), data_path=review_env["data"])
    for pos in range(len(session)):
        session.decide(*session.item(pos), "gold")
    return path


def scramble_at(bad_epoch: int):
    """An ``after_epoch`` hook that wrecks the tagger's output layers."""

    def hook(nlp, epoch):
        if epoch != bad_epoch:
            return
        module = nlp.get_pipe("ade").model.shims[0]._model
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in list(module.heads.parameters()) + list(module.crfs.parameters()):
                p.copy_(torch.randn(p.shape, generator=gen) * 10)

    return hook


def test_planted_bad_epoch_is_reverted(review_env, tmp_path):
    store = gold_feedback(review_env, tmp_path / "feedback.sqlite")
    out = tmp_path / "refined"
    lines = []
    result = refine(
        review_env["model"], store, out, dev=review_env["dev"], epochs=3, learning_rate=1e-5,
        after_epoch=scramble_at(2), log=lines.append,
    )
    by_epoch = {e.epoch: e for e in result.epochs}
    assert by_epoch[0].decision == "start" and result.start_f > 0.5
    assert by_epoch[1].decision == "best"
    bad = by_epoch[2]
    assert bad.decision == "reverted" and bad.dev_f < by_epoch[1].dev_f
    assert "forgetting guard restored epoch 1" in bad.detail
    # epoch 3 trained on from the restored weights, not the scrambled ones
    assert by_epoch[3].dev_f > bad.dev_f
    assert result.best_epoch in (1, 3) and result.best_f == max(e.dev_f for e in result.epochs)
    # every epoch was checkpointed, the bad one too; model-best is the best one
    assert all((out / "checkpoints" / f"epoch-{e}").is_dir() for e in (1, 2, 3))
    dev = load_docs(review_env["dev"])
    assert dev_f1(spacy.load(out / "checkpoints" / "epoch-2"), dev) == bad.dev_f
    assert dev_f1(spacy.load(out / "model-best"), dev) == result.best_f
    report = json.loads((out / "refine_report.json").read_text())
    assert [e["decision"] for e in report["epochs"]] == ["start", "best", "reverted", by_epoch[3].decision]
    assert lines[-1].startswith(f"kept epoch {result.best_epoch} in ")


def test_refine_cli_holds_out_feedback(review_env, tmp_path):
    store = gold_feedback(review_env, tmp_path / "feedback.sqlite")
    res = CliRunner().invoke(app, ["refine", str(review_env["model"]), str(store), str(tmp_path / "out"), "--epochs", "1", "--lr", "1e-5"])
    assert res.exit_code == 0, res.output
    assert "dev: 1 held-out feedback instances (seed 0)" in res.output
    assert "epoch 1: loss" in res.output and "kept epoch" in res.output
    assert (tmp_path / "out" / "model-best" / "ade").is_dir()
