"""MedDRA loaders, terms tables and the normaliser."""
import pytest

from spacy_clinie.errors import FormatError
from spacy_clinie.kb.normalize import make_meddra_normalizer, singularize
from spacy_clinie.kb.terms import (
    read_meddra_ascii,
    read_terms_table,
    terms_from_docs,
    write_terms_table,
)

from .release import EXTRA_LLTS, PTS, write_release


@pytest.fixture
def release(tmp_path):
    return write_release(tmp_path / "ascii")


def test_read_release(release):
    terms = read_meddra_ascii(release)
    assert len(terms) == len(PTS) + len(EXTRA_LLTS)
    by_name = {t.term: t for t in terms}
    itching = by_name["Itching"]
    assert (itching.llt_id, itching.pt_id, itching.pt) == ("90000101", "90000008", "Pruritus")
    assert itching.source == "llt" and by_name["Pruritus"].source == "pt"
    # primary SOC wins over the secondary link listed after it
    assert (by_name["Bleeding"].soc_id, by_name["Bleeding"].soc) == ("90100007", "Vascular disorders")
    assert by_name["Tummy ache"].current is False
    assert "Tummy ache" not in {t.term for t in read_meddra_ascii(release, noncurrent_llts=False)}


def test_release_without_hierarchy_has_no_soc(tmp_path):
    terms = read_meddra_ascii(write_release(tmp_path / "r", hierarchy=False))
    assert all(t.soc_id == "" for t in terms)


def _rewrite(path, n, new):
    lines = path.read_text().splitlines()
    lines[n - 1] = new
    path.write_text("\n".join(lines) + "\n")


def test_wrong_column_count_names_file_and_line(release):
    _rewrite(release / "llt.asc", 3, "90000003$Oedema peripheral$90000003$Y$")
    with pytest.raises(FormatError) as err:
        read_meddra_ascii(release)
    assert err.value.path.endswith("llt.asc") and err.value.record == "line 3"
    assert "11" in str(err.value) and "llt.asc" in str(err.value)


def test_malformed_code_names_file_and_line(release):
    lines = (release / "pt.asc").read_text().splitlines()
    _rewrite(release / "pt.asc", 5, lines[4].replace("90000005", "9000OOO5"))
    with pytest.raises(FormatError) as err:
        read_meddra_ascii(release)
    assert err.value.path.endswith("pt.asc") and err.value.record == "line 5"
    assert "pt_code" in str(err.value)


def test_partial_file_names_last_line(release):
    """A download cut off mid-line."""
    text = (release / "mdhier.asc").read_text()
    (release / "mdhier.asc").write_text(text[: len(text) - 40])
    with pytest.raises(FormatError) as err:
        read_meddra_ascii(release)
    assert err.value.path.endswith("mdhier.asc")
    assert err.value.record == f"line {len(PTS) + 1}"


def test_llt_pointing_at_unknown_pt(release):
    with (release / "llt.asc").open("a") as f:
        f.write("90000199$Orphan$90009999$$$$$$$Y$$\n")
    with pytest.raises(FormatError, match=r"llt\.asc, record line 18: .*90009999"):
        read_meddra_ascii(release)


def test_missing_file(release):
    (release / "pt.asc").unlink()
    with pytest.raises(FormatError) as err:
        read_meddra_ascii(release)
    assert err.value.path.endswith("pt.asc") and "not found" in str(err.value)
    with pytest.raises(FormatError, match="not a folder"):
        read_meddra_ascii(release / "nowhere")


def test_terms_table_round_trip(release, tmp_path):
    terms = read_meddra_ascii(release)
    out = tmp_path / "terms.tsv"
    assert write_terms_table(terms, out) == len(terms)
    assert read_terms_table(out) == terms


def test_bad_terms_table(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("term\tllt_id\tllt\n")
    with pytest.raises(FormatError, match="record line 1"):
        read_terms_table(path)
    path.write_text("term\tllt_id\tllt\tpt_id\tpt\nrash\t1\tRash\t1\tRash\nitch\t2\tItching\t3\n")
    with pytest.raises(FormatError) as err:
        read_terms_table(path)
    assert err.value.record == "line 3"


def test_terms_from_docs(nlp):
    doc = nlp("Anemia and ARDS were seen; anemia again.")
    norm = lambda pt, pid, llt, lid: [{"meddra_pt": pt, "meddra_pt_id": pid, "meddra_llt": llt, "meddra_llt_id": lid}]  # noqa: E731
    doc._.reactions = [
        {"id": "R1", "str": "anemia", "normalizations": norm("Anaemia", "1", "Anemia", "11")},
        {"id": "R2", "str": "ards", "normalizations": norm("Acute respiratory distress syndrome", "2", "ARDS", "22")},
        {"id": "R3", "str": "midline defects", "normalizations": []},
    ]
    terms = terms_from_docs([doc, doc])
    rows = {(t.term, t.source): (t.llt_id, t.pt_id, t.count) for t in terms}
    assert rows[("anemia", "synonym")] == ("11", "1", 2)
    assert rows[("Anemia", "llt")] == ("11", "1", 1)
    assert rows[("Anaemia", "pt")] == ("1", "1", 1)
    assert ("ARDS", "llt") in rows and ("Acute respiratory distress syndrome", "pt") in rows
    assert not any(t.term == "midline defects" for t in terms)
    assert len(terms_from_docs([doc], synonyms=False)) == 4


@pytest.mark.parametrize(
    "british,us",
    [
        ("Anaemia", "anemia"),
        ("Oedema peripheral", "peripheral edema"),
        ("Diarrhoea", "diarrhea"),
        ("Haemorrhage", "hemorrhage"),
        ("Oesophagitis", "esophagitis"),
        ("Neutralising antibodies", "neutralizing antibody"),
        ("Tumour lysis syndrome", "tumor lysis syndrome"),
        ("Paediatric", "pediatric"),
    ],
)
def test_normalizer_spelling(british, us):
    norm = make_meddra_normalizer()
    assert norm.bag(british) == norm.bag(us)
    off = make_meddra_normalizer(spelling=False)
    assert off.bag(british) != off.bag(us)


def test_normalizer_plurals_and_abbreviations():
    norm = make_meddra_normalizer()
    assert [singularize(w) for w in ("injuries", "reactions", "abscesses", "thromboses", "headaches", "emboli", "psoriasis", "status")] == [
        "injury", "reaction", "abscess", "thrombosis", "headache", "embolus", "psoriasis", "status",
    ]  # fmt: skip
    assert norm.key("TMA") == norm.key("thrombotic microangiopathy")
    assert norm.key("p.o.") == norm.key("by mouth") == norm.key("PO")
    assert norm.key("QID") == "four time a day"
    assert norm.bag("Erythema of the eyelid") == norm.bag("eyelid erythema")
    custom = make_meddra_normalizer(default_abbreviations=False, extra_abbreviations={"n.v.": "nausea and vomiting"})
    assert custom.key("TMA") == "tma" and custom.key("N.V.") == "nausea and vomiting"
    with pytest.raises(ValueError, match="one token"):
        make_meddra_normalizer(extra_abbreviations={"n v": "x"})
