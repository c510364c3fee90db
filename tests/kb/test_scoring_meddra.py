"""MedDRA metrics on hand-computed cases, and the CLI around them."""
import json

import pytest
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_clinie.cli import app
from spacy_clinie.extensions import MENTIONS_KEY
from spacy_clinie.scoring.meddra import evaluate_meddra, link_match

from .release import write_release

runner = CliRunner()
TEXT = "Anemia, rash and nausea."


def code(pt, pt_id, llt=None, llt_id=None):
    return [{"meddra_pt": pt, "meddra_pt_id": pt_id, "meddra_llt": llt or pt, "meddra_llt_id": llt_id or pt_id}]


def make_doc(nlp, spans, doc_id="L/adverse reactions"):
    doc = nlp.make_doc(TEXT)
    doc._.doc_id = doc_id
    placed = []
    for i, (word, _) in enumerate(spans):
        a = TEXT.index(word)
        placed.append(doc.char_span(a, a + len(word), label="AdverseReaction", span_id=f"M{i + 1}"))
    doc.spans[MENTIONS_KEY] = placed
    for span, (_, norm) in zip(placed, spans):
        span._.meddra = norm
    return doc


@pytest.fixture
def gold(nlp):
    return make_doc(nlp, [("Anemia", code("Anaemia", "1")), ("rash", code("Rash", "2")), ("nausea", code("Nausea", "3"))])


@pytest.fixture
def pred(nlp):
    return make_doc(nlp, [("Anemia", code("Anaemia", "1", "Anemia", "11")), ("rash", code("Rash pruritic", "9")), ("and", code("Nausea", "3"))])


def test_meddra_metrics_by_hand(gold, pred):
    s = evaluate_meddra([gold], [pred], seen_pts={"1"})
    acc = s["gold_mentions"]
    assert (acc["n"], acc["covered"]) == (3, 2)
    assert acc["pt_acc"] == pytest.approx(1 / 3) and acc["llt_acc"] == 0.0
    assert (acc["n_unseen_pt"], acc["pt_acc_unseen"], acc["pt_acc_seen"]) == (2, 0.0, 1.0)
    assert s["mention_pt"]["p"] == pytest.approx(1 / 3) and s["mention_pt"]["r"] == pytest.approx(1 / 3)
    # LINK: Anaemia and Nausea match exactly; "Rash" vs "Rash pruritic" (ratio 0.47) only with a low threshold
    assert (s["link"]["p"], s["link"]["r"], s["link"]["exact_match"], s["link"]["fuzzy_match"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3, 0.0))
    low = evaluate_meddra([gold], [pred], link_threshold=0.4)["link"]
    assert (low["f"], low["fuzzy_match"]) == pytest.approx((1.0, 1 / 3))
    perfect = evaluate_meddra([gold], [gold])
    assert perfect["gold_mentions"]["pt_acc"] == perfect["mention_pt"]["f"] == perfect["link"]["f"] == 1.0


def test_link_match_is_one_to_one():
    assert link_match({"Neutropenia", "Oedema"}, {"neutropenia", "Edema"}) == (1, 1)
    # two predictions close to one gold name: only one may match it
    assert link_match({"Oedema"}, {"Edema", "Oedemas"}) == (0, 1)
    assert link_match(set(), {"Rash"}) == (0, 0)


def _save(docs, path):
    DocBin(docs=docs, store_user_data=True).to_disk(path)
    return str(path)


def test_cli_evaluate_and_meddra_commands(nlp, gold, pred, tmp_path):
    g, p = _save([gold], tmp_path / "gold.spacy"), _save([pred], tmp_path / "pred.spacy")
    train = _save([make_doc(nlp, [("Anemia", code("Anaemia", "1"))])], tmp_path / "train.spacy")
    out = tmp_path / "scores.json"
    result = runner.invoke(app, ["evaluate", g, p, "--seen", train, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "LINK" in result.output and "mention+PT" in result.output
    scores = json.loads(out.read_text())["meddra"]
    assert scores["gold_mentions"]["pt_acc"] == pytest.approx(1 / 3) and scores["gold_mentions"]["n_unseen_pt"] == 2

    # build-terms -> build-linker -> link -> evaluate --linker
    terms = tmp_path / "terms.tsv"
    result = runner.invoke(app, ["meddra", "build-terms", g, "-o", str(terms)])
    assert result.exit_code == 0, result.output
    assert "3 PTs" in result.output and terms.read_text().startswith("term\tllt_id")
    result = runner.invoke(app, ["meddra", "build-linker", str(tmp_path / "linker"), "--kb", str(terms), "--encoder", "none"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["meddra", "link", str(tmp_path / "linker"), "anaemias", "Nausea"])
    assert result.exit_code == 0, result.output
    assert "PT Anaemia (1)" in result.output.splitlines()[1]
    result = runner.invoke(app, ["evaluate", g, p, "--linker", str(tmp_path / "linker")])
    assert result.exit_code == 0, result.output
    assert "on the gold mentions: PT acc 1.0000" in result.output


def test_cli_check_release(tmp_path):
    release = write_release(tmp_path / "ascii")
    result = runner.invoke(app, ["meddra", "check", str(release)])
    assert result.exit_code == 0, result.output
    assert "17 terms: 17 LLTs (1 non-current), 13 PTs, 7 SOCs" in result.output
    with (release / "pt.asc").open("a") as f:
        f.write("90000099$Broken\n")
    result = runner.invoke(app, ["meddra", "check", str(release)])
    assert result.exit_code == 1
    assert "pt.asc, record line 14" in result.output
