"""Prediction-time settings of the soft-prompt tagger (issue 22): int8 and
bf16 inference and length-bucketed windows, on a tiny overfit tagger with the
real MiniLM encoder. fp32 stays exactly as it was; the others stay within a
tolerance of it, never touch the saved weights, and reach ``clinie pipe``."""
import json

import numpy
import pytest
import spacy
import torch
from spacy.util import registry
from typer.testing import CliRunner

from spacy_clinie.batch.run import load_pipeline
from spacy_clinie.cli import app
from spacy_clinie.pipeline.soft_prompt_tagger import set_inference

from .test_soft_prompt_tagger import TRAIN, build, examples, found, train

# a long doc (several 256-subword windows) between short ones, so that a
# batch has windows of very different lengths
TEXTS = [t for t, _ in TRAIN[:3]] + [" ".join(TRAIN[2][0] for _ in range(40))] + [t for t, _ in TRAIN[3:]]
# largest tag-probability difference from fp32 allowed on the tiny case
TOLERANCE = {"int8": 0.02, "bf16": 0.005}


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    nlp = build()
    train(nlp)
    path = tmp_path_factory.mktemp("tagger") / "model"
    nlp.to_disk(path)
    return nlp, path


def probs(nlp, texts=TEXTS, batch_size=8):
    pipe = nlp.get_pipe("ade")
    out = []
    for i in range(0, len(texts), batch_size):
        out += pipe.predict([nlp.make_doc(t) for t in texts[i : i + batch_size]]).probs
    return [p["concepts"] for p in out]


def mentions(nlp, texts=TEXTS):
    return [[(s.start, s.end, s.label_, s._.attributes["confidence"]) for s in d.spans["mentions"]] for d in nlp.pipe(texts, batch_size=8)]


def assert_close(got, want, tol):
    """Same mentions; confidences within ``tol``."""
    assert [[m[:3] for m in d] for d in got] == [[m[:3] for m in d] for d in want]
    diffs = [abs(a[3] - b[3]) for da, db in zip(got, want) for a, b in zip(da, db)]
    assert max(diffs) <= tol


def test_fp32_is_the_default_and_exactly_unchanged_by_switching(tagged):
    nlp, _ = tagged
    pipe = nlp.get_pipe("ade")
    assert pipe.inference == "fp32" and not pipe.bucket_by_length
    before = probs(nlp)
    set_inference(nlp, "int8")
    probs(nlp)
    set_inference(nlp, "bf16")
    probs(nlp)
    set_inference(nlp, "fp32")
    after = probs(nlp)
    assert all(numpy.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("mode", ["int8", "bf16"])
def test_low_precision_stays_within_tolerance_of_fp32(tagged, mode):
    nlp, _ = tagged
    set_inference(nlp, "fp32")
    want_probs, want = probs(nlp), mentions(nlp)
    assert sum(len(d) for d in want) >= 40  # the long doc is tagged throughout
    set_inference(nlp, mode)
    try:
        got_probs, got = probs(nlp), mentions(nlp)
    finally:
        set_inference(nlp, "fp32")
    worst = max(float(numpy.abs(a - b).max()) for a, b in zip(got_probs, want_probs))
    assert 0.0 < worst <= TOLERANCE[mode]  # it did run differently, and close
    assert_close(got, want, TOLERANCE[mode])


def test_int8_pipeline_round_trips_through_disk_with_fp32_weights(tagged, tmp_path):
    nlp, path = tagged
    fp32_probs = probs(nlp)
    nlp_int8 = spacy.load(path, config={"components": {"ade": {"inference": "int8"}}})
    int8_probs = probs(nlp_int8)
    nlp_int8.to_disk(tmp_path / "int8")
    assert 'inference = "int8"' in (tmp_path / "int8" / "config.cfg").read_text()

    loaded = spacy.load(tmp_path / "int8")
    pipe = loaded.get_pipe("ade")
    assert pipe.inference == "int8" and pipe.model.attrs["inference"] == "int8"
    # the saved weights are the fp32 ones, not the quantised copy
    original = nlp.get_pipe("ade").model.shims[0]._model.state_dict()
    saved = pipe.model.shims[0]._model.state_dict()
    assert saved.keys() == original.keys()
    assert all(v.dtype == original[k].dtype and torch.equal(v, original[k]) for k, v in saved.items())
    assert all(numpy.array_equal(a, b) for a, b in zip(probs(loaded), int8_probs))
    # asked for fp32 at load, the same files give the fp32 predictions exactly
    back = spacy.load(tmp_path / "int8", config={"components": {"ade": {"inference": "fp32"}}})
    assert all(numpy.array_equal(a, b) for a, b in zip(probs(back), fp32_probs))


def test_bucket_by_length_keeps_predictions(tagged):
    nlp, _ = tagged
    set_inference(nlp, "fp32", bucket_by_length=False)
    want_probs, want = probs(nlp), mentions(nlp)
    set_inference(nlp, "fp32", bucket_by_length=True)
    try:
        got_probs, got = probs(nlp), mentions(nlp)
    finally:
        set_inference(nlp, "fp32", bucket_by_length=False)
    # only the padding differs: float noise, not other predictions
    assert max(float(numpy.abs(a - b).max()) for a, b in zip(got_probs, want_probs)) < 1e-4
    assert_close(got, want, 1e-4)


def test_training_stays_fp32_and_refreshes_the_int8_copy(tmp_path):
    nlp = build({"inference": "int8"})
    train(nlp, n_iter=2)
    pipe = nlp.get_pipe("ade")
    shim = pipe.model.shims[0]
    nlp(TRAIN[0][0])
    first = shim.int8_module()
    assert all(p.dtype == torch.float32 for p in shim._model.parameters())
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in first.modules())
    head = shim._model.heads["concepts"].weight.detach().clone()
    nlp.update(examples(nlp), sgd=registry.optimizers.get("clinie.Adamax.v1")(1e-3, L2=0.0))
    assert not torch.equal(head, shim._model.heads["concepts"].weight)  # fp32 weights trained
    nlp(TRAIN[0][0])
    assert shim.int8_module() is not first  # rebuilt from the new weights


def test_bad_settings_are_refused(tagged, tmp_path):
    nlp, _ = tagged
    with pytest.raises(ValueError, match="inference must be one of"):
        nlp.get_pipe("ade").inference = "fp16"
    with pytest.raises(ValueError, match="inference must be one of"):
        build({"inference": "int4"})
    blank = spacy.blank("en")
    blank.to_disk(tmp_path / "blank")
    with pytest.raises(ValueError, match="need a clinie_soft_prompt_tagger"):
        load_pipeline(tmp_path / "blank", inference="int8")


def _split_confidence(record, found_conf):
    """The record without its confidence values, which go to ``found_conf``."""
    if isinstance(record, dict):
        out = {}
        for key, value in record.items():
            if key == "confidence":
                found_conf.append(value)
            else:
                out[key] = _split_confidence(value, found_conf)
        return out
    if isinstance(record, list):
        return [_split_confidence(v, found_conf) for v in record]
    return record


def test_clinie_pipe_int8_writes_the_same_records(tagged, tmp_path):
    _, path = tagged
    src = tmp_path / "notes.jsonl"
    src.write_text("".join(json.dumps({"id": f"n{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    outputs = {}
    for name, extra in (("fp32", []), ("int8", ["--int8", "--bucket-by-length"])):
        out = tmp_path / f"{name}.jsonl"
        result = CliRunner().invoke(app, ["pipe", str(path), str(src), str(out), "--no-progress", "-b", "4", *extra])
        assert result.exit_code == 0, result.output
        assert f"read {len(TEXTS)} = written {len(TEXTS)} + quarantined 0" in result.output
        outputs[name] = [json.loads(line) for line in out.read_text().splitlines()]
    conf = {"fp32": [], "int8": []}
    stripped = {k: [_split_confidence(r, conf[k]) for r in v] for k, v in outputs.items()}
    assert stripped["int8"] == stripped["fp32"]
    assert len(conf["fp32"]) >= 40 and len(conf["int8"]) == len(conf["fp32"])
    assert max(abs(a - b) for a, b in zip(conf["int8"], conf["fp32"])) <= TOLERANCE["int8"]
    state = json.loads((tmp_path / "int8.jsonl.state.json").read_text())
    assert state["fingerprint"]["inference"] == "int8" and state["fingerprint"]["bucket_by_length"] is True
    assert "inference" not in json.loads((tmp_path / "fp32.jsonl.state.json").read_text())["fingerprint"]
