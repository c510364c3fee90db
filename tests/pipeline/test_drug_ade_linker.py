"""clinie_drug_ade_linker: the issue's stress cases (two drugs and two
reactions in different sentences, a negated reaction, a brand (generic)
pair, a drug named only by its class), the rules, a trained relation linker
trusted where confident (overfit), idempotence, nlp.pipe == nlp(), DocBin,
brat, TAC XML and the JSONL record, and spacy.load through entry points."""
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from spacy.tokens import DocBin
from spacy.training import Example

from spacy_clinie.batch.records import RELATION_KEYS, doc_to_record
from spacy_clinie.extensions import MENTIONS_KEY, mention_by_id
from spacy_clinie.pipeline.context import add_context_pipes
from spacy_clinie.readers.corpus import gold_mention_copy
from spacy_clinie.readers import read_brat_file, read_tac_xml, write_brat, write_tac_xml
from spacy_clinie.tokenizer import make_blank

REACTIONS = ["serotonin syndrome", "dry cough", "diarrhea", "rash", "hives", "insomnia", "nausea", "anaphylaxis", "seizures", "myalgia"]
# (text, expected links as (reaction, drug)) with the default rule ("all")
STRESS = [
    # two drugs and two reactions in different sentences
    (
        "Lisinopril was started in March and she developed a dry cough. Metformin was added in May, after which she had diarrhea.",
        {("dry cough", "Lisinopril"), ("diarrhea", "Metformin")},
    ),
    # a negated reaction
    ("No rash on lisinopril.", set()),
    ("She developed hives on lisinopril; no rash.", {("hives", "lisinopril")}),
    # a brand (generic) pair: one drug, one link
    ("Insomnia after WELLBUTRIN (BUPROPION) was started.", {("Insomnia", "WELLBUTRIN (BUPROPION")}),
    # a drug named only by its class
    ("She developed a dry cough after starting an ACE inhibitor.", {("dry cough", "ACE inhibitor")}),
    # the note: rash and nausea from amoxicillin, anaphylaxis negated
    (
        "Started on amoxicillin, then developed a maculopapular rash and mild nausea; no anaphylaxis.",
        {("rash", "amoxicillin"), ("nausea", "amoxicillin")},
    ),
    # hypothetical
    ("If seizures occur, stop bupropion.", set()),
    # a drug name inside the reaction is not its cause; the drug given is
    ("Serotonin syndrome developed on tramadol.", {("Serotonin syndrome", "tramadol")}),
]


def note_nlp(**linker_config):
    nlp = make_blank()
    ruler = nlp.add_pipe("span_ruler", config={"spans_key": MENTIONS_KEY, "annotate_ents": False, "phrase_matcher_attr": "LOWER"})
    ruler.add_patterns([{"label": "AdverseReaction", "pattern": p} for p in REACTIONS])
    nlp.add_pipe("clinie_drug_ner")
    add_context_pipes(nlp, sectionizer=False)
    nlp.add_pipe("clinie_drug_ade_linker", config=linker_config)
    return nlp


@pytest.fixture(scope="module")
def nlp():
    return note_nlp()


def links(doc):
    spans = mention_by_id(doc)
    return {(spans[r["head"]].text, spans[r["tail"]].text) for r in doc._.relations if r["label"] == "ADE-Drug"}


@pytest.mark.parametrize("text,expected", STRESS)
def test_stress_cases(nlp, text, expected):
    doc = nlp(text)
    assert links(doc) == expected
    for rel in doc._.relations:
        assert rel["method"] == "rule_all" and 0.0 < rel["score"] <= 1.0
        assert mention_by_id(doc)[rel["head"]].label_ == "AdverseReaction"
        assert mention_by_id(doc)[rel["tail"]].label_ == "Drug"


def test_stress_cases_nearest_rule():
    nlp = note_nlp(rule="nearest")
    for text, expected in STRESS:
        assert links(nlp(text)) == expected, text


def test_rules_on_a_drug_list():
    text = "Myalgia developed on lisinopril, metformin and atorvastatin. Warfarin was held; myalgia recurred on simvastatin."
    every = note_nlp()(text)
    assert links(every) == {("Myalgia", d) for d in ("lisinopril", "metformin", "atorvastatin")} | {
        ("myalgia", "Warfarin"), ("myalgia", "simvastatin"),
    }  # fmt: skip
    assert {r["score"] for r in every._.relations} == {0.3333, 0.5}  # 1 / drugs in the sentence
    nearest = note_nlp(rule="nearest")(text)
    assert links(nearest) == {("Myalgia", "lisinopril"), ("myalgia", "simvastatin")}
    assert {r["method"] for r in nearest._.relations} == {"rule_nearest"}
    listed = note_nlp(rule="coordinated")(text)
    assert links(listed) == {("Myalgia", d) for d in ("lisinopril", "metformin", "atorvastatin")} | {("myalgia", "simvastatin")}
    close = note_nlp(max_distance=2)(text)
    assert links(close) == {("Myalgia", "lisinopril"), ("myalgia", "simvastatin")}
    assert links(note_nlp(rule="none")(text)) == set()
    # flags on the drug count too, and can be switched off
    assert links(note_nlp(reaction_skip_flags=[], drug_skip_flags=[])("No rash on lisinopril.")) == {("rash", "lisinopril")}


def test_idempotent_and_keeps_other_relations(nlp):
    doc = nlp(STRESS[0][0])
    own = links(doc)
    linker = nlp.get_pipe("clinie_drug_ade_linker")
    # another component's relation, with an id the linker used
    other = {"id": "R1", "label": "Reason-Drug", "head": doc.spans[MENTIONS_KEY][0].id_, "tail": doc.spans[MENTIONS_KEY][-1].id_}
    doc._.relations = [other] + doc._.relations
    once = list(linker(doc)._.relations)
    assert once[0] == other and links(doc) == own
    assert len({r["id"] for r in once}) == len(once) == 1 + len(own)
    assert linker(doc)._.relations == once


def test_needs_sentences_and_checks_settings():
    bare = make_blank()
    ruler = bare.add_pipe("span_ruler", config={"spans_key": MENTIONS_KEY, "annotate_ents": False})
    ruler.add_patterns([{"label": "AdverseReaction", "pattern": "rash"}])
    bare.add_pipe("clinie_drug_ner")
    bare.add_pipe("clinie_drug_ade_linker")
    with pytest.raises(ValueError, match="needs sentence boundaries"):
        bare("rash on lisinopril")
    for bad, message in (
        ({"rule": "closest"}, "rule must be one of"),
        ({"max_distance": -1}, "max_distance"),
        ({"linker_min_score": 1.5}, "linker_min_score"),
        ({"linker": "relation_linker"}, "neither linker_positive nor linker_negative"),
    ):
        with pytest.raises(ValueError, match=message):
            make_blank().add_pipe("clinie_drug_ade_linker", config=bad)


def test_pipe_equals_call_docbin_and_writers(nlp, tmp_path):
    texts = [t for t, _ in STRESS]
    piped = list(nlp.pipe(texts, batch_size=3))
    called = [nlp(t) for t in texts]
    assert [d._.relations for d in piped] == [d._.relations for d in called]
    back = list(DocBin(store_user_data=True, docs=piped).get_docs(nlp.vocab))
    assert [d._.relations for d in back] == [d._.relations for d in piped]
    assert [links(d) for d in back] == [links(d) for d in piped]
    for i, doc in enumerate(piped):
        doc._.doc_id = f"note{i}"
    # brat keeps the links (label, head, tail)
    write_brat(piped, tmp_path / "brat")
    for i, doc in enumerate(piped):
        reread = read_brat_file(make_blank(), tmp_path / "brat" / f"note{i}.txt", strict=True)
        assert links(reread) == links(doc)
    # TAC XML keeps score and method too
    write_tac_xml(piped[:1], tmp_path / "xml")
    reread = list(read_tac_xml(make_blank(), tmp_path / "xml" / "note0.xml", strict=True))[0]
    assert links(reread) == links(piped[0])
    assert sorted((r["score"], r["method"]) for r in reread._.relations) == sorted((r["score"], r["method"]) for r in piped[0]._.relations)
    # clinie pipe's JSONL record
    record = doc_to_record(piped[0], "note0", model="test")
    assert record["relations"] and all(set(r) == set(RELATION_KEYS) for r in record["relations"])
    assert {r["method"] for r in record["relations"]} == {"rule_all"}
    drugs = {s["id"]: s for s in record["spans"] if s["label"] == "Drug"}
    assert all(r["tail"] in drugs for r in record["relations"])


# ---------------------------------------------------------------- with a trained relation linker

# EU-ADR-style sentences: the drug treats one disorder (FA) and causes another (PA)
TRAIN = [
    ("Aspirin relieved the headache but caused nausea.", "Aspirin", "headache", "nausea"),
    ("Lisinopril controlled the hypertension but caused a cough.", "Lisinopril", "hypertension", "cough"),
    ("Metformin improved the diabetes and caused diarrhea.", "Metformin", "diabetes", "diarrhea"),
    ("Ibuprofen eased the arthritis but caused an ulcer.", "Ibuprofen", "arthritis", "ulcer"),
]


def _train_docs(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    docs = []
    for i, (text, drug, treated, caused) in enumerate(TRAIN):
        lines = []
        for tid, label, surface in (("T1", "Drug", drug), ("T2", "Disorder", treated), ("T3", "Disorder", caused)):
            start = text.index(surface)
            lines.append(f"{tid}\t{label} {start} {start + len(surface)}\t{surface}")
        lines += ["R1\tFA Arg1:T2 Arg2:T1", "R2\tPA Arg1:T3 Arg2:T1"]
        (folder / f"s{i}.txt").write_text(text, encoding="utf-8")
        (folder / f"s{i}.ann").write_text("\n".join(lines) + "\n", encoding="utf-8")
        docs.append(read_brat_file(make_blank(), folder / f"s{i}.txt", strict=True))
    return docs


def hybrid_nlp(min_score: float):
    nlp = make_blank()
    nlp.add_pipe(
        "clinie_relation_linker",
        config={
            "exclusive": True,
            "threshold": 0.0,
            "model": {
                "pair_features": {"get_candidates": {"label_pairs": [["Disorder", "Drug"]]}, "tok2vec": {"width": 32, "embed_size": 500, "depth": 1}},
                "classifier": {"hidden_width": 32, "dropout": 0.0},
            },
        },
    )
    add_context_pipes(nlp, sectionizer=False)
    nlp.add_pipe(
        "clinie_drug_ade_linker",
        config={
            "reaction_labels": ["Disorder"],
            "linker": "clinie_relation_linker",
            "linker_positive": ["PA"],
            "linker_negative": ["FA", "NA"],
            "linker_min_score": min_score,
        },
    )
    return nlp


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory):
    docs = _train_docs(tmp_path_factory.mktemp("euadr_like"))
    nlp = hybrid_nlp(0.5)
    examples = [Example(gold_mention_copy(d), d) for d in docs]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(60):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
    assert losses["clinie_relation_linker"] < 0.05
    return nlp, docs


def test_overfit_linker_decides_where_confident(hybrid):
    nlp, docs = hybrid
    pred = list(nlp.pipe([gold_mention_copy(d) for d in docs]))
    for (text, drug, treated, caused), doc in zip(TRAIN, pred):
        # the rule alone would link the treated disorder too: the linker vetoes it
        ade = [r for r in doc._.relations if r["label"] == "ADE-Drug"]
        assert links(doc) == {(caused, drug)}, text
        assert ade[0]["method"] == "relation_linker" and ade[0]["score"] >= 0.5
        assert {r["label"] for r in doc._.relations if r.get("predicted_by") == "clinie_relation_linker"} == {"PA", "FA"}


def test_rule_where_linker_is_not_trusted(hybrid, tmp_path):
    nlp, docs = hybrid
    nlp.to_disk(tmp_path / "hybrid")
    import spacy

    # the linker's relations stay in the doc but are not trusted: the rule decides
    # (a setting, not state: it comes from the config on load)
    untrusted = {"linker": None, "linker_positive": [], "linker_negative": []}
    strict = spacy.load(tmp_path / "hybrid", config={"components": {"clinie_drug_ade_linker": untrusted}})
    for (text, drug, treated, caused), doc in zip(TRAIN, strict.pipe([gold_mention_copy(d) for d in docs])):
        assert links(doc) == {(treated, drug), (caused, drug)}, text
        assert {r["method"] for r in doc._.relations if r["label"] == "ADE-Drug"} == {"rule_all"}
    # the saved pipeline predicts what the trained one does, and pickles
    again = spacy.load(tmp_path / "hybrid")
    a = [d._.relations for d in again.pipe([gold_mention_copy(d) for d in docs])]
    b = [d._.relations for d in nlp.pipe([gold_mention_copy(d) for d in docs])]
    assert a == b
    clone = pickle.loads(pickle.dumps(nlp))
    assert [d._.relations for d in clone.pipe([gold_mention_copy(d) for d in docs])] == b


ENTRY_POINT_CODE = """
import sys
before = set(sys.modules)
import spacy
nlp = spacy.load(sys.argv[1])
assert not any(m.startswith("spacy_clinie") for m in before)
print(nlp.pipe_names)
doc = nlp("No rash on lisinopril. Insomnia after WELLBUTRIN (BUPROPION) was started.")
spans = {s.id_: s.text for s in doc.spans["mentions"]}
print(sorted((spans[r["head"]], spans[r["tail"]], r["method"]) for r in doc._.relations))
"""


def test_spacy_load_through_entry_points(nlp, tmp_path):
    nlp.to_disk(tmp_path / "pipe")
    out = subprocess.run([sys.executable, "-c", ENTRY_POINT_CODE, str(tmp_path / "pipe")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert "clinie_drug_ade_linker" in lines[0] and "clinie_drug_ner" in lines[0]
    assert lines[1] == "[('Insomnia', 'WELLBUTRIN (BUPROPION', 'rule_all')]"
