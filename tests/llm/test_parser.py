"""Parsing of good, partial and garbage LLM answers, and the resolver."""
import pytest
import spacy

from spacy_clinie.llm.parser import parse_index_lines, parse_json_entities
from spacy_clinie.llm.resolver import DEFAULT_SYNONYMS, LabelResolver, index_spans, locate_entities


@pytest.mark.parametrize(
    "text,expected",
    [
        ('{"nausea": "AdverseReaction"}\n{"rash": "AdverseReaction"}', [("nausea", "AdverseReaction"), ("rash", "AdverseReaction")]),
        ('{"nausea": "AdverseReaction", "rash": "ADR"}', [("nausea", "AdverseReaction"), ("rash", "ADR")]),
        ('[{"nausea": "AdverseReaction"}, {"entity": "rash", "type": "AdverseReaction"}]', [("nausea", "AdverseReaction"), ("rash", "AdverseReaction")]),
        ('```json\n{"nausea": "AdverseReaction"}\n```', [("nausea", "AdverseReaction")]),
        ('Sure! Here is the answer:\n{"nausea": "AdverseReaction"}\nI hope this helps.', [("nausea", "AdverseReaction")]),
        ('{"entities": [{"text": "QT prolongation", "label": "AdverseReaction"}]}', [("QT prolongation", "AdverseReaction")]),
        ("{}", []),
        ("None", []),
    ],
)
def test_parse_json_good(text, expected):
    assert parse_json_entities(text) == expected


def test_parse_json_partial_keeps_whole_pairs():
    # truncated by max_tokens: the complete pair survives, the cut one is lost
    assert parse_json_entities('{"nausea": "AdverseReaction", "vomit') == [("nausea", "AdverseReaction")]
    # one broken line among good ones loses only itself
    text = '{"nausea": "AdverseReaction"}\n{"rash": AdverseReaction}\n{"fever": "AdverseReaction"}'
    assert parse_json_entities(text) == [("nausea", "AdverseReaction"), ("fever", "AdverseReaction")]


@pytest.mark.parametrize("text", ["", "   ", "I cannot help with that.", "nausea, rash", "<|im_end|>", "{{{{"])
def test_parse_json_garbage_is_none(text):
    assert parse_json_entities(text) is None


def test_parse_index_lines():
    assert parse_index_lines("3 : severe : AdverseReaction\n4 : nausea : AdverseReaction") == [
        (3, "severe", "AdverseReaction"),
        (4, "nausea", "AdverseReaction"),
    ]
    assert parse_index_lines("None") == []
    assert parse_index_lines("the tokens are nausea and rash") is None
    # chatter around the lines is ignored
    assert parse_index_lines("Answer:\n1 : rash : ADR\nDone.") == [(1, "rash", "ADR")]


def test_resolver_maps_labels():
    r = LabelResolver(["AdverseReaction", "Severity"], DEFAULT_SYNONYMS)
    assert r("AdverseReaction") == "AdverseReaction"
    assert r("adverse reaction") == "AdverseReaction"
    assert r("Adverse Drug Reaction") == "AdverseReaction"
    assert r("ADR") == "AdverseReaction"
    assert r("side-effect") == "AdverseReaction"
    assert r("B-AdverseReaction") == "AdverseReaction"
    assert r("severity") == "Severity"
    assert r("Drug") is None
    assert r("") is None


def test_locate_entities_in_order_and_case():
    nlp = spacy.blank("en")
    doc = nlp("Rash was common. Severe rash and Nausea occurred; rash resolved.")
    start, end = 4, len(doc)  # the second sentence onwards
    spans, missing, found = locate_entities(doc, start, end, [("severe rash", "AdverseReaction"), ("nausea", "AdverseReaction"), ("rash", "AdverseReaction"), ("headache", "AdverseReaction")])
    texts = [doc[s:e].text for s, e, _ in spans]
    assert texts == ["Severe rash", "Nausea", "rash"]
    # the third "rash" is the one after "Nausea", not the first in the unit
    assert spans[2][0] == [t.i for t in doc if t.text == "rash"][-1]
    assert missing == 1  # "headache" is not in the text: dropped and counted
    assert found == [0, 1, 2]


def test_index_spans_groups_consecutive_tokens():
    nlp = spacy.blank("en")
    doc = nlp("Patients had severe skin rash .")
    r = LabelResolver(["AdverseReaction"], DEFAULT_SYNONYMS)
    spans, dropped = index_spans(doc, 0, len(doc), [(3, "skin", "ADR"), (4, "rash", "ADR"), (1, "had", "Drug"), (99, "x", "ADR")], r)
    assert [(doc[s:e].text, lab) for s, e, lab in spans] == [("skin rash", "AdverseReaction")]
    assert dropped == 2
