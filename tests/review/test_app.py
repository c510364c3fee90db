"""Instances, the feedback store, export and the Flask app in-process (the
real tiny tagger; Flask's test client instead of a browser)."""
import json
import re

import pytest
import spacy
from spacy.tokens import Doc, Span

from spacy_clinie.readers import load_docs
from spacy_clinie.cli import app as cli_app
from spacy_clinie.review.app import create_app, local_hosts, parse_labels_json
from spacy_clinie.review.export import export_feedback, feedback_doc, feedback_docs
from spacy_clinie.review.instances import cut_points, make_instances
from spacy_clinie.review.session import ReviewSession
from spacy_clinie.review.store import FeedbackStore
from spacy_clinie.tokenizer import make_blank

from .conftest import XSS_WORD


@pytest.fixture(scope="module")
def session(review_env, tmp_path_factory):
    nlp = spacy.load(review_env["model"])
    docs = load_docs(review_env["data"], nlp)
    store = FeedbackStore(tmp_path_factory.mktemp("app") / "feedback.sqlite")
    return ReviewSession(nlp, docs, store, data_path=review_env["data"], model_name="tiny", reviewer="unit")


def csrf_of(html: bytes) -> str:
    return re.search(rb'name="csrf" value="([^"]+)"', html).group(1).decode()


def test_cuts_never_split_a_mention():
    nlp = make_blank()
    words = ["w"] * 10 + ["severe", "skin", "rash"] + ["w"] * 5
    doc = Doc(nlp.vocab, words=words)
    doc.spans["mentions"] = [Span(doc, 10, 13, label="AdverseReaction", span_id="M1")]
    bounds = cut_points(doc, max_tokens=6)
    assert bounds[0] == 0 and bounds[-1] == len(doc)
    assert all(b - a <= 6 for a, b in zip(bounds, bounds[1:]))
    assert not any(10 < b < 13 for b in bounds)
    inst = make_instances([doc], max_tokens=6)
    kept = [(i.key, [s.text for s in i.doc.spans["mentions"]]) for i in inst]
    assert sum(len(m) for _, m in kept) == 1
    assert ["severe skin rash"] in [m for _, m in kept]


def test_instances_are_sentences_with_their_gold(review_env):
    docs = load_docs(review_env["data"])
    inst = make_instances(docs, max_tokens=64)
    assert [i.key for i in inst][:2] == ["0/DRUG/S1#0-11", "0/DRUG/S1#11-20"]
    second = inst[1].doc
    assert [(s.text, s._.kind) for s in second.spans["mentions"]] == [("Hepatotoxicity", "animal")]


def test_store_keeps_history_and_refuses_other_data(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite")
    store.bind({"fingerprint": "a", "tag_names": {"concepts": ["O"]}})
    common = dict(instance="i1", position=0, task="concepts", predicted=["O"], gold=["O"], words=["x"], spaces=[False])
    store.record(action="ok", labels=["O"], **common)
    store.record(action="expert", labels=["O"], **common)
    assert [r["action"] for r in store.feedback()] == ["expert"]
    assert [r["action"] for r in store.history()] == ["ok", "expert"]
    with pytest.raises(ValueError, match="labels: 2 values for 1 tokens"):
        store.record(action="expert", labels=["O", "O"], **common)
    with pytest.raises(ValueError, match="different fingerprint"):
        FeedbackStore(tmp_path / "f.sqlite").bind({"fingerprint": "b"})


def test_labels_json_forms():
    assert parse_labels_json(b'["O", "B-X"]') == ["O", "B-X"]
    assert parse_labels_json(b'{"labels": ["O"]}') == ["O"]
    assert parse_labels_json(b'[{"token": "rash", "label": "B-X"}]') == ["B-X"]
    with pytest.raises(ValueError, match="not a JSON file"):
        parse_labels_json(b"\xff\xfe")
    with pytest.raises(ValueError, match="expected a list"):
        parse_labels_json(b'{"x": 1}')


def test_app_records_decisions_and_escapes(session, tmp_path):
    client = create_app(session).test_client()
    first = client.get("/")
    assert first.status_code == 302 and first.headers["Location"].endswith("/item/0")
    page = client.get("/item/0")
    assert page.status_code == 200 and f"0 of {len(session)} reviewed".encode() in page.data
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    token = csrf_of(page.data)
    # no token, no decision
    assert client.post("/item/0/decide", data={"action": "ok"}).status_code == 403
    resp = client.post("/item/0/decide", data={"action": "ok", "csrf": token})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/item/1")
    pred, gold = session.analyse(0)
    row = session.store.latest(session.instances[0].key, "concepts")
    assert row["action"] == "ok" and row["labels"] == pred.tags["concepts"] and row["reviewer"] == "unit"

    # the markup word is shown as text everywhere
    pos = session.position(2, "concepts")
    html = client.get(f"/item/{pos}").data.decode()
    assert XSS_WORD not in html
    assert "&lt;img src=x onerror=window.__xss=1&gt;&lt;b&gt;bold&lt;/b&gt;" in html
    # an uploaded label with markup is refused and echoed as text
    bad = json.dumps(["<img src=x onerror=alert(1)>"] * len(session.instances[2].words)).encode()
    import io

    resp = client.post(f"/item/{pos}/upload", data={"csrf": token, "labels_file": (io.BytesIO(bad), "labels.json")},
                       content_type="multipart/form-data")
    assert resp.status_code == 400
    body = resp.data.decode()
    assert "<img src=x onerror=alert(1)>" not in body and "unknown concepts labels: &lt;img src=x onerror=alert(1)&gt;" in body
    assert session.store.latest(session.instances[2].key, "concepts") is None

    # gold for everything else, then export
    for p in range(len(session)):
        i, task = session.item(p)
        if session.store.latest(session.instances[i].key, task) is None:
            assert client.post(f"/item/{p}/decide", data={"action": "gold", "csrf": token}).status_code == 303
    assert client.get("/").headers["Location"].endswith("/done")
    assert f"All {len(session)} items reviewed" in client.get("/done").data.decode()
    assert json.loads(client.get("/api/progress").data)["reviewed"] == len(session)
    data = json.loads(client.get("/export/feedback.json").data)
    assert len(data["instances"]) == len(session.instances) and len(data["history"]) == len(session)
    info = export_feedback(session.store, tmp_path / "fb.spacy")
    assert info["docs"] == len(session.instances)
    docs = load_docs(tmp_path / "fb.spacy")
    second = docs[1]
    assert [(s.text, s._.kind) for s in second.spans["mentions"]] == [("Hepatotoxicity", "animal")]
    assert second._.source["review"]["concepts"]["action"] == "gold"
    assert client.get("/export/feedback.spacy").status_code == 200
    assert feedback_docs(session.store)[1] == 0


def test_local_only_by_default(session):
    from typer.testing import CliRunner

    res = CliRunner().invoke(cli_app, ["review", "m", __file__, "--host", "0.0.0.0"])
    assert res.exit_code == 2 and "refusing to bind 0.0.0.0" in res.output
    client = create_app(session, allowed_hosts=local_hosts(8000)).test_client()
    assert client.get("/api/progress", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    assert client.get("/api/progress", headers={"Host": "evil.example:8000"}).status_code == 400


def test_relations_feedback_marks_related_mentions():
    vocab = make_blank().vocab
    row = dict(instance="0/D#0-4", position=0, words=["rash", "with", "drug", "X"], spaces=[True, True, True, False],
               reviewer=None, created=0.0, action="expert")
    rows = {
        "concepts": dict(row, labels=["B-ADR", "O", "B-Drug", "I-Drug"]),
        "aux": dict(row, labels=["B-ADR_rel", "O", "B-Drug_no_rel", "I-Drug_no_rel"]),
    }
    doc = feedback_doc(vocab, rows, "relations")
    assert [(s.text, s.label_) for s in doc.spans["mentions"]] == [("rash", "ADR"), ("drug X", "Drug")]
    assert doc._.relations == [{"id": "R1", "label": "reviewed_rel", "head": "M1", "tail": "M1"}]
    kinds = feedback_doc(vocab, {"concepts": rows["concepts"], "aux": dict(row, labels=["B-human", "O", "O", "O"])}, "kind")
    assert [s._.kind for s in kinds.spans["mentions"]] == ["human", None]


def test_attention_views_are_distributions(session):
    import numpy

    view = session.attention(0, "concepts")
    words = session.instances[0].words
    assert [u for u, k in zip(view.units, view.kinds) if k == "word"] == words
    assert view.kinds[0] == "cls" and view.kinds[-1] == "sep" and "prompt" in view.kinds
    assert numpy.allclose(view.layers.sum(axis=2), 1.0, atol=1e-4)
    assert numpy.allclose(view.rollout.sum(axis=1), 1.0, atol=1e-4)
    assert numpy.allclose(view.saliency.sum(axis=1), 1.0)
    for focus in (None, 2):
        imp = view.importance(focus)
        assert abs(imp.sum() - 100.0) < 1e-6 and imp[0] == imp[-1] == 0.0
    assert not numpy.allclose(view.importance(None), view.importance(2))
    html = create_app(session).test_client().get("/item/0?focus=2").data.decode()
    assert "Importance from token 2" in html and '<option value="2" selected>' in html


def test_upload_checks_the_tokens_it_is_given(session):
    """Issue 24, item 10: ``[{"token", "label"}]`` labels written for another
    sentence of the same length were accepted; the tokens are now compared
    with the sentence's words (files of bare labels cannot be checked)."""
    import io

    client = create_app(session).test_client()
    pos = session.position(0, "concepts")
    token = csrf_of(client.get(f"/item/{pos}").data)
    words = session.instances[0].words
    fake_words = [f"x{i}" for i in range(len(words))]  # same length, other tokens
    labels = ["O"] * len(words)
    before = session.store.latest(session.instances[0].key, "concepts")

    def upload(rows):
        data = json.dumps(rows).encode()
        return client.post(f"/item/{pos}/upload", data={"csrf": token, "labels_file": (io.BytesIO(data), "labels.json")},
                           content_type="multipart/form-data")

    resp = upload([{"token": w, "label": lab} for w, lab in zip(fake_words, labels)])
    assert resp.status_code == 400, resp.status_code
    body = resp.data.decode()
    assert "labels.json" in body and "token 0" in body and "x0" in body
    assert session.store.latest(session.instances[0].key, "concepts") == before
    resp = upload([{"token": w, "label": lab} for w, lab in zip(words, labels)])
    assert resp.status_code == 303
    assert session.store.latest(session.instances[0].key, "concepts")["labels"] == labels
    with pytest.raises(ValueError, match=r"token 1 is 'b' in the file but 'y' in the sentence"):
        parse_labels_json(b'[{"token": "x", "label": "O"}, {"token": "b", "label": "O"}]', words=["x", "y"])
    assert parse_labels_json(b'[{"token": "x", "label": "O"}]', words=["x"]) == ["O"]


def test_confidence_order_puts_the_least_confident_instance_first(review_env, tmp_path):
    """--order confidence: instances sorted by the model's confidence, lowest
    first (the store remembers the order: reopening it with the document
    order is refused, since positions would point at other instances)."""
    nlp = spacy.load(review_env["model"])
    docs = load_docs(review_env["data"], nlp)
    by_doc = ReviewSession(nlp, docs, FeedbackStore(tmp_path / "a.sqlite"), data_path=review_env["data"])
    store = FeedbackStore(tmp_path / "b.sqlite")
    ranked = ReviewSession(nlp, docs, store, data_path=review_env["data"], order="confidence")
    assert sorted(i.key for i in ranked.instances) == sorted(i.key for i in by_doc.instances)
    confs = [i.confidence for i in ranked.instances]
    assert all(c is not None and 0.0 <= c <= 1.0 for c in confs)
    assert confs == sorted(confs)
    expected = ranked.instance_confidence([ranked._blank(i) for i in by_doc.instances])
    assert ranked.instances[0].key == by_doc.instances[expected.index(min(expected))].key
    assert len(set(confs)) > 1  # the tiny tagger is surer of its training sentences than of the rest
    with pytest.raises(ValueError, match="different fingerprint"):
        ReviewSession(nlp, docs, store, data_path=review_env["data"])
    with pytest.raises(ValueError, match="unknown review order"):
        ReviewSession(nlp, docs, store, data_path=review_env["data"], order="random")
