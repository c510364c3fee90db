"""``clinie package``: assembles a config into a folder with the metrics'
scores in meta.json, config overrides pass through as with spaCy's
commands, and a missing metrics or gold file is a clear error."""
import json

import pytest
from typer.testing import CliRunner

from spacy_clinie.cli import app

CONFIG = """
[paths]
label = "Drug"

[nlp]
lang = "en"
pipeline = ["drug_ner"]

[components]

[components.drug_ner]
factory = "clinie_drug_ner"
label = ${paths.label}
"""


def test_package_assembles_and_writes_meta(tmp_path):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(CONFIG)
    metrics = tmp_path / "test.json"
    metrics.write_text(json.dumps({"reaction": {"micro": {"p": 0.5, "r": 0.25, "f": 1 / 3, "n_pred": 4}}}))
    out = tmp_path / "pipeline"
    result = CliRunner().invoke(
        app,
        ["package", str(cfg), str(out), "--metrics", str(metrics), "--name", "tiny", "--version", "0.0.2", "--paths.label", "Medication"],
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["name"], meta["version"]) == ("tiny", "0.0.2")
    assert meta["performance"]["reaction_r"] == 0.25
    assert "test" in meta["performance"]["evaluation"]
    import spacy

    nlp = spacy.load(out)  # the override reached the saved pipeline
    assert nlp.get_pipe("drug_ner").label == "Medication"
    assert "meta performance" in result.output


@pytest.mark.parametrize(
    "option,missing,message",
    [("--metrics", "none.json", "none.json: no such metrics file"),
     ("--score-on", "none.spacy", "none.spacy: no such gold file")],
)  # fmt: skip
def test_package_missing_input_is_an_error(tmp_path, option, missing, message):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(CONFIG)
    result = CliRunner().invoke(app, ["package", str(cfg), str(tmp_path / "out"), option, str(tmp_path / missing)])
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_package_scores_the_assembled_pipeline(tmp_path):
    """--score-on runs the saved pipeline over a gold split: its own scores
    lead meta.json (over a --metrics file's) and go to --score-output."""
    from spacy.tokens import DocBin

    from spacy_clinie.extensions import register_extensions
    from spacy_clinie.tokenizer import make_blank

    register_extensions()
    blank = make_blank()
    doc = blank("Patients on aspirin and warfarin had bleeding. Metformin caused nausea.")
    doc._.doc_id = "d1"
    # gold: two of the three drugs the dictionary finds, and one reaction
    doc.spans["mentions"] = [doc.char_span(12, 19, "Drug"), doc.char_span(24, 32, "Drug"), doc.char_span(37, 45, "AdverseReaction")]
    gold = tmp_path / "gold.spacy"
    DocBin(docs=[doc], store_user_data=True).to_disk(gold)
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(CONFIG)
    tagger_only = tmp_path / "tagger_test.json"
    tagger_only.write_text(json.dumps({"mention_strict": {"micro": {"p": 0.1, "r": 0.1, "f": 0.1, "n_pred": 9}}}))
    out, scores = tmp_path / "pipeline", tmp_path / "metrics" / "pipeline_test.json"
    args = ["package", str(cfg), str(out), "--metrics", str(tagger_only), "--score-on", str(gold), "--labels", "Drug", "--score-output", str(scores)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    perf = json.loads((out / "meta.json").read_text())["performance"]
    assert (round(perf["mention_strict_p"], 4), perf["mention_strict_r"]) == (0.6667, 1.0)
    assert set(perf["evaluation"]) == {"tagger_test", "pipeline_test"}
    written = json.loads(scores.read_text())
    assert written["mention_strict"]["micro"]["f"] == perf["mention_strict_f"]
    assert written["system"]["labels"] == ["Drug"]

