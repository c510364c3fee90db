"""clinie_confidence_calibrator: isotonic maps fitted on held-out predictions,
applied to mention and reaction confidences, saved with the pipeline."""
import json
import subprocess
import sys

import numpy
import pytest
import srsly
from spacy.tokens import Doc, DocBin
from typer.testing import CliRunner

from spacy_clinie.cli import app
from spacy_clinie.extensions import register_extensions
from spacy_clinie.pipeline.calibrator import IsotonicMap, fit_calibration
from spacy_clinie.scoring.calibration import expected_calibration_error, mention_outcomes, reaction_outcomes, reliability_bins
from spacy_clinie.tokenizer import make_blank

TEXT = "Nausea and rash occurred. Fever was seen with nausea. Headache and cough were rare."
# (start, end) of each word above
WORDS = {"nausea": (0, 6), "rash": (11, 15), "fever": (26, 31), "nausea2": (46, 52), "headache": (54, 62), "cough": (67, 72)}


def make_pair(nlp, doc_id, gold_words, pred_words):
    """A gold doc and a prediction doc of TEXT: pred_words maps a word key
    to the raw confidence the 'tagger' gave it."""
    register_extensions()
    gold = nlp.make_doc(TEXT)
    gold._.doc_id = doc_id
    gold.spans["mentions"] = [gold.char_span(*WORDS[w], "AdverseReaction", span_id=f"G{i}") for i, w in enumerate(gold_words)]
    pred = nlp.make_doc(TEXT)
    pred._.doc_id = doc_id
    spans = []
    for i, (w, conf) in enumerate(pred_words.items()):
        span = pred.char_span(*WORDS[w], "AdverseReaction", span_id=f"M{i + 1}")
        spans.append(span)
    pred.spans["mentions"] = spans
    for span, conf in zip(spans, pred_words.values()):
        span._.attributes = {"confidence": conf}
    return gold, pred


@pytest.fixture
def overconfident(nlp):
    """Every prediction claims 0.95; half of the 0.95 ones are wrong, and
    the 0.6 ones are always wrong."""
    golds, preds = [], []
    for k in range(20):
        gold, pred = make_pair(
            nlp, f"D{k}", ["nausea", "nausea2", "rash"], {"nausea": 0.95, "rash": 0.95, "fever": 0.95, "cough": 0.95, "headache": 0.6}
        )
        golds.append(gold)
        preds.append(pred)
    return golds, preds


def test_ece_and_bins_by_hand():
    probs = [0.9, 0.9, 0.9, 0.9, 0.1, 0.1]
    hits = [1, 1, 0, 0, 0, 0]
    bins = reliability_bins(probs, hits, n_bins=10)
    assert [b["n"] for b in bins] == [2, 4]
    assert bins[1]["frequency"] == pytest.approx(0.5)
    # 4/6 * |0.9 - 0.5| + 2/6 * |0.1 - 0|
    assert expected_calibration_error(probs, hits) == pytest.approx(4 / 6 * 0.4 + 2 / 6 * 0.1)
    with pytest.raises(ValueError):
        reliability_bins([0.5], [1, 0])


def test_outcomes_strict_and_reaction(overconfident):
    golds, preds = overconfident
    scores, hits = mention_outcomes(golds[:1], preds[:1])
    # nausea (first occurrence) and rash are exact; fever, cough, headache are not
    assert sorted(zip(scores.tolist(), hits.tolist())) == [(0.6, 0.0), (0.95, 0.0), (0.95, 0.0), (0.95, 1.0), (0.95, 1.0)]
    scores, hits = reaction_outcomes(golds[:1], preds[:1])
    assert len(scores) == 5 and hits.sum() == 2


def test_isotonic_map_is_monotone_and_round_trips():
    rng = numpy.random.default_rng(0)
    x = rng.random(500)
    y = (rng.random(500) < x ** 2).astype(float)
    fitted = IsotonicMap.fit(x, y)
    grid = numpy.linspace(0, 1, 50)
    out = fitted(grid)
    assert numpy.all(numpy.diff(out) >= -1e-12)
    assert 0.0 <= out.min() and out.max() <= 1.0
    again = IsotonicMap.from_dict(srsly.json_loads(srsly.json_dumps(fitted.to_dict())))
    assert numpy.allclose(again(grid), out)
    assert numpy.allclose(IsotonicMap()(grid), grid)  # unfitted: identity
    with pytest.raises(ValueError):
        IsotonicMap.fit([], [])


def test_calibrator_lowers_ece_and_is_idempotent(nlp, overconfident):
    golds, preds = overconfident
    calib = nlp.add_pipe("clinie_confidence_calibrator", name="calib_test")
    try:
        report = calib.fit(golds, preds)
        assert report["fit"]["mention"]["ece_after"] < report["fit"]["mention"]["ece_before"] - 0.2
        doc = calib(preds[0])
        confs = {s.text: s._.attributes["confidence"] for s in doc.spans["mentions"]}
        # 0.95 mentions are right 2 times in 4: calibrated to about one half
        assert confs["rash"] == pytest.approx(0.5, abs=0.01)
        assert confs["Headache"] == pytest.approx(0.0, abs=0.01)
        assert all(s._.attributes["confidence_raw"] in (0.95, 0.6) for s in doc.spans["mentions"])
        # reactions: nausea and rash are gold strings, the others are not
        reaction = {s.text.lower(): s._.attributes["reaction_confidence"] for s in doc.spans["mentions"]}
        assert reaction["rash"] == pytest.approx(0.5, abs=0.01)
        before = [dict(s._.attributes) for s in doc.spans["mentions"]]
        doc = calib(doc)
        assert [dict(s._.attributes) for s in doc.spans["mentions"]] == before
    finally:
        nlp.remove_pipe("calib_test")


def test_unfitted_calibrator_and_empty_docs_pass_through(nlp, overconfident):
    _, preds = overconfident
    from spacy_clinie.pipeline.calibrator import ConfidenceCalibrator

    calib = ConfidenceCalibrator(nlp.vocab)
    doc = calib(preds[1])
    assert {s._.attributes["confidence"] for s in doc.spans["mentions"]} == {0.95, 0.6}
    calib.set_calibration(fit_calibration(*overconfident))
    # a dev split with no predictions fits identity maps, with a warning
    with pytest.warns(UserWarning, match="stay raw"):
        none = fit_calibration(overconfident[0][:1], [nlp.make_doc(TEXT)])
    assert none["fit"]["mention"]["n"] == 0 and none["maps"]["mention"]["x"] == []
    empty = calib(nlp.make_doc(""))
    assert len(empty) == 0
    plain = calib(nlp.make_doc("No mentions here."))
    assert "mentions" not in plain.spans


def test_disk_round_trip_and_fresh_process(tmp_path, overconfident):
    golds, preds = overconfident
    nlp = make_blank()
    calib = nlp.add_pipe("clinie_confidence_calibrator")
    calib.fit(golds, preds)
    expected = [[dict(s._.attributes) for s in calib(p).spans["mentions"]] for p in preds[:3]]
    nlp.to_disk(tmp_path / "model")
    DocBin(docs=preds[:3], store_user_data=True).to_disk(tmp_path / "p.spacy")
    # a fresh process, without importing spacy_clinie: the entry point finds the factory
    code = (
        "import json, sys, spacy\n"
        "from spacy.tokens import DocBin\n"
        f"nlp = spacy.load({str(tmp_path / 'model')!r})\n"
        f"docs = list(DocBin().from_disk({str(tmp_path / 'p.spacy')!r}).get_docs(nlp.vocab))\n"
        "calib = nlp.get_pipe('clinie_confidence_calibrator')\n"
        "print(json.dumps([[s._.attributes for s in calib(d).spans['mentions']] for d in docs]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected  # stdlib json: srsly's ujson rounds 0.95 to 0.9500000000000001
    # and bytes
    nlp2 = make_blank()
    calib2 = nlp2.add_pipe("clinie_confidence_calibrator")
    calib2.from_bytes(calib.to_bytes())
    assert [[dict(s._.attributes) for s in calib2(p).spans["mentions"]] for p in preds[:3]] == expected


def test_calibrate_cli_from_saved_predictions(tmp_path, overconfident):
    golds, preds = overconfident
    base = make_blank()
    base.to_disk(tmp_path / "base")
    DocBin(docs=golds, store_user_data=True).to_disk(tmp_path / "dev.spacy")
    DocBin(docs=preds, store_user_data=True).to_disk(tmp_path / "pred.spacy")
    result = CliRunner().invoke(
        app,
        ["calibrate", str(tmp_path / "base"), str(tmp_path / "dev.spacy"), "--predictions", str(tmp_path / "pred.spacy"),
         "--output", str(tmp_path / "cal.json"), "--save", str(tmp_path / "calibrated")],
    )
    assert result.exit_code == 0, result.output
    assert "mention: n=100" in result.output
    data = srsly.read_json(tmp_path / "cal.json")
    assert set(data["maps"]) == {"mention", "reaction"}
    import spacy

    nlp = spacy.load(tmp_path / "calibrated")
    assert nlp.pipe_names[-1] == "confidence_calibrator"
    # the same maps load through initialize, as a packaged config does
    other = make_blank()
    other.add_pipe("clinie_confidence_calibrator").initialize(calibration=tmp_path / "cal.json")
    doc = Doc(other.vocab, words=["x"])
    assert other.get_pipe("clinie_confidence_calibrator").is_fitted and len(doc) == 1
    bad = CliRunner().invoke(app, ["calibrate", str(tmp_path / "base"), str(tmp_path / "dev.spacy")])
    assert bad.exit_code == 1 and "--output" in bad.output
