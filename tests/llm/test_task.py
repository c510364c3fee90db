"""clinie.ADECorrect.v1: unit selection, prompt rendering (seed 001 figure
5 and seed 002's index format), applying good / partial / garbage answers,
serialisation, and the task inside spaCy's ``llm`` component."""
import json

import pytest
import spacy
from spacy.tokens import Span
from spacy_llm.registry import registry

from spacy_clinie.llm.demos import DemoPool
from spacy_clinie.llm.types import Prompt
from spacy_clinie.tokenizer import make_blank

from . import conftest

TEXT = "Severe rash and nausea were reported. Patients took the tablet daily. Hepatotoxicity occurred in two patients."


def tagged_doc(nlp=None, entropy=(0.5, 0.0, 0.3)):
    """A doc as the tagger leaves it: mentions + per-token entropy, here
    uncertain in sentences 1 and 3 and confident in sentence 2."""
    nlp = nlp or make_blank()
    doc = nlp.make_doc(TEXT)
    sents = [(0, 7), (7, 13), (13, len(doc))]
    ent = []
    for (s, e), h in zip(sents, entropy):
        ent += [h] * (e - s)
    doc._.tag_entropy = ent
    doc.spans["mentions"] = [Span(doc, 1, 2, "AdverseReaction", span_id="M1")]  # "rash" (should be "Severe rash"?)
    return doc


def make_task(**kw):
    cfg = {"entropy_threshold": 0.2, "max_unit_tokens": 64, **kw}
    return registry.llm_tasks.get("clinie.ADECorrect.v1")(**cfg)


def test_selects_uncertain_units_only():
    task = make_task()
    units = task.select(tagged_doc())
    assert [(s, e) for s, e, _ in units] == [(0, 7), (13, 19)]
    assert make_task(max_units_per_doc=1).select(tagged_doc())[0][:2] == (0, 7)  # the most uncertain one
    # no tagger ran (no entropies): every unit is sent
    doc = make_blank().make_doc(TEXT)
    assert len(make_task().select(doc)) == 3


def test_prompt_follows_seed_001_figure_5():
    task = make_task(demos=DemoPool([{"text": "Dizziness was common.", "entities": [["Dizziness", "AdverseReaction"]]}]))
    doc = tagged_doc()
    prompt = task.render(doc, 0, 7)
    assert isinstance(prompt, Prompt) and prompt.system.startswith("You are an intelligent clinical language model")
    text = str(prompt)
    assert "Given the entity label set: [AdverseReaction]" in text
    assert 'Text: "Dizziness was common."\nAnswer:\n{"Dizziness": "AdverseReaction"}' in text  # the demonstration
    assert 'Text: "Severe rash and nausea were reported."' in text
    assert 'Here is the base answer\nAnswer:\n{"rash": "AdverseReaction"}' in text  # the small model's prediction
    assert "If the base answer is correct, please return the answer as it is." in text
    assert text.rstrip().endswith("Answer:")
    # constrained decoding: keys are n-grams of the unit, values the labels
    keys = list(prompt.json_schema["properties"])
    assert "Severe rash" in keys and "nausea" in keys and "rash" in keys
    assert all(k in doc[0:7].text for k in keys)
    assert not any(k.endswith(".") for k in keys)
    assert prompt.json_schema["additionalProperties"] is False


def test_zero_shot_prompt_without_tagger_is_figure_6():
    task = make_task()
    doc = make_blank().make_doc(TEXT)
    text = str(task.render(doc, 0, 7))
    assert "Here is the base answer" not in text and "Here are examples" not in text


def test_index_format_prompt_and_grammar():
    task = make_task(output_format="index")
    prompt = task.render(tagged_doc(), 0, 7)
    text = str(prompt)
    assert "0: Severe\n1: rash\n2: and\n3: nausea" in text
    assert "<Index> : <token> : <Label>" in text
    assert "1 : rash : AdverseReaction" in text  # base answer in the same format
    assert prompt.grammar.startswith("root ::=") and '"AdverseReaction"' in prompt.grammar
    assert prompt.json_schema is None


def test_apply_good_partial_and_garbage_answers():
    task = make_task()
    doc = tagged_doc()
    selected = task.select(doc)
    answers = [
        '{"Severe rash": "AdverseReaction", "nausea": "ADR"}',  # corrects sentence 1
        "I am sorry, I cannot do that.",  # garbage for sentence 3: keep the tagger's spans
    ]
    task.apply(doc, selected, answers)
    assert [(s.text, s.label_) for s in doc.spans["mentions"]] == [("Severe rash", "AdverseReaction"), ("nausea", "AdverseReaction")]
    stats = doc._.llm_corrections
    assert stats["prompted"] == 2 and stats["parsed"] == 1 and stats["unparseable"] == 1 and stats["changed"] == 1
    assert doc.spans["mentions"][0]._.attributes["source"] == "llm"
    # partial: an entity not in the text and an unknown label are dropped and counted
    doc = tagged_doc()
    task.apply(doc, task.select(doc)[:1], ['{"nausea": "AdverseReaction", "headache": "AdverseReaction", "rash": "Drug"}'])
    assert [s.text for s in doc.spans["mentions"]] == ["nausea"]
    assert doc._.llm_corrections["dropped_entities"] == 2
    # an explicit empty answer removes the unit's spans
    doc = tagged_doc()
    task.apply(doc, task.select(doc)[:1], ["{}"])
    assert list(doc.spans["mentions"]) == []


def test_confirmed_span_keeps_its_tagger_attributes():
    task = make_task()
    doc = tagged_doc()
    doc.spans["mentions"][0]._.attributes = {"confidence": 0.42}
    task.apply(doc, task.select(doc)[:1], ['{"rash": "AdverseReaction"}'])
    span = doc.spans["mentions"][0]
    assert span.id_ == "M1" and span._.attributes == {"confidence": 0.42}


def test_llm_component_in_a_pipeline_round_trips(tmp_path):
    nlp = make_blank()
    nlp.add_pipe(
        "llm",
        name="llm_corrector",
        config={
            "task": {"@llm_tasks": "clinie.ADECorrect.v1", "entropy_threshold": 0.2, "demos": {"@llm_misc": "clinie.DemoPool.v1"}},
            "model": {"@llm_models": "test.Canned.v1"},
        },
    )
    nlp.get_pipe("llm_corrector").task.demos.replace([{"text": "Dizziness was common.", "entities": [["Dizziness", "AdverseReaction"]]}])
    conftest.CANNED[:] = ['{"nausea": "AdverseReaction"}', "garbage"]
    doc = nlp(tagged_doc(nlp))
    assert [s.text for s in doc.spans["mentions"]] == ["nausea"]
    assert doc._.llm_corrections["unparseable"] == 1
    nlp.to_disk(tmp_path / "p")
    nlp2 = spacy.load(tmp_path / "p")
    demos = nlp2.get_pipe("llm_corrector").task.demos
    assert demos.examples[0]["text"] == "Dizziness was common."
    assert json.loads((tmp_path / "p" / "llm_corrector" / "task" / "cfg.json").read_text())["labels"] == ["AdverseReaction"]


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="output_format"):
        make_task(output_format="xml")
    with pytest.raises(ValueError, match="label"):
        make_task(labels=[])


def test_demo_file_errors_name_the_line(tmp_path):
    path = tmp_path / "demos.jsonl"
    path.write_text('{"text": "ok", "entities": []}\nnot json\n')
    with pytest.raises(ValueError, match="demos.jsonl, line 2"):
        registry.llm_misc.get("clinie.DemoPool.v1")(path=str(path))


def test_initialize_fills_demos_from_a_gold_corpus(tmp_path):
    from spacy.tokens import DocBin

    nlp = make_blank()
    doc = tagged_doc(nlp)
    DocBin(docs=[doc], store_user_data=True).to_disk(tmp_path / "gold.spacy")
    task = make_task()
    task.initialize(nlp=nlp, n_demos=5, demo_path=str(tmp_path / "gold.spacy"))
    assert [d["entities"] for d in task.demos.examples] == [[["rash", "AdverseReaction"]]]


def test_schema_keys_avoid_quotes_and_backslashes():
    # llama.cpp's schema-to-grammar converter mis-escapes them (a parse error, then a crash)
    nlp = make_blank()
    doc = nlp.make_doc('The "footnote" key and a back\\slash caused nausea.')
    keys = list(make_task().json_schema(doc, 0, len(doc))["properties"])
    assert "nausea" in keys and not any('"' in k or "\\" in k for k in keys)


def test_llm_confidence_stays_with_its_span_when_an_entity_is_dropped():
    from spacy_clinie.llm.types import Response

    pieces = [('{"headache": "', -0.1, {}), ("AdverseReaction", -0.1, {}), ('", "nausea": "', -0.1, {}), ("ADR", -1.0, {"Adverse": -1.0}), ('"}', -0.1, {})]
    response = Response("".join(p for p, _, _ in pieces), tokens=[{"token": p, "logprob": lp, "top": top} for p, lp, top in pieces])
    task = make_task()
    doc = tagged_doc()
    spans, confs, dropped = task.read_answer(doc, 0, 7, response)
    assert [doc[s:e].text for s, e, _ in spans] == ["nausea"] and dropped == 1  # "headache" is not in the text
    assert confs == [0.5]  # nausea's own label token, not headache's


def test_only_parse_errors_count_as_unparseable(monkeypatch):
    """Issue 24, item 11: model output the parser cannot digest (deep
    nesting, an index of 5,000 digits) is counted as unparseable; a bug in
    our own code after parsing raises instead of hiding in that count."""
    task = make_task()
    doc = tagged_doc()
    selected = task.select(doc)
    hostile = ["[" * 100_000, '[{"a": ' * 5000]
    task.apply(doc, selected, hostile)
    assert doc._.llm_corrections["unparseable"] == 2 and doc._.llm_corrections["parsed"] == 0
    index_task = make_task(output_format="index")
    doc = tagged_doc()
    index_task.apply(doc, index_task.select(doc)[:1], ["9" * 5000 + " : rash : AdverseReaction"])
    assert doc._.llm_corrections["unparseable"] == 1

    def broken(*args, **kwargs):
        raise KeyError("a bug in our resolver")

    monkeypatch.setattr(task, "resolver", broken)
    doc = tagged_doc()
    with pytest.raises(KeyError, match="a bug in our resolver"):
        task.apply(doc, selected, ['{"nausea": "AdverseReaction"}', "{}"])
