import pytest

from spacy_clinie.errors import FormatError
from spacy_clinie.readers import Report, read_onsides, read_tac_xml, write_tac_xml

from ..conftest import shared

TEXT1 = "Serious infections may occur. Severe rash and muscle pain and cramps were not reported."
TEXT2 = "Hepatotoxicity was seen in rats."
XML = f"""<?xml version="1.0" encoding="UTF-8"?>
<Label drug="DRUGX" track="TAC2017_ADR">
  <Text>
    <Section id="S1" name="adverse reactions">{TEXT1}</Section>
    <Section id="S2" name="warnings and precautions">{TEXT2}</Section>
  </Text>
  <Mentions>
    <Mention id="M1" section="S1" type="AdverseReaction" start="8" len="10" str="infections" />
    <Mention id="M2" section="S1" type="Severity" start="0" len="7" str="Serious" />
    <Mention id="M3" section="S1" type="AdverseReaction" start="37" len="4" str="rash" />
    <Mention id="M4" section="S1" type="AdverseReaction" start="46,62" len="6,6" str="muscle cramps" />
    <Mention id="M5" section="S1" type="Negation" start="74" len="3" str="not" />
    <Mention id="M6" section="S2" type="AdverseReaction" start="0" len="14" str="Hepatotoxicity" />
    <Mention id="M7" section="S2" type="Animal" start="27" len="4" str="rats" />
  </Mentions>
  <Relations>
    <Relation id="RL1" type="Effect" arg1="M1" arg2="M2" />
    <Relation id="RL2" type="Negated" arg1="M3" arg2="M5" />
    <Relation id="RL3" type="Effect" arg1="M6" arg2="M7" />
  </Relations>
  <Reactions>
    <Reaction id="AR1" str="infections">
      <Normalization id="AR1.N1" meddra_pt="Infection" meddra_pt_id="10021789" meddra_llt="Infection" meddra_llt_id="10021789" />
    </Reaction>
    <Reaction id="AR2" str="rash">
      <Normalization id="AR2.N1" meddra_pt="Rash" meddra_pt_id="10037844" />
    </Reaction>
    <Reaction id="AR3" str="muscle cramps">
      <Normalization id="AR3.N1" meddra_pt="Muscle spasms" meddra_pt_id="10028334" meddra_llt="Muscle cramps" meddra_llt_id="10028294" />
    </Reaction>
    <Reaction id="AR4" str="hepatotoxicity">
      <Normalization id="AR4.N1" meddra_pt="Hepatotoxicity" meddra_pt_id="10019851" flag="animal" />
    </Reaction>
  </Reactions>
</Label>
"""


def _structure(docs):
    """Everything the XML carries, in a comparable form."""
    out = []
    for d in docs:
        out.append(
            (
                d._.doc_id,
                d._.section,
                d.text,
                sorted((s.id_, s.label_, tuple(map(tuple, s._.fragments))) for s in d.spans["mentions"]),
                sorted((r["id"], r["label"], r["head"], r["tail"]) for r in d._.relations),
                d._.source["label_reactions"] if d._.source.get("label_reactions") is not None else None,
            )
        )
    return out


@pytest.fixture
def xml_path(tmp_path):
    path = tmp_path / "DRUGX.xml"
    path.write_text(XML, encoding="utf-8")
    return path


def test_read_tac_xml(nlp, xml_path, report):
    docs = list(read_tac_xml(nlp, xml_path, report=report))
    assert [d._.doc_id for d in docs] == ["DRUGX/S1", "DRUGX/S2"]
    s1 = {s.id_: s for s in docs[0].spans["mentions"]}
    assert s1["M4"].text == "muscle pain and cramps"  # merged cover
    assert s1["M4"]._.fragments == [[46, 52], [62, 68]]
    assert report.counts["mentions_merged_discontiguous"] == 1
    assert {r["id"] for r in docs[0]._.relations} == {"RL1", "RL2"}
    assert [r["str"] for r in docs[1]._.reactions] == ["hepatotoxicity"]
    assert docs[1]._.reactions[0]["normalizations"][0]["flag"] == "animal"


def test_discontiguous_skip_policy_is_reported(nlp, xml_path, report):
    docs = list(read_tac_xml(nlp, xml_path, report=report, discontiguous="skip"))
    assert "M4" not in {s.id_ for s in docs[0].spans["mentions"]}
    assert report.counts["skipped_discontiguous"] == 1


def test_xml_read_write_read_is_lossless(nlp, xml_path, tmp_path):
    docs = list(read_tac_xml(nlp, xml_path))
    out = tmp_path / "out"
    paths = write_tac_xml(docs, out)
    assert [p.name for p in paths] == ["DRUGX.xml"]
    again = list(read_tac_xml(nlp, paths[0]))
    assert _structure(again) == _structure(docs)
    # and a second write is byte-identical to the first
    paths2 = write_tac_xml(again, tmp_path / "out2")
    assert paths2[0].read_bytes() == paths[0].read_bytes()


def test_real_corpus_through_xml(nlp, tmp_path):
    """OnSIDES sections -> TAC XML -> read back: same mentions, reactions and PTs."""
    docs = list(read_onsides(nlp, shared("tac2017_adr", "test.json")))[:30]
    paths = write_tac_xml(docs, tmp_path)
    assert len(paths) == len({d._.label_id for d in docs})
    back = [d for p in paths for d in read_tac_xml(nlp, p)]
    assert len(back) == len(docs)
    by_text = {d.text: d for d in back}
    for d in docs:
        b = by_text[d.text]
        assert [(s.start_char, s.end_char, s.label_) for s in d.spans["mentions"]] == [
            (s.start_char, s.end_char, s.label_) for s in b.spans["mentions"]
        ]
        gold_pts = {n["meddra_pt_id"] for s in d.spans["mentions"] for n in s._.meddra}
        back_pts = {n["meddra_pt_id"] for r in b._.reactions for n in r["normalizations"]}
        assert gold_pts <= back_pts


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda x: x.replace("</Label>", ""), "Malformed XML"),
        (lambda x: x.replace('start="37" len="4"', 'start="37" len="400"'), "outside the text"),
        (lambda x: x.replace('str="rash"', 'str="rush"', 1), "does not match"),
        (lambda x: x.replace('arg2="M5"', 'arg2="M99"'), "unknown mention"),
        (lambda x: x.replace('start="0" len="7"', 'start="zero" len="7"'), "not integers"),
    ],
)
def test_bad_xml_names_file_and_record(nlp, tmp_path, mutate, message):
    path = tmp_path / "bad.xml"
    path.write_text(mutate(XML), encoding="utf-8")
    with pytest.raises(FormatError, match=message) as err:
        list(read_tac_xml(nlp, path, strict=True))
    assert str(path) in str(err.value)


def test_bad_mention_skipped_in_batch_mode(nlp, tmp_path, report):
    path = tmp_path / "bad.xml"
    path.write_text(XML.replace('str="rash"', 'str="rush"', 1), encoding="utf-8")
    docs = list(read_tac_xml(nlp, path, report=report))
    assert "M3" not in {s.id_ for s in docs[0].spans["mentions"]}
    kinds = sorted(s["kind"] for s in report.skipped)
    # M3, the relation RL2 that needs it, and the reaction "rash" that no mention names now
    assert kinds == ["mention", "reaction", "relation"]
    by_kind = {s["kind"]: s["record"] for s in report.skipped}
    assert by_kind == {"mention": "Mention M3", "reaction": "Reaction AR2", "relation": "Relation RL2"}


def test_non_utf8_and_empty_xml(nlp, tmp_path):
    bad = tmp_path / "latin1.xml"
    bad.write_bytes(XML.replace("rats", "r\u00e4ts").encode("latin-1"))
    with pytest.raises(FormatError, match="UTF-8"):
        list(read_tac_xml(nlp, bad))
    empty = tmp_path / "empty.xml"
    empty.write_text("  \n")
    with pytest.raises(FormatError, match="empty"):
        list(read_tac_xml(nlp, empty))


def test_discontiguous_reactions_are_kept_and_unplaced_ones_reported(nlp, tmp_path):
    """Issue 24, item 1: a reaction whose only mention is discontiguous
    ("muscle cramps" annotated over "muscle pain and cramps") is gold for its
    section, under either discontiguous policy; a reaction no mention names is
    listed in the report instead of vanishing."""
    extra = '<Reaction id="AR5" str="alopecia"><Normalization id="AR5.N1" meddra_pt="Alopecia" meddra_pt_id="10001760" /></Reaction>\n  </Reactions>'
    path = tmp_path / "DRUGX.xml"
    path.write_text(XML.replace("</Reactions>", extra), encoding="utf-8")
    for policy in ("merge", "skip"):
        report = Report()
        docs = list(read_tac_xml(nlp, path, report=report, discontiguous=policy))
        assert [r["str"] for r in docs[0]._.reactions] == ["infections", "rash", "muscle cramps"], policy
        assert [r["str"] for r in docs[1]._.reactions] == ["hepatotoxicity"]
        unplaced = [s for s in report.skipped if s["kind"] == "reaction"]
        assert [(s["record"], s["path"]) for s in unplaced] == [("Reaction AR5", str(path))], policy
        assert "alopecia" in unplaced[0]["reason"]
