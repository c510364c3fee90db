"""``clinie package``: assembles a config into a folder with the metrics'
scores in meta.json, config overrides pass through as with spaCy's
commands, and a missing metrics file is a clear error."""
import json

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


def test_package_missing_metrics_is_an_error(tmp_path):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(CONFIG)
    result = CliRunner().invoke(app, ["package", str(cfg), str(tmp_path / "out"), "--metrics", str(tmp_path / "none.json")])
    assert result.exit_code == 1
    assert "none.json: no such metrics file" in result.output
    assert not (tmp_path / "out").exists()
