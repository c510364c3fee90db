"""Fitting the edit gate on held-out gold (issue 20): answers are kept and
resumed, edits are labelled against gold by character offsets, the
threshold comes out of fold, and `clinie fit-gate` does it end to end with
a small trained tagger and the simulated annotator as its LLM."""
import json

import pytest
from spacy.tokens import DocBin, Span
from spacy_llm.registry import registry
from typer.testing import CliRunner

from spacy_clinie.cli import app
from spacy_clinie.llm.gate import REJECT_ALL, EditGate
from spacy_clinie.llm.gate_fit import collect_answers, collect_edits, fit_gate, read_answers
from spacy_clinie.llm.models.simulated import SimulatedAnnotator
from spacy_clinie.tokenizer import make_blank

from .test_adapt import TEXTS, _gold_of_texts
from .test_task import TEXT, tagged_doc

A = "AdverseReaction"


def gold_doc(nlp=None):
    """TEXT with its gold: "Severe rash", "nausea", "Hepatotoxicity"."""
    nlp = nlp or make_blank()
    doc = nlp.make_doc(TEXT)
    doc.spans["mentions"] = [doc.char_span(TEXT.index(s), TEXT.index(s) + len(s), label=A) for s in ("Severe rash", "nausea", "Hepatotoxicity")]
    return doc


class Counting:
    """Counts the prompts a real model is asked (to see what a resume skips)."""

    def __init__(self, model):
        self.model, self.asked = model, 0

    def __call__(self, prompts):
        prompts = [list(p) for p in prompts]
        self.asked += sum(len(p) for p in prompts)
        return self.model(prompts)


def task(**kw):
    return registry.llm_tasks.get("clinie.ADECorrect.v2")(entropy_threshold=0.2, **kw)


def test_answers_are_kept_and_a_killed_run_resumes(tmp_path):
    docs = [tagged_doc() for _ in range(3)]
    model = Counting(SimulatedAnnotator([gold_doc()]))
    path = tmp_path / "answers.jsonl"
    first = collect_answers(task(), model, docs, path)
    assert model.asked == 6 and len(path.read_text().splitlines()) == 3  # two uncertain units per doc
    # killed while writing the third doc: a torn last line is asked again, the rest is not
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])
    again = collect_answers(task(), model, docs, path)
    assert model.asked == 8
    assert [[str(r) for r in a] for a in again] == [[str(r) for r in a] for a in first]
    assert len(read_answers(path)) == 3
    with pytest.raises(ValueError, match="entropy threshold"):  # answers of other units
        collect_answers(registry.llm_tasks.get("clinie.ADECorrect.v2")(entropy_threshold=0.4), model, docs, path)
    path.write_text("not json\n" + lines[1] + "\n")
    with pytest.raises(ValueError, match="line 1: not JSON"):
        read_answers(path)


def test_edits_are_labelled_by_character_offsets():
    """A gold doc tokenized differently (one token split in two) still
    labels the re-boundary to "Severe rash" right and the drop of the
    confident gold span "Hepatotoxicity" wrong."""
    t = task()
    t.gate = EditGate()
    tagged = tagged_doc()
    gold = make_blank().make_doc(TEXT)
    with gold.retokenize() as r:  # "Hepatotoxicity" -> "Hepato" + "toxicity": the token offsets shift
        i = next(tok.i for tok in gold if tok.text == "Hepatotoxicity")
        r.split(gold[i], ["Hepato", "toxicity"], heads=[(gold[i], 1), gold[i].head])
    gold.spans["mentions"] = [gold.char_span(TEXT.index(s), TEXT.index(s) + len(s), label=A) for s in ("Severe rash", "nausea", "Hepatotoxicity")]
    assert len(gold) == len(tagged) + 1
    tagged.spans["mentions"] = list(tagged.spans["mentions"]) + [Span(tagged, 13, 14, A)]  # "Hepatotoxicity"
    answers = [['{"Severe rash": "AdverseReaction"}', "{}"]]  # unit 1: re-boundary; unit 3: drops Hepatotoxicity
    edits, outcomes, docs = collect_edits(t, [gold], [tagged], answers)
    assert [(e.kind, o) for e, o in zip(edits, outcomes)] == [("reboundary", True), ("drop", False)]
    assert docs == [0, 0]
    gold_other = make_blank().make_doc("another text")
    with pytest.raises(ValueError, match="differs from the gold text"):
        collect_edits(t, [gold_other], [tagged], answers)


def test_fit_gate_applies_nothing_when_no_threshold_gains():
    """Every edit wrong (the annotator drops the gold spans): out of fold no
    threshold accepts more right than wrong edits, so the gate rejects all."""
    t = task()
    t.gate = EditGate()
    gold = [gold_doc() for _ in range(4)]
    tagged = []
    for _ in range(4):
        doc = tagged_doc()
        doc.spans["mentions"] = [doc.char_span(TEXT.index("nausea"), TEXT.index("nausea") + 6, label=A)]
        tagged.append(doc)
    answers = [["{}", "{}"] for _ in range(4)]
    fitted = fit_gate(t, gold, tagged, answers, folds=2)
    assert fitted.gate is t.gate and t.gate.threshold == REJECT_ALL
    assert fitted.report["n_edits"] == 4 and fitted.report["n_right"] == 0
    assert t.gate.accept(fitted.edits) == [False] * 4
    with pytest.raises(ValueError, match="no edit"):
        fit_gate(t, gold, tagged, [["", ""] for _ in range(4)], folds=2)
    with pytest.raises(ValueError, match="folds"):
        fit_gate(t, gold, tagged, answers, folds=1)


def test_fit_gate_cli_end_to_end_and_resume(tiny_tagger, tmp_path):
    dev = tmp_path / "dev.spacy"
    DocBin(docs=_gold_of_texts(), store_user_data=True).to_disk(dev)
    cfg = tmp_path / "llm.cfg"
    cfg.write_text(f'[task]\n@llm_tasks = "clinie.ADECorrect.v2"\nentropy_threshold = 0.0\n\n'
                   f'[model]\n@llm_models = "clinie.SimulatedAnnotator.v1"\ngold_path = "{dev}"\nmiss_rate = 0.3\nspurious_rate = 0.3\nseed = 1\n')
    out = tmp_path / "gate.json"
    args = ["fit-gate", str(tiny_tagger), str(dev), str(out), "--llm-config", str(cfg), "--folds", "2", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    gate = json.loads(out.read_text())
    assert gate["coef"] is not None and gate["fit"]["n_edits"] > 0
    assert gate["threshold"] == gate["fit"]["acceptance_threshold"] and len(gate["fit"]["threshold_selection"]) == 10
    answers = tmp_path / "gate.answers.jsonl"
    assert len(answers.read_text().splitlines()) == len(TEXTS)
    # the fitted file loads into the task the pipeline runs
    t = registry.llm_tasks.get("clinie.ADECorrect.v2")(gate_path=str(out))
    assert t.gate.is_fitted and t.gate.threshold == gate["threshold"]
    # a second run reads the kept answers and fits the same gate
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads(out.read_text())["coef"] == gate["coef"]
    # bad input: a clear error naming what is wrong
    bad = CliRunner().invoke(app, ["fit-gate", str(tiny_tagger), str(dev), str(out), "--corrector", "llm", "--no-progress"])
    assert bad.exit_code == 1 and "no llm component 'llm'" in bad.output


def test_fit_gate_for_a_pipelines_disabled_corrector_and_save(tiny_tagger, tmp_path):
    """A pipeline with a switched-off corrector (as en_clinie_ade ships):
    the gate is fitted for that component, with its own task and model, on
    what the components before it produce, and --save writes the pipeline
    with the fitted gate inside the corrector."""
    import spacy

    dev = tmp_path / "dev.spacy"
    DocBin(docs=_gold_of_texts(), store_user_data=True).to_disk(dev)
    nlp = spacy.load(tiny_tagger)
    nlp.add_pipe("llm", name="llm_corrector", config={
        "save_io": False,
        "task": {"@llm_tasks": "clinie.ADECorrect.v2", "entropy_threshold": 0.0},
        "model": {"@llm_models": "clinie.SimulatedAnnotator.v1", "gold_path": str(dev), "miss_rate": 0.3, "spurious_rate": 0.3, "seed": 1},
    })
    nlp.disable_pipe("llm_corrector")
    nlp.to_disk(tmp_path / "pipeline")
    out, saved = tmp_path / "gate.json", tmp_path / "gated"
    result = CliRunner().invoke(app, ["fit-gate", str(tmp_path / "pipeline"), str(dev), str(out), "--save", str(saved), "--folds", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "8 units above entropy 0.0" in result.output  # the corrector's own task settings
    loaded = spacy.load(saved)
    assert loaded.disabled == ["llm_corrector"]
    gate = loaded.get_pipe("llm_corrector").task.gate
    assert gate.is_fitted and gate.to_dict()["coef"] == json.loads(out.read_text())["coef"]
