"""A pipeline of clinie components survives saving: reloaded from disk with
``spacy.load`` (also in a fresh process that never imports spacy_clinie,
so through the entry points alone), and rebuilt from its config then filled
from its bytes, it predicts exactly what it predicted before saving
(mentions, ids, confidences, kinds, MedDRA codes, drug mentions).

After a restructuring that moves modules, this is what tells that saved
pipelines still load: configs name registered functions, and the entry
points in setup.cfg must still find them."""
import json
import subprocess
import sys

import pytest
import spacy
import torch
from spacy.training import Example
from spacy.util import load_model_from_config, registry

from spacy_clinie.extensions import MENTIONS_KEY, get_mentions
from spacy_clinie.tokenizer import make_blank

TRAIN = [
    ("Patients reported nausea and severe headache after aspirin.", ["nausea", "headache"]),
    ("The most common adverse reactions were rash and fatigue.", ["rash", "fatigue"]),
    ("No dose adjustment is needed in elderly patients.", []),
]
TEXTS = [
    "Nausea, rash and headache were reported with ibuprofen.",
    "Severe fatigue occurred in two patients taking warfarin.",
    "",
]
CODES = {
    "nausea": ("Nausea", "10028813"),
    "headache": ("Headache", "10019211"),
    "rash": ("Rash", "10037844"),
    "fatigue": ("Fatigue", "10016256"),
}


def gold_doc(nlp, text, phrases):
    doc = nlp.make_doc(text)
    spans = []
    for i, phrase in enumerate(phrases):
        start = text.index(phrase)
        spans.append(doc.char_span(start, start + len(phrase), label="AdverseReaction", span_id=f"M{i + 1}"))
    doc.spans[MENTIONS_KEY] = spans
    for span, phrase in zip(spans, phrases):
        pt, pt_id = CODES[phrase]
        span._.meddra = [{"meddra_pt": pt, "meddra_pt_id": pt_id, "meddra_llt": pt, "meddra_llt_id": pt_id}]
        span._.kind = "human"
    return doc


def predictions(nlp, texts=TEXTS):
    out = []
    for doc in nlp.pipe(texts):
        out.append(
            [
                (s.start_char, s.end_char, s.label_, s.id_, round(float((s._.attributes or {}).get("confidence", -1)), 6), s._.kind,
                 [m.get("meddra_pt_id") for m in (s._.meddra or [])])
                for s in get_mentions(doc)
            ]
            + [(s.start_char, s.end_char, s.label_) for s in doc.spans.get("drugs", [])]
        )
    return out


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    nlp = make_blank()
    nlp.add_pipe("clinie_soft_prompt_tagger", name="ade", config={"aux_task": "kind"})
    nlp.add_pipe("clinie_meddra_linker", name="meddra_linker", config={"encoder": None})
    nlp.add_pipe("clinie_drug_ner", name="drug_ner", config={"spans_key": "drugs"})
    examples = [Example(nlp.make_doc(t), gold_doc(nlp, t, p)) for t, p in TRAIN]
    nlp.initialize(lambda: examples)
    opt = registry.optimizers.get("clinie.Adamax.v1")(1e-3, L2=0.0)
    for _ in range(30):
        nlp.update(examples, sgd=opt)
    path = tmp_path_factory.mktemp("serialize") / "pipeline"
    before = predictions(nlp)
    nlp.to_disk(path)
    return nlp, path, before


def test_predictions_are_not_trivial(saved):
    """The comparison below means something: the tiny pipeline finds
    mentions, codes some of them and finds the drugs."""
    _, _, before = saved
    assert any(before[:2])
    assert any(isinstance(item[-1], list) and item[-1] for doc in before for item in doc if len(item) == 7)
    assert any(len(item) == 3 and item[2] == "Drug" for doc in before for item in doc)


def test_reload_from_disk(saved):
    _, path, before = saved
    assert predictions(spacy.load(path)) == before


def test_reload_from_config_and_bytes(saved):
    nlp, _, before = saved
    fresh = load_model_from_config(nlp.config, auto_fill=True)
    fresh.from_bytes(nlp.to_bytes())
    assert predictions(fresh) == before


def test_reload_in_a_fresh_process_through_entry_points(saved):
    """No ``import spacy_clinie`` before ``spacy.load``: the factories,
    architectures, scorers and misc functions come from the entry points."""
    _, path, before = saved
    code = (
        "import json, sys, spacy\n"
        f"nlp = spacy.load({str(path)!r})\n"
        "assert 'spacy_clinie.pipeline.soft_prompt_tagger' in sys.modules  # loaded by the entry point\n"
        "from tests.test_serialize_pipeline import predictions\n"
        "print(json.dumps(predictions(nlp)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=str(_root()))
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == json.loads(json.dumps(before))


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]
