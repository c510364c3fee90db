"""A tiny real tagger (MiniLM encoder, a few updates) and review data, shared
by the review tests; plus a helper that runs ``clinie review`` in a
subprocess on a free local port."""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from spacy.util import registry

from spacy_clinie.extensions import register_extensions
from spacy_clinie.tokenizer import make_blank

ROOT = Path(__file__).resolve().parents[2]
TRAIN_ITERS = 12  # enough for a tagger that is mostly right and sometimes wrong

TRAIN = [
    ("Patients reported nausea and severe headache after the first dose.", [("nausea", "human"), ("headache", "human")]),
    ("Hepatotoxicity was seen in rats at high doses.", [("Hepatotoxicity", "animal")]),
    ("The most common adverse reactions were rash, fatigue and diarrhea.", [("rash", "human"), ("fatigue", "human"), ("diarrhea", "human")]),
    ("No dose adjustment is needed in elderly patients.", []),
    ("Anaphylaxis and angioedema have been reported with this drug class.", [("Anaphylaxis", "drug_class"), ("angioedema", "drug_class")]),
]

UNSEEN = ("Dizziness, insomnia and dry mouth occurred in some patients taking the tablets.", [("Dizziness", "human"), ("insomnia", "human"), ("dry mouth", "human")])

# A word carrying markup: the app must show it as text, never as HTML.
XSS_WORD = "<img src=x onerror=window.__xss=1><b>bold</b>"


def gold_doc(nlp, text, mentions, doc_id):
    register_extensions()
    doc = nlp.make_doc(text)
    spans = []
    for i, (surface, _) in enumerate(mentions):
        start = text.index(surface)
        spans.append(doc.char_span(start, start + len(surface), label="AdverseReaction", span_id=f"M{i + 1}"))
    doc.spans["mentions"] = spans
    for span, (_, kind) in zip(spans, mentions):
        span._.kind = kind
    doc._.doc_id = doc_id
    return doc


def xss_doc(nlp):
    words = ["Rash", "and", XSS_WORD, "were", "reported", "."]
    doc = Doc(nlp.vocab, words=words, spaces=[True, True, True, True, False, False])
    doc.spans["mentions"] = [Span(doc, 0, 1, label="AdverseReaction", span_id="M1")]
    doc.spans["mentions"][0]._.kind = "human"
    doc._.doc_id = "XSS/S1"
    return doc


def review_docs(nlp):
    """Two sentences in one doc (two instances), the markup doc, and a
    sentence the tagger never saw (where it is likelier to err)."""
    first = gold_doc(nlp, TRAIN[0][0] + " " + TRAIN[1][0], TRAIN[0][1] + TRAIN[1][1], "DRUG/S1")
    unseen = gold_doc(nlp, UNSEEN[0], UNSEEN[1], "DRUG/S3")
    return [first, xss_doc(nlp), gold_doc(nlp, TRAIN[2][0], TRAIN[2][1], "DRUG/S2"), unseen]


@pytest.fixture(scope="session")
def review_env(tmp_path_factory):
    """Paths of a trained tiny pipeline, review DATA and a dev split."""
    base = tmp_path_factory.mktemp("review")
    nlp = make_blank()
    nlp.add_pipe("clinie_soft_prompt_tagger", name="ade")
    torch.manual_seed(0)
    egs = [Example(nlp.make_doc(t), gold_doc(nlp, t, m, f"T{i}")) for i, (t, m) in enumerate(TRAIN)]
    nlp.initialize(lambda: egs)
    opt = registry.optimizers.get("clinie.Adamax.v1")(1e-3, L2=0.0)
    for _ in range(TRAIN_ITERS):
        nlp.update(egs, sgd=opt)
    nlp.to_disk(base / "model")
    DocBin(docs=review_docs(nlp), store_user_data=True).to_disk(base / "data.spacy")
    DocBin(docs=[eg.reference for eg in egs], store_user_data=True).to_disk(base / "dev.spacy")
    return {"model": base / "model", "data": base / "data.spacy", "dev": base / "dev.spacy", "base": base}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``clinie review`` in a subprocess, on 127.0.0.1 and a free port."""

    def __init__(self, env, store: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "ab")
        cmd = [sys.executable, "-m", "spacy_clinie", "review", str(env["model"]), str(env["data"]),
               "--store", str(store), "--port", str(self.port), "--reviewer", "tester", "--threads", "2"]
        child_env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT, env=child_env)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"clinie review exited with {self.proc.returncode}: {Path(log).read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/api/progress", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("clinie review did not come up in 120 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
