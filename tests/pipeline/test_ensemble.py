"""clinie_ensemble with tiny member pipelines written to tmp dirs: span_ruler
taggers and bag-of-words textcats (seconds, no encoder)."""
import json
import os
import subprocess
import sys

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Span
from spacy.training import Example
from spacy.util import registry

from spacy_clinie.pipeline.ensemble import MemberPrediction
from spacy_clinie.sentences import sentence_units
from spacy_clinie.tokenizer import make_blank

TEXT = "Patients had rash, nausea and severe headache."
ADR = "AdverseReaction"


def ruler(path, patterns):
    nlp = spacy.blank("en")  # members need no clinical tokenizer: they get the ensemble's tokens
    r = nlp.add_pipe("span_ruler", config={"spans_key": "mentions", "phrase_matcher_attr": "LOWER"})
    r.add_patterns([{"label": ADR, "pattern": p} for p in patterns])
    nlp.meta["performance"] = {"mentions_f": 0.1 * len(patterns)}
    nlp.to_disk(path)
    return str(path)


CAT_TRAIN = [
    ("Severe rash was reported.", True),
    ("Nausea and vomiting occurred.", True),
    ("Headache was common.", True),
    ("Take with food.", False),
    ("Store at room temperature.", False),
    ("Dose adjustment is not needed.", False),
]


def textcat(path, flip=False, n_iter=15):
    """A tiny exclusive ADE / NO_ADE classifier (flip: a member that learned
    the opposite)."""
    nlp = spacy.blank("en")
    tc = nlp.add_pipe("textcat", config={"model": {"@architectures": "spacy.TextCatBOW.v3", "exclusive_classes": True, "ngram_size": 1, "no_output_layer": False}})
    egs = []
    for text, pos in CAT_TRAIN:
        pos = pos != flip
        egs.append(Example.from_dict(nlp.make_doc(text), {"cats": {"ADE": float(pos), "NO_ADE": float(not pos)}}))
    for label in ("ADE", "NO_ADE"):
        tc.add_label(label)
    opt = nlp.initialize(lambda: egs)
    for _ in range(n_iter):
        nlp.update(egs, sgd=opt)
    nlp.to_disk(path)
    return str(path)


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    d = tmp_path_factory.mktemp("members")
    return [
        ruler(d / "a", ["rash", "severe headache"]),
        ruler(d / "b", ["rash", "headache"]),
        ruler(d / "c", ["rash", "nausea", "severe headache"]),
    ]


@pytest.fixture(scope="module")
def cat_members(tmp_path_factory):
    d = tmp_path_factory.mktemp("cats")
    return [textcat(d / "t0"), textcat(d / "t1"), textcat(d / "t2", flip=True)]


def build(members, **config):
    nlp = make_blank()
    nlp.add_pipe("clinie_ensemble", config={"members": members, **config})
    nlp.initialize()
    return nlp


def found(doc):
    """(text, votes) of the voted mentions."""
    return [(s.text, s._.attributes["votes"]) for s in doc.spans["mentions"]]


def test_hard_voting(members):
    doc = build(members, voting="hard")(TEXT)
    assert found(doc) == [("rash", 3), ("severe headache", 2)]
    assert [s.id_ for s in doc.spans["mentions"]] == ["M1", "M2"]
    assert doc.spans["mentions"][1]._.attributes == {"confidence": pytest.approx(0.6667), "votes": 2, "members": 3}
    # min_votes 1: union, overlaps resolved (severe headache 2 votes beats headache 1)
    assert found(build(members, voting="hard", min_votes=1)(TEXT)) == [("rash", 3), ("nausea", 1), ("severe headache", 2)]
    # min_votes 3: unanimity
    assert found(build(members, voting="hard", min_votes=3)(TEXT)) == [("rash", 3)]


def test_soft_and_weighted_voting(members):
    assert found(build(members, voting="soft", threshold=0.5)(TEXT)) == [("rash", 3), ("severe headache", 2)]
    assert found(build(members, voting="soft", threshold=0.3, overlaps=True)(TEXT)) == [
        ("rash", 3),
        ("nausea", 1),
        ("severe headache", 2),
        ("headache", 1),
    ]
    # member2 alone outweighs the other two: nausea passes, headache (member1 only) does not
    nlp = build(members, voting="weighted_soft", weights={"member0": 1.0, "member1": 1.0, "member2": 3.0})
    assert found(nlp(TEXT)) == [("rash", 3), ("nausea", 1), ("severe headache", 2)]
    assert nlp.get_pipe("clinie_ensemble").member_weights() == [1.0, 1.0, 3.0]


def test_weights_from_member_meta(members):
    nlp = build(members, voting="weighted_soft", weights_from="mentions_f")
    ens = nlp.get_pipe("clinie_ensemble")
    assert ens.member_weights() == pytest.approx([0.2, 0.2, 0.3])


@Language.component("test_confidence_0_4")
def confidence_0_4(doc):
    for i, span in enumerate(doc.spans["mentions"]):
        doc.spans["mentions"][i] = Span(doc, span.start, span.end, span.label_, span_id=f"M{i}")
        doc.spans["mentions"][i]._.attributes = {"confidence": 0.4}
    return doc


def test_confidences_come_from_member_spans(members, tmp_path):
    """Soft voting averages span._.attributes["confidence"] (1.0 for rules)."""
    low = spacy.load(members[2])
    low.add_pipe("test_confidence_0_4")
    low.to_disk(tmp_path / "low")
    paths = [members[0], members[1], str(tmp_path / "low")]
    # rash: (1 + 1 + 0.4) / 3 = 0.8; severe headache: (1 + 0 + 0.4) / 3
    nlp = build(paths, voting="soft", threshold=0.45)
    doc = nlp(TEXT)
    assert [(s.text, s._.attributes["confidence"]) for s in doc.spans["mentions"]] == [("rash", 0.8), ("severe headache", pytest.approx(0.4667))]
    assert found(build(paths, voting="soft", threshold=0.5)(TEXT)) == [("rash", 3)]
    # hard voting ignores confidences
    assert found(build(paths, voting="hard")(TEXT)) == [("rash", 3), ("severe headache", 2)]


def test_members_only_see_kept_sentences(members):
    nlp = build(members, voting="hard", min_votes=1)
    text = "Rash was seen.\nNo change is needed for nausea.\nSevere headache occurred. Also rash."
    doc = nlp.make_doc(text)
    # keep units 0 and 2 (not adjacent): "nausea" in the rejected unit is never seen
    units = sentence_units(doc)
    keep = [units[0], units[2], units[3]]
    assert [doc[s:e].text for s, e in keep] == ["Rash was seen.", "Severe headache occurred.", "Also rash."]
    doc.spans["ade_sentences"] = [Span(doc, s, e, "ADE") for s, e in keep]
    doc = nlp.get_pipe("clinie_ensemble")(doc)
    assert [(s.text, s.start_char) for s in doc.spans["mentions"]] == [
        ("Rash", 0),
        ("Severe headache", text.index("Severe")),
        ("rash", text.rindex("rash")),
    ]
    # an empty group: nothing is tagged; no group: the whole doc
    empty = nlp.make_doc(text)
    empty.spans["ade_sentences"] = []
    assert list(nlp.get_pipe("clinie_ensemble")(empty).spans["mentions"]) == []
    whole = nlp(text)
    assert [s.text for s in whole.spans["mentions"]] == ["Rash", "nausea", "Severe headache", "rash"]


def test_cats_voting(cat_members):
    texts = ["Severe rash was reported.", "Store at room temperature."]
    soft = build(cat_members, voting="soft", spans_key=None)
    hard = build(cat_members, voting="hard", spans_key=None)
    ens = soft.get_pipe("clinie_ensemble")
    assert ens.labels == ("ADE", "NO_ADE") and ens.cfg["exclusive_cats"] is True
    members = [spacy.load(p) for p in cat_members]
    for text in texts:
        probs = [m(text).cats for m in members]
        doc = soft(text)
        assert doc.cats["ADE"] == pytest.approx(sum(p["ADE"] for p in probs) / 3, abs=1e-6)
        # two members of three agree: a one-hot majority decision
        majority = "ADE" if sum(p["ADE"] > p["NO_ADE"] for p in probs) >= 2 else "NO_ADE"
        assert hard(text).cats == {"ADE": float(majority == "ADE"), "NO_ADE": float(majority == "NO_ADE")}
    assert hard(texts[0]).cats["ADE"] == 1.0 and hard(texts[1]).cats["NO_ADE"] == 1.0
    # the flipped member outweighing the others reverses the decision
    flipped = build(cat_members, voting="weighted_soft", weights={"member2": 10.0}, spans_key=None)
    assert flipped(texts[0]).cats["NO_ADE"] > 0.5
    scores = soft.evaluate([Example.from_dict(soft.make_doc(t), {"cats": {"ADE": float(i == 0), "NO_ADE": float(i == 1)}}) for i, t in enumerate(texts)])
    assert scores["cats_score"] == 1.0


class FixedMember:
    """An extra member (what an LLM member would be): fixed span and cat
    probabilities by character offsets."""

    def __init__(self, spans, cats):
        self.spans, self.cats = spans, cats
        self.saved = None

    def predict(self, docs):
        return [MemberPrediction(char_spans=dict(self.spans), cats=dict(self.cats)) for _ in docs]

    def to_disk(self, path):
        path.mkdir(parents=True, exist_ok=True)
        (path / "state.json").write_text(json.dumps({"n": len(self.spans)}))

    def from_disk(self, path):
        self.saved = json.loads((path / "state.json").read_text())


@registry.misc("test.FixedMember.v1")
def make_fixed_member(spans: list, cats: dict) -> FixedMember:
    return FixedMember({tuple(s[:3]): s[3] for s in spans}, cats)


def test_extra_member_hook(members, tmp_path):
    nausea = [TEXT.index("nausea"), TEXT.index("nausea") + len("nausea"), ADR, 0.9]
    # a character span inside a token is snapped outwards to whole tokens
    rash = [TEXT.index("rash") + 1, TEXT.index("rash") + 3, ADR, 0.8]
    config = {"extra_members": {"llm": {"@misc": "test.FixedMember.v1", "spans": [nausea, rash], "cats": {}}}}
    nlp = build(members, voting="hard", **config)
    ens = nlp.get_pipe("clinie_ensemble")
    assert ens.member_names == ["member0", "member1", "member2", "llm"]
    # 4 members: strict majority is 3; nausea has 2 votes (member2 + llm)
    assert found(nlp(TEXT)) == [("rash", 4)]
    nlp = build(members, voting="weighted_soft", weights={"llm": 3.0}, threshold=0.5, **config)
    # rash (3 + 3 * 0.8) / 6, nausea (1 + 3 * 0.9) / 6 pass; severe headache 2 / 6 does not
    assert found(nlp(TEXT)) == [("rash", 4), ("nausea", 2)]
    nlp.to_disk(tmp_path / "ens")
    assert (tmp_path / "ens" / "clinie_ensemble" / "extra" / "llm" / "state.json").exists()
    loaded = spacy.load(tmp_path / "ens")
    assert loaded.get_pipe("clinie_ensemble").extra_members["llm"].saved == {"n": 2}
    assert found(loaded(TEXT)) == found(nlp(TEXT))


def test_bad_settings(members, tmp_path):
    with pytest.raises(ValueError, match="no ensemble members"):
        build([])
    with pytest.raises(ValueError, match="not found"):
        build([str(tmp_path / "missing")])
    with pytest.raises(ValueError, match="unknown members"):
        build(members, voting="weighted_soft", weights={"member9": 1.0})
    with pytest.raises(ValueError, match="min_votes"):
        build(members, voting="hard", min_votes=4)
    with pytest.raises(ValueError, match="voting"):
        build(members, voting="majority")
    nlp = make_blank()
    nlp.add_pipe("clinie_ensemble")
    with pytest.raises(ValueError, match="no members"):
        nlp(TEXT)


def test_initialize_members_argument(members):
    nlp = make_blank()
    nlp.add_pipe("clinie_ensemble", config={"voting": "hard"})
    nlp.get_pipe("clinie_ensemble").initialize(members=members[:2])
    assert found(nlp(TEXT)) == [("rash", 2)]
    # or from the [initialize.components] block of a config
    nlp = make_blank()
    nlp.add_pipe("clinie_ensemble", config={"voting": "hard"})
    nlp.config["initialize"]["components"]["clinie_ensemble"] = {"members": members}
    nlp.initialize()
    assert found(nlp(TEXT)) == [("rash", 3), ("severe headache", 2)]


def test_pipe_equals_call(members):
    nlp = build(members, voting="soft", threshold=0.3)
    texts = [TEXT, "No reactions.", "", "Headache and rash, then nausea."]
    assert [found(d) for d in nlp.pipe(texts, batch_size=2)] == [found(nlp(t)) for t in texts]


def test_serialisation_round_trips(members, cat_members, tmp_path):
    nlp = build(members, voting="soft", threshold=0.3, overlaps=True)
    expected = found(nlp(TEXT))
    nlp.to_disk(tmp_path / "ens")
    saved = tmp_path / "ens" / "clinie_ensemble" / "members"
    assert sorted(os.listdir(saved)) == ["member0", "member1", "member2"]
    # the members are inside the ensemble: the original paths are not needed
    loaded = spacy.load(tmp_path / "ens")
    assert found(loaded(TEXT)) == expected
    # voting settings can be overridden at load time
    hard = spacy.load(tmp_path / "ens", config={"components": {"clinie_ensemble": {"voting": "hard"}}})
    assert found(hard(TEXT)) == [("rash", 3), ("severe headache", 2)]
    # bytes
    blank = make_blank()
    blank.add_pipe("clinie_ensemble", config={"voting": "soft", "threshold": 0.3, "overlaps": True})
    blank.from_bytes(nlp.to_bytes())
    assert found(blank(TEXT)) == expected
    # saving again over the same directory (fewer members) leaves no stale member
    nlp2 = build(members[:1], voting="hard")
    nlp2.to_disk(tmp_path / "ens")
    assert os.listdir(saved) == ["member0"]


def test_spacy_load_in_fresh_process_without_import(members, cat_members, tmp_path):
    nlp = make_blank()
    nlp.add_pipe("clinie_ensemble", name="tagger_ens", config={"members": members, "voting": "hard", "cats": False})
    nlp.add_pipe("clinie_ensemble", name="cat_ens", config={"members": cat_members, "voting": "soft", "spans_key": None})
    nlp.initialize()
    doc = nlp(TEXT)
    expected = {"spans": [s.text for s in doc.spans["mentions"]], "ade": round(doc.cats["ADE"], 5)}
    nlp.to_disk(tmp_path / "ens")
    code = (
        "import json, sys, spacy\n"
        f"nlp = spacy.load({str(tmp_path / 'ens')!r})\n"
        f"doc = nlp({TEXT!r})\n"
        "print(json.dumps({'spans': [s.text for s in doc.spans['mentions']], 'ade': round(doc.cats['ADE'], 5)}))\n"
    )
    env = {"HF_HUB_OFFLINE": "1", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(tmp_path), check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected
