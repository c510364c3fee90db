"""k-fold resampled ensembles (spacy_clinie.kfold, `clinie kfold`) on tiny
corpora written here."""
import json
import sys

import pytest
import spacy
from spacy.tokens import DocBin

from spacy_clinie.kfold import (
    assemble_ensemble,
    member_dirs,
    split_by_label,
    train_command,
    train_members,
    write_folds,
)
from spacy_clinie.tokenizer import make_blank

ADR = "AdverseReaction"
SENTENCES = [
    ("Severe rash was reported.", "rash"),
    ("Store at room temperature.", None),
    ("Nausea and vomiting occurred.", "Nausea"),
    ("Take with food.", None),
    ("Headache was common.", "Headache"),
    ("Dose adjustment is not needed.", None),
]


def make_corpus(nlp, n_labels=6, sections=(1, 2, 3)):
    docs = []
    for lab in range(n_labels):
        for sec in range(sections[lab % len(sections)]):
            text = "\n".join(s for s, _ in SENTENCES[(lab + sec) % 3 :])
            doc = nlp.make_doc(text)
            spans = []
            for s, m in SENTENCES:
                if m and s in text:
                    start = text.index(s) + s.index(m)
                    spans.append(doc.char_span(start, start + len(m), ADR, span_id=f"M{len(spans)}"))
            doc.spans["mentions"] = spans
            doc._.label_id = f"DRUG{lab}"
            doc._.doc_id = f"DRUG{lab}/S{sec}"
            docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def nlp():
    return make_blank()


@pytest.fixture(scope="module")
def corpus(nlp, tmp_path_factory):
    path = tmp_path_factory.mktemp("kfold") / "train.spacy"
    DocBin(docs=make_corpus(nlp), store_user_data=True).to_disk(path)
    return path


def test_split_by_label(nlp):
    docs = make_corpus(nlp, n_labels=10)
    folds = split_by_label(docs, 3, seed=0)
    assert sorted(i for f in folds for i in f) == list(range(len(docs)))
    labels = [{docs[i]._.label_id for i in f} for f in folds]
    assert all(not (a & b) for n, a in enumerate(labels) for b in labels[n + 1 :])  # no label straddles folds
    words = [sum(len(docs[i]) for i in f) for f in folds]
    assert max(words) - min(words) <= max(len(d) for d in docs) * 3  # about the same size
    assert split_by_label(docs, 3, seed=0) == folds
    assert split_by_label(docs, 3, seed=1) != folds
    with pytest.raises(ValueError):
        split_by_label(docs, 1)
    with pytest.raises(ValueError):
        split_by_label(docs, 11)


def test_write_folds(corpus, nlp, tmp_path):
    summary = write_folds(corpus, tmp_path / "kf", k=3, seed=0, full_member=True)
    assert [m["name"] for m in summary["members"]] == ["fold0", "fold1", "fold2", "full"]
    assert [p.name for p in member_dirs(tmp_path / "kf")] == ["fold0", "fold1", "fold2", "full"]
    n = len(list(DocBin().from_disk(corpus).get_docs(nlp.vocab)))
    for m in summary["members"][:3]:
        train = list(DocBin().from_disk(tmp_path / "kf" / m["name"] / "train.spacy").get_docs(nlp.vocab))
        held = list(DocBin().from_disk(tmp_path / "kf" / m["name"] / "heldout.spacy").get_docs(nlp.vocab))
        assert len(train) + len(held) == n == m["train_docs"] + m["heldout_docs"]
        assert not {d._.label_id for d in train} & {d._.label_id for d in held}
        assert sorted({d._.label_id for d in held}) == m["heldout_labels"]
        assert all(len(d.spans["mentions"]) for d in held[:1])  # annotations travel
    assert json.loads((tmp_path / "kf" / "folds.json").read_text())["k"] == 3
    cmd = train_command("cfg.cfg", tmp_path / "kf" / "fold1", seed=7, overrides=["--training.max_steps", "5"])
    assert cmd[:4] == [sys.executable, "-m", "spacy", "train"]
    assert cmd[cmd.index("--paths.dev") + 1] == str(tmp_path / "kf" / "fold1" / "heldout.spacy")
    assert cmd[cmd.index("--system.seed") + 1] == "7" and cmd[-2:] == ["--training.max_steps", "5"]
    with pytest.raises(ValueError, match="dev"):
        train_command("cfg.cfg", tmp_path / "kf" / "full")


def test_assemble_from_rule_members(tmp_path):
    paths = []
    for i, patterns in enumerate([["rash", "nausea"], ["rash"], ["nausea", "headache"]]):
        m = make_blank()
        r = m.add_pipe("span_ruler", config={"spans_key": "mentions"})
        r.add_patterns([{"label": ADR, "pattern": p} for p in patterns])
        m.to_disk(tmp_path / f"m{i}")
        paths.append(tmp_path / f"m{i}")
    out = assemble_ensemble(paths, tmp_path / "ens", voting="hard")
    nlp = spacy.load(out)
    assert nlp.pipe_names == ["ensemble"]
    assert [t.text for t in nlp("rash/nausea")] == ["rash", "/", "nausea"]  # the members' clinical tokenizer
    doc = nlp("rash, nausea and headache")
    assert [s.text for s in doc.spans["mentions"]] == ["rash", "nausea"]
    with pytest.raises(ValueError):
        assemble_ensemble([tmp_path / "nothing"], tmp_path / "x")


TINY_CONFIG = """
[paths]
train = null
dev = null

[nlp]
lang = "en"
pipeline = ["textcat"]

[nlp.tokenizer]
@tokenizers = "clinie.Tokenizer.v1"

[components]

[components.textcat]
factory = "clinie_textcat"
label_weights = {"ADE": 2.0}

[components.textcat.model]
@architectures = "spacy.TextCatBOW.v3"
exclusive_classes = true
ngram_size = 1
no_output_layer = false

[corpora]

[corpora.train]
@readers = "clinie.SentenceCorpus.v1"
path = ${paths.train}
upsample_positives = 2

[corpora.dev]
@readers = "clinie.SentenceCorpus.v1"
path = ${paths.dev}

[training]
max_steps = 6
eval_frequency = 3
max_epochs = 0

[training.logger]
@loggers = "spacy.ConsoleLogger.v1"
progress_bar = false
"""


def test_kfold_train_and_assemble_end_to_end(corpus, tmp_path, capsys):
    """Two textcat members trained by `spacy train` on their folds, then a
    soft-voting ensemble over them that spacy.load can open."""
    from spacy.cli.init_config import fill_config

    (tmp_path / "base.cfg").write_text(TINY_CONFIG)
    config = tmp_path / "tiny.cfg"
    fill_config(config, tmp_path / "base.cfg", silent=True)
    write_folds(corpus, tmp_path / "kf", k=2, seed=0)
    dry = train_members(config, tmp_path / "kf", dry_run=True)
    assert [p.parent.parent.name for p in dry] == ["fold0", "fold1"]
    best = train_members(config, tmp_path / "kf", overrides=["--training.max_steps", "6"])
    assert all((p / "config.cfg").exists() for p in best)
    # a rerun skips trained members
    train_members(config, tmp_path / "kf")
    assert "exists, skipped" in capsys.readouterr().out
    out = assemble_ensemble(best, tmp_path / "ens", voting="soft", spans_key=None)
    nlp = spacy.load(out)
    ens = nlp.get_pipe("ensemble")
    assert ens.labels == ("ADE", "NO_ADE") and ens.member_names == ["member0", "member1"]
    members = [spacy.load(p) for p in best]
    text = "Severe rash was reported."
    expected = sum(m(text).cats["ADE"] for m in members) / 2
    assert nlp(text).cats["ADE"] == pytest.approx(expected, abs=1e-6)
