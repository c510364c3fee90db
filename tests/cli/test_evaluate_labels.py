"""clinie evaluate --labels: scoring a pipeline that finds more mention types
than the gold annotates (en_clinie_ade's Drug mentions on TAC)."""
import json

from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_clinie.cli import app
from spacy_clinie.extensions import MENTIONS_KEY
from spacy_clinie.tokenizer import make_blank

TEXTS = ["Nausea and rash were reported with lisinopril.", "Headache occurred on warfarin and aspirin."]
REACTIONS = ["Nausea", "rash", "Headache"]


def test_labels_leave_out_types_the_gold_does_not_have(tmp_path):
    nlp = make_blank()
    ruler = nlp.add_pipe("span_ruler", config={"spans_key": MENTIONS_KEY, "annotate_ents": False})
    ruler.add_patterns([{"label": "AdverseReaction", "pattern": p} for p in REACTIONS])
    gold = [nlp(t) for t in TEXTS]
    for i, doc in enumerate(gold):
        doc._.doc_id = f"d{i}"
    drugs = nlp.add_pipe("clinie_drug_ner")
    pred = [drugs(nlp.get_pipe("span_ruler")(nlp.make_doc(t))) for t in TEXTS]
    for i, doc in enumerate(pred):
        doc._.doc_id = f"d{i}"
    assert sum(s.label_ == "Drug" for d in pred for s in d.spans[MENTIONS_KEY]) == 3
    DocBin(store_user_data=True, docs=gold).to_disk(tmp_path / "gold.spacy")
    DocBin(store_user_data=True, docs=pred).to_disk(tmp_path / "pred.spacy")
    runner = CliRunner()
    args = ["evaluate", str(tmp_path / "gold.spacy"), str(tmp_path / "pred.spacy"), "--compare", str(tmp_path / "gold.spacy"), "--n-shuffles", "50"]
    every = runner.invoke(app, [*args, "-o", str(tmp_path / "all.json")])
    assert every.exit_code == 0, every.output
    only = runner.invoke(app, [*args, "--labels", "AdverseReaction", "-o", str(tmp_path / "adr.json")])
    assert only.exit_code == 0, only.output
    every, only = (json.loads((tmp_path / f).read_text()) for f in ("all.json", "adr.json"))
    assert every["mention_strict"]["micro"]["p"] == 0.5  # 3 reactions right, 3 drugs unannotated
    assert only["mention_strict"]["micro"]["p"] == 1.0 and only["reaction"]["micro"]["f"] == 1.0
    assert only["significance"]["mention_strict"]["approximate_randomization"]["p_value"] == 1.0
