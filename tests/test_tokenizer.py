from spacy_clinie.readers._util import split_tokens_at


def test_clinical_infixes(nlp):
    text = "Symptoms (DRESS)/Multiorgan hypersensitivity; fatigue.c and depression.(6.1) nausea/ vomiting"
    tokens = [t.text for t in nlp(text)]
    for expected in ["DRESS", "Multiorgan", "fatigue", "depression", "nausea", "vomiting"]:
        assert expected in tokens
    assert "e.g." in [t.text for t in nlp("e.g. headache")]


def test_split_tokens_at_boundaries(nlp):
    doc = nlp.make_doc("hepatitisB. ok")
    assert doc.char_span(0, 9) is None
    assert split_tokens_at(doc, [0, 9]) == 1
    assert doc.char_span(0, 9).text == "hepatitis"
    assert doc.text == "hepatitisB. ok"
