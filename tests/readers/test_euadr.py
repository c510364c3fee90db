from collections import Counter

import pytest

from spacy_clinie.errors import FormatError
from spacy_clinie.readers import read_euadr

from ..conftest import shared


def test_real_euadr_counts(nlp, report):
    docs = list(read_euadr(nlp, shared("euadr", "EUADR_drug_disease.csv"), report=report))
    rels = [r for d in docs for r in d._.relations]
    assert len(rels) == 244  # one relation per row of the source
    assert not report.skipped
    assert set(Counter(r["label"] for r in rels)) == {"PA", "NA", "SA", "FA"}
    for doc in docs:
        spans = {s.id_: s for s in doc.spans["mentions"]}
        for r in doc._.relations:
            assert {spans[r["head"]].label_, spans[r["tail"]].label_} <= {"Disorder", "Drug", "Gene"}
    first = docs[0]
    assert [s.text for s in first.spans["mentions"]] == ["venous thrombosis", "oral contraceptives"]


def test_bad_euadr(nlp, tmp_path, report):
    header = "\t".join(f'"{c}"' for c in ["ASSOCIATION_TYPE", "PMID", "NUM_SENTENCE", "ENTITY1_TEXT", "ENTITY1_INI", "ENTITY1_END", "ENTITY1_TYPE", "ENTITY2_TEXT", "ENTITY2_INI", "ENTITY2_END", "ENTITY2_TYPE", "SENTENCE"])
    good = 'PA\t1\t0\t"rash"\t0\t4\t"Diseases & Disorders"\t"aspirin"\t15\t22\t"Chemicals & Drugs"\t"Rash caused by aspirin."'
    wrong_label = good.replace("PA", "XX", 1)
    wrong_text = good.replace('"rash"', '"fever"')
    path = tmp_path / "e.csv"
    path.write_text("\n".join([header, good, wrong_label, wrong_text]) + "\n", encoding="utf-8")
    docs = list(read_euadr(nlp, path, report=report))
    assert sum(len(d._.relations) for d in docs) == 1
    records = sorted(s["record"] for s in report.skipped)
    assert records == ["PMID 1 sentence 0 T3 (line 4)", "line 3", "line 4"]
    assert any("does not match" in s["reason"] for s in report.skipped)
    bad_header = tmp_path / "h.csv"
    bad_header.write_text("a\tb\n1\t2\n", encoding="utf-8")
    with pytest.raises(FormatError, match="Expected a header"):
        list(read_euadr(nlp, bad_header))
