"""The do-no-harm gate (issue 20, item 2): answers split into edits, the
acceptance model decides which apply, gate on vs off on hand-made edits,
and the fitted gate survives serialisation."""
import numpy
import pytest
import spacy
from spacy_llm.registry import registry

from spacy_clinie.llm.edits import Edit, apply_edits, split_edits
from spacy_clinie.llm.gate import FEATURES, REJECT_ALL, EditGate, choose_threshold, edit_outcome
from spacy_clinie.tokenizer import make_blank

from . import conftest
from .test_task import tagged_doc

A = "AdverseReaction"


def test_split_edits_names_each_kind():
    old = [(0, 2, A), (5, 6, A), (8, 9, A), (12, 13, A)]
    new = [(0, 2, A), (4, 6, A), (8, 9, "Drug"), (15, 16, A)]
    edits = split_edits(old, new)
    assert [(e.kind, e.old, e.new) for e in edits] == [
        ("reboundary", (5, 6, A), (4, 6, A)),
        ("relabel", (8, 9, A), (8, 9, "Drug")),
        ("drop", (12, 13, A), None),
        ("add", None, (15, 16, A)),
    ]
    assert apply_edits(old, edits) == sorted(new)  # all edits: the answer itself
    assert apply_edits(old, []) == old  # none: the tagger's spans
    assert split_edits(old, old) == []


def test_edit_outcome_against_gold():
    gold = {(0, 2, A), (4, 6, A)}
    assert edit_outcome(Edit("add", None, (0, 2, A)), gold)
    assert not edit_outcome(Edit("add", None, (7, 8, A)), gold)
    assert edit_outcome(Edit("drop", (7, 8, A), None), gold)
    assert not edit_outcome(Edit("drop", (0, 2, A), None), gold)
    assert edit_outcome(Edit("reboundary", (5, 6, A), (4, 6, A)), gold)
    assert not edit_outcome(Edit("reboundary", (4, 6, A), (5, 6, A)), gold)


def hand_made_training():
    """Adds of dictionary strings are right, other adds wrong; drops of
    confident tagger spans are wrong, of unconfident ones right."""
    def edit(kind, conf, in_dict):
        e = Edit(kind, None, None)
        e.features = dict.fromkeys(FEATURES, 0.0)
        e.features.update({kind: 1.0} if kind != "add" else {})
        e.features.update(tagger_confidence=conf, in_dictionary=in_dict, unit_entropy=0.5)
        return e

    edits, outcomes = [], []
    for _ in range(10):
        edits += [edit("add", 0.0, 1.0), edit("add", 0.0, 0.0), edit("drop", 0.9, 0.0), edit("drop", 0.1, 0.0)]
        outcomes += [True, False, False, True]
    return edits, outcomes


def fitted_gate(**kw):
    gate = EditGate(dictionary=["nausea"], **kw)
    gate.fit(*hand_made_training(), c=100.0)
    return gate


def make_task(gate=None, **kw):
    task = registry.llm_tasks.get("clinie.ADECorrect.v2")(entropy_threshold=0.2, **kw)
    if gate is not None:
        task.gate = gate
    return task


def test_gate_on_and_off_change_which_edits_apply():
    answer = '{"nausea": "AdverseReaction"}'  # drops the tagger's confident "rash", adds "nausea"
    results = {}
    for mode in ("off", "on"):
        gate = fitted_gate(mode=mode)
        task = make_task(gate)
        doc = tagged_doc()
        doc.spans["mentions"][0]._.attributes = {"confidence": 0.9}
        task.apply(doc, task.select(doc)[:1], [answer])
        results[mode] = ([s.text for s in doc.spans["mentions"]], doc._.llm_corrections)
    assert results["off"][0] == ["nausea"]  # ungated: the answer replaces the unit's spans
    assert results["on"][0] == ["rash", "nausea"]  # gated: the harmful drop is rejected, the add kept
    on = results["on"][1]
    assert (on["edits_drop"], on["accepted_drop"], on["edits_add"], on["accepted_add"]) == (1, 0, 1, 1)
    off = results["off"][1]
    assert (off["edits_drop"], off["accepted_drop"], off["edits_add"], off["accepted_add"]) == (1, 1, 1, 1)
    # an unconfident tagger span may be dropped by the gate too
    task = make_task(fitted_gate())
    doc = tagged_doc()
    doc.spans["mentions"][0]._.attributes = {"confidence": 0.1}
    task.apply(doc, task.select(doc)[:1], [answer])
    assert [s.text for s in doc.spans["mentions"]] == ["nausea"]
    assert doc.spans["mentions"][0]._.attributes["gate_probability"] > 0.5


def test_unfitted_gate_and_v1_apply_every_edit():
    import warnings

    answer = ['{"Severe rash": "AdverseReaction", "nausea": "AdverseReaction"}']
    for task in (make_task(), registry.llm_tasks.get("clinie.ADECorrect.v1")(entropy_threshold=0.2)):
        doc = tagged_doc()
        task.apply(doc, task.select(doc)[:1], answer)
        assert [s.text for s in doc.spans["mentions"]] == ["Severe rash", "nausea"]
        assert doc._.llm_corrections["edits_reboundary"] == 1 and doc._.llm_corrections["edits_add"] == 1
    # switched on but unfitted, the gate says so (once); off, it is ungated on purpose and quiet
    task = make_task()
    with pytest.warns(UserWarning, match="not fitted.*clinie fit-gate"):
        task.apply(tagged_doc(), task.select(tagged_doc())[:1], answer)
    for quiet in (task, make_task(gate_mode="off")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            quiet.apply(tagged_doc(), quiet.select(tagged_doc())[:1], answer)


def test_threshold_is_chosen_by_net_gain_and_rejects_all_when_nothing_pays():
    # out-of-fold P(right): the two most confident edits are wrong, the next three right
    probs = [0.97, 0.93, 0.8, 0.75, 0.7, 0.52, 0.3]
    right = [False, False, True, True, True, False, True]
    threshold, table = choose_threshold(probs, right)
    # 0.55-0.65 accept 0.97 .. 0.7 (3 right - 2 wrong); the lowest of the tie wins;
    # 0.5 adds one more wrong, 0.7 loses a right one
    assert threshold == 0.55
    row = {r["threshold"]: r for r in table}
    assert (row[0.65]["accepted"], row[0.65]["right"], row[0.65]["net_gain"]) == (5, 3, 1)
    assert row[0.5]["net_gain"] == 0 and row[0.7]["net_gain"] == 0 and row[0.95]["net_gain"] == -1
    # a corrector whose edits never pay (as SmolLM2-135M's on TAC dev) is switched off
    assert choose_threshold([0.9, 0.6, 0.55], [False, True, False])[0] == REJECT_ALL
    assert choose_threshold([0.4, 0.2], [True, True])[0] == REJECT_ALL  # nothing above 0.5
    with pytest.raises(ValueError, match="2 probabilities for 1 outcomes"):
        choose_threshold([0.9, 0.8], [True])
    with pytest.raises(ValueError, match="candidates"):
        choose_threshold([0.9], [True], candidates=[1.5])


def test_reject_all_gate_applies_no_edit_and_keeps_its_threshold(tmp_path):
    gate = fitted_gate()
    gate.threshold = REJECT_ALL
    gate.to_disk(tmp_path / "gate.json")
    task = make_task(gate_path=str(tmp_path / "gate.json"))  # the file's threshold wins over the 0.5 default
    assert task.gate.threshold == REJECT_ALL
    doc = tagged_doc()
    doc.spans["mentions"][0]._.attributes = {"confidence": 0.1}  # a drop the fitted gate would accept at 0.5
    before = [(s.start, s.end, s.label_) for s in doc.spans["mentions"]]
    task.apply(doc, task.select(doc)[:1], ['{"nausea": "AdverseReaction"}'])
    assert [(s.start, s.end, s.label_) for s in doc.spans["mentions"]] == before
    counts = doc._.llm_corrections
    assert counts["edits_drop"] == 1 and counts["edits_add"] == 1 and not counts.get("accepted_drop") and not counts.get("accepted_add")


def test_bad_gate_settings_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="gate mode"):
        make_task(gate_mode="maybe")
    with pytest.raises(FileNotFoundError, match="gate file"):
        make_task(gate_path=str(tmp_path / "missing.json"))
    path = tmp_path / "old.json"
    path.write_text('{"features": ["x"], "coef": [1.0], "intercept": 0.0}')
    with pytest.raises(ValueError, match="old.json: gate features"):
        make_task(gate_path=str(path))


def test_gate_round_trips_through_task_and_pipeline(tmp_path):
    gate = fitted_gate()
    gate.to_disk(tmp_path / "gate.json")
    edits, _ = hand_made_training()
    # task cfg: gate_path, then task to_disk / from_disk and bytes
    task = make_task(gate_path=str(tmp_path / "gate.json"))
    assert task.gate.accept(edits) == gate.accept(edits) and task.gate.dictionary == {"nausea"}
    task.to_disk(tmp_path / "task")
    fresh = make_task()
    assert not fresh.gate.is_fitted
    fresh.from_disk(tmp_path / "task")
    numpy.testing.assert_allclose(fresh.gate.probabilities(edits), gate.probabilities(edits))
    assert make_task().from_bytes(task.to_bytes()).gate.accept(edits) == gate.accept(edits)
    # the llm component: initialize(gate_path=...), nlp.to_disk, spacy.load, same decisions
    nlp = make_blank()
    pipe = nlp.add_pipe(
        "llm",
        name="llm_corrector",
        config={"task": {"@llm_tasks": "clinie.ADECorrect.v2", "entropy_threshold": 0.2}, "model": {"@llm_models": "test.Canned.v1"}},
    )
    pipe.task.initialize(nlp=nlp, gate_path=str(tmp_path / "gate.json"))
    nlp.to_disk(tmp_path / "p")
    nlp2 = spacy.load(tmp_path / "p")
    task2 = nlp2.get_pipe("llm_corrector").task
    assert task2.gate.is_fitted and task2.gate.accept(edits) == gate.accept(edits)
    conftest.CANNED[:] = ['{"nausea": "AdverseReaction"}', "{}"]
    doc = tagged_doc(nlp2)
    doc.spans["mentions"][0]._.attributes = {"confidence": 0.9}
    doc = nlp2(doc)
    assert [s.text for s in doc.spans["mentions"]] == ["rash", "nausea"]  # the confident span survives the LLM
