"""Coordination-expansion candidates: exact fragments and strings on
label-like sentences, negatives, the registered factory, and the fragments
surviving the TAC XML and brat writers."""

from typing import List, Tuple

import pytest
from spacy.tokens import Span
from spacy.util import registry

from spacy_clinie.candidates import add_candidate_spans, coordination_candidates, make_coordination_candidates
from spacy_clinie.extensions import MENTIONS_KEY, get_mentions, register_extensions
from spacy_clinie.readers import doc_to_brat, read_brat_file, read_tac_xml, write_tac_xml
from spacy_clinie.scoring import ADR_LABEL, pred_strings, span_text

TEXT = (
    "The most common adverse reactions were injection site reactions (erythema, pain), "
    "muscle pain and cramps, increased ALT and AST, and nausea, vomiting and diarrhea. "
    "Skeletal and visceral malformations were seen in rats. "
    "Abdominal pain, vomiting and diarrhea occurred. Hypersensitivity reactions (anaphylaxis, urticaria) were rare."
)
SEEDS = [
    "injection site reactions",
    "muscle pain",
    "increased ALT",
    "nausea",
    "vomiting",
    "diarrhea",
    "visceral malformations",
    "Abdominal pain",
    "Hypersensitivity reactions",
    "anaphylaxis",
    "urticaria",
]


def make_doc(nlp, text: str, seeds: List[str]):
    register_extensions()
    doc = nlp(text)
    spans, taken = [], set()
    for n, seed in enumerate(seeds):
        start = 0
        while True:  # every occurrence, as the tagger would tag them
            i = text.find(seed, start)
            if i < 0:
                break
            start = i + len(seed)
            if any(a < i + len(seed) and i < b for a, b in taken):
                continue
            span = doc.char_span(i, i + len(seed), label=ADR_LABEL)
            assert span is not None, seed
            taken.add((i, i + len(seed)))
            spans.append(Span(doc, span.start, span.end, label=ADR_LABEL, span_id=f"M{len(spans) + 1}"))
    doc.spans[MENTIONS_KEY] = spans
    doc._.doc_id = "DRUGX/adverse reactions"
    doc._.label_id = "DRUGX"
    doc._.section = "adverse reactions"
    return doc


def spelled(doc, candidates) -> List[Tuple[str, List[str], str]]:
    return sorted(
        ((c.text, [doc.text[a:b] for a, b in c.fragments], c.kind) for c in candidates),
        key=lambda t: t[0].lower(),
    )


@pytest.fixture
def doc(nlp):
    return make_doc(nlp, TEXT, SEEDS)


def test_expansions_exact_fragments(doc):
    cands = coordination_candidates(doc, get_mentions(doc))
    assert spelled(doc, cands) == [
        ("increased AST", ["increased", "AST"], "shared_left"),
        ("injection site erythema", ["injection site", "erythema"], "list"),
        ("injection site pain", ["injection site", "pain"], "list"),
        ("muscle cramps", ["muscle", "cramps"], "shared_left"),
        ("Skeletal malformations", ["Skeletal", "malformations"], "shared_right"),
    ]
    for c in cands:
        assert len(c.fragments) == 2 and all(doc.text[a:b].strip() == doc.text[a:b] for a, b in c.fragments)
        assert c.text == " ".join(doc.text[a:b] for a, b in c.fragments)
    by_text = {c.text: c for c in cands}
    assert by_text["muscle cramps"].seed_text == "muscle pain"
    assert by_text["Skeletal malformations"].seed_text == "visceral malformations"
    assert TEXT[slice(*by_text["muscle cramps"].seed)] == "muscle pain"


def test_plain_list_of_reactions_gives_nothing(nlp):
    # a list of distinct reactions: no "nausea vomiting", "abdominal vomiting" ...
    doc = make_doc(
        nlp,
        "Nausea, vomiting and diarrhea were reported, and abdominal pain, vomiting and headache.",
        ["Nausea", "vomiting", "diarrhea", "abdominal pain", "headache"],
    )
    assert coordination_candidates(doc, get_mentions(doc)) == []
    # the same list, with the single reactions not predicted: still no junk
    # from one-word seeds (the candidate would be contiguous)
    doc = make_doc(nlp, "Nausea, vomiting and diarrhea were reported.", ["Nausea"])
    assert coordination_candidates(doc, get_mentions(doc)) == []


def test_comma_lists_need_a_conjunction(nlp):
    text = "Adverse reactions: decreased appetite, pain, infections."
    doc = make_doc(nlp, text, ["decreased appetite", "infections"])
    assert coordination_candidates(doc, get_mentions(doc)) == []
    cands = coordination_candidates(doc, get_mentions(doc), require_conjunction=False)
    assert "decreased pain" in {c.text for c in cands}


def test_reaction_class_lists_reactions_not_kinds(doc):
    texts = {c.text.lower() for c in coordination_candidates(doc, get_mentions(doc))}
    assert not any(t.startswith("hypersensitivity ") for t in texts)


def test_no_seeds_no_candidates(doc):
    assert coordination_candidates(doc, []) == []


def test_more_constructions(nlp):
    text = (
        "Reactions included swelling of the lips, tongue, or throat; epidural or spinal hematoma; "
        "chest discomfort/pain; Rash (includes generalized, macular); infusion site reactions including phlebitis and swelling."
    )
    doc = make_doc(
        nlp,
        text,
        ["swelling of the lips", "spinal hematoma", "chest discomfort", "Rash", "infusion site reactions"],
    )
    got = {
        c.text: [text[a:b] for a, b in c.fragments] for c in coordination_candidates(doc, get_mentions(doc))
    }
    assert got == {
        "swelling of the tongue": ["swelling of the", "tongue"],
        "swelling of the throat": ["swelling of the", "throat"],
        "epidural hematoma": ["epidural", "hematoma"],
        "chest pain": ["chest", "pain"],
        "Rash generalized": ["Rash", "generalized"],
        "Rash macular": ["Rash", "macular"],
        "infusion site phlebitis": ["infusion site", "phlebitis"],
        "infusion site swelling": ["infusion site", "swelling"],
    }


def test_optional_kinds(nlp):
    text = "Alanine aminotransferase (ALT) elevations and decreased neutrophil and platelet counts occurred."
    doc = make_doc(
        nlp, text, ["Alanine aminotransferase (ALT) elevations", "decreased neutrophil and platelet counts"]
    )
    assert coordination_candidates(doc, get_mentions(doc)) == []
    got = {
        c.text for c in coordination_candidates(doc, get_mentions(doc), kinds=["internal", "abbreviation"])
    }
    assert got == {
        "Alanine aminotransferase elevations",
        "ALT elevations",
        "decreased neutrophil counts",
        "decreased platelet counts",
    }


def test_registered_factory():
    make = registry.misc.get("clinie.CoordinationCandidates.v1")
    assert make is make_coordination_candidates
    generate = registry.resolve({"x": {"@misc": "clinie.CoordinationCandidates.v1", "kinds": ["list"]}})["x"]
    assert callable(generate) and generate.kinds == {"list"}
    with pytest.raises(ValueError, match="unknown candidate kinds"):
        make_coordination_candidates(kinds=["nonsense"])


def test_add_spans_and_score_strings(doc):
    before = pred_strings(doc)[ADR_LABEL]
    added = add_candidate_spans(doc, coordination_candidates(doc, get_mentions(doc)))
    assert {span_text(s) for s in added} == {
        "increased AST",
        "injection site erythema",
        "injection site pain",
        "muscle cramps",
        "Skeletal malformations",
    }
    for span in added:
        assert span.label_ == ADR_LABEL and span.id_.startswith("C")
        assert span._.attributes["source"] == "coordination"
        assert span.start_char == span._.fragments[0][0] and span.end_char == span._.fragments[-1][1]
    after = pred_strings(doc)[ADR_LABEL]
    assert after - before == {
        "increased ast",
        "injection site erythema",
        "injection site pain",
        "muscle cramps",
        "skeletal malformations",
    }
    # idempotent: the strings are already spelled
    assert add_candidate_spans(doc, coordination_candidates(doc, get_mentions(doc))) == []


def test_add_spans_skips_predicted_strings(doc):
    # a contiguous prediction that spells the same string wins
    cands = coordination_candidates(doc, get_mentions(doc))
    doc.spans[MENTIONS_KEY] = list(doc.spans[MENTIONS_KEY]) + [Span(doc, 0, 1, label=ADR_LABEL, span_id="X1")]
    doc._.mention_attrs = {
        **(doc._.mention_attrs or {}),
        "X1": {
            "fragments": [
                [doc.text.index("muscle"), doc.text.index("muscle") + 6],
                [doc.text.index("cramps"), doc.text.index("cramps") + 6],
            ]
        },
    }
    added = add_candidate_spans(doc, cands)
    assert "muscle cramps" not in {span_text(s) for s in added}


def fragments_by_string(doc):
    return {
        span_text(s): [list(f) for f in (s._.fragments or [[s.start_char, s.end_char]])]
        for s in get_mentions(doc)
    }


def test_tac_xml_round_trip(doc, nlp, tmp_path):
    add_candidate_spans(doc, coordination_candidates(doc, get_mentions(doc)))
    expected = fragments_by_string(doc)
    (path,) = write_tac_xml([doc], tmp_path)
    xml = path.read_text(encoding="utf-8")
    start = TEXT.index("muscle")
    assert f'start="{start},{TEXT.index("cramps")}" len="6,6"' in xml and 'str="muscle cramps"' in xml
    (back,) = list(read_tac_xml(nlp, path))
    assert back.text == doc.text
    assert fragments_by_string(back) == expected


def test_brat_round_trip(doc, nlp, tmp_path):
    add_candidate_spans(doc, coordination_candidates(doc, get_mentions(doc)))
    expected = fragments_by_string(doc)
    ann = doc_to_brat(doc)
    start = TEXT.index("Skeletal")
    assert (
        f"{start} {start + 8};{TEXT.index('malformations')} {TEXT.index('malformations') + 13}\tSkeletal malformations"
        in ann
    )
    (tmp_path / "d.txt").write_text(doc.text, encoding="utf-8")
    (tmp_path / "d.ann").write_text(ann, encoding="utf-8")
    back = read_brat_file(nlp, tmp_path / "d.txt")
    assert fragments_by_string(back) == expected
    attributes = {span_text(s): s._.attributes or {} for s in get_mentions(back)}
    assert attributes["muscle cramps"] == {"source": "coordination", "kind": "shared_left"}
    assert attributes["injection site pain"] == {"source": "coordination", "kind": "list"}
    assert attributes["muscle pain"] == {}


def test_tagged_modifier_and_characterized_lists(nlp):
    text = (
        "Reactions included corneal edema, ciliary and conjunctival hyperemia, eye pain and photophobia. "
        "Injection site reactions were characterized by pruritus, erythema, and/or bruising."
    )
    # the tagger marked "ciliary" alone (no reaction by itself) and the items
    seeds = [
        "corneal edema",
        "ciliary",
        "conjunctival hyperemia",
        "eye pain",
        "photophobia",
        "Injection site reactions",
        "pruritus",
        "erythema",
        "bruising",
    ]
    doc = make_doc(nlp, text, seeds)
    got = {
        c.text: ([text[a:b] for a, b in c.fragments], c.kind)
        for c in coordination_candidates(doc, get_mentions(doc))
    }
    assert got == {
        "ciliary hyperemia": (["ciliary", "hyperemia"], "shared_right"),
        "Injection site pruritus": (["Injection site", "pruritus"], "list"),
        "Injection site erythema": (["Injection site", "erythema"], "list"),
        "Injection site bruising": (["Injection site", "bruising"], "list"),
    }
    # a tagged noun conjunct is a reaction of its own: "eye pain and photophobia"
    assert not any("photophobia" in t and t != "photophobia" for t in got)
