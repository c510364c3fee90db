"""The review web app (Flask), served by waitress on 127.0.0.1 by default.

Pages are server-rendered with Jinja (autoescaped) and the plots drawn by
Plotly from JSON data blocks; the only scripts are Plotly and ``review.js``,
both served from this package (the app works offline) and enforced by a
Content-Security-Policy. POSTs carry a per-process token, so another web page
open in the reviewer's browser cannot submit decisions to the local server.
"""
import io
import json
import secrets
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Sequence, Set

import plotly.io as pio
from flask import Flask, Response, abort, jsonify, redirect, render_template, request, send_file, url_for

from .export import export_feedback
from .plots import alignment_figure, attention_figures
from .session import ReviewSession

HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
MAX_UPLOAD = 2 * 1024 * 1024


def plotly_js_path() -> Path:
    """plotly.min.js as shipped in the plotly Python package."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def parse_labels_json(data: bytes, words: Optional[Sequence[str]] = None) -> list:
    """Uploaded labels: a list of tag names, ``{"labels": [...]}``, or a list
    of ``{"token": ..., "label": ...}`` (seed 000's per-token JSON). Given the
    sentence's ``words``, the tokens of the last form must be those words, so
    labels written for another sentence of the same length are refused."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"not a JSON file ({err})")
    if isinstance(value, dict):
        value = value.get("labels")
    if not isinstance(value, list):
        raise ValueError('expected a list of labels, {"labels": [...]} or [{"token": ..., "label": ...}, ...]')
    if value and all(isinstance(v, dict) for v in value):
        if words is not None:
            check_tokens([v.get("token") for v in value], words)
        value = [v.get("label") for v in value]
    return value


def check_tokens(tokens: Sequence[Any], words: Sequence[str]) -> None:
    """ValueError at the first given token that is not the word at its
    position (a missing ``token`` field is not checked)."""
    if len(tokens) != len(words):
        raise ValueError(f"{len(tokens)} tokens for a sentence of {len(words)}")
    for i, (tok, word) in enumerate(zip(tokens, words)):
        if tok is not None and tok != word:
            raise ValueError(
                f"token {i} is {tok!r} in the file but {word!r} in the sentence: "
                "are these labels for another sentence?"
            )


def local_hosts(port: int) -> Set[str]:
    """Host headers a browser sends to a server bound to localhost."""
    return {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}


def create_app(session: ReviewSession, allowed_hosts: Optional[Iterable[str]] = None) -> Flask:
    """The app over ``session``. ``allowed_hosts``: accepted ``Host`` headers
    (``serve`` passes the local ones when bound to localhost, so a web page
    cannot reach the app through DNS rebinding); None accepts any."""
    app = Flask(__name__, template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"))
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD
    app.config["CSRF_TOKEN"] = secrets.token_urlsafe(32)
    app.extensions["clinie_review"] = session
    hosts = set(allowed_hosts) if allowed_hosts is not None else None

    @app.before_request
    def _host() -> None:
        if hosts is not None and request.host not in hosts:
            abort(400, "unexpected Host header")

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.before_request
    def _csrf() -> None:
        if request.method == "POST" and not secrets.compare_digest(
            request.form.get("csrf", ""), app.config["CSRF_TOKEN"]
        ):
            abort(403, "missing or wrong form token: reload the page")

    @app.get("/plotly.min.js")
    def plotly_js() -> Response:
        return send_file(plotly_js_path(), mimetype="application/javascript", max_age=86400)

    @app.get("/")
    def index() -> Response:
        pos = session.first_unreviewed()
        return redirect(url_for("item", pos=pos) if pos is not None else url_for("done"))

    @app.get("/done")
    def done() -> str:
        return render_template("done.html", progress=session.progress(), s=session)

    @app.get("/api/progress")
    def progress() -> Response:
        return jsonify(session.progress())

    def render_item(pos: int, error: Optional[str] = None, status: int = 200):
        try:
            index, task = session.item(pos)
        except IndexError:
            abort(404, f"no item {pos}: there are {len(session)}")
        inst = session.instances[index]
        pred, gold = session.analyse(index)
        focus = request.args.get("focus", type=int)
        figures: Dict[str, Any] = {
            "alignment": alignment_figure(inst.words, gold[task], pred.tags[task], pred.probs[task], title=f"{task}: predicted vs gold")
        }
        notes = []
        try:
            view = session.attention(index, task)
            figures.update(attention_figures(view, focus, pred.tags[task]))
            notes = view.notes
        except ValueError as err:
            notes = [str(err)]
        latest = session.store.latest(inst.key, task)
        html = render_template(
            "item.html",
            s=session,
            pos=pos,
            index=index,
            task=task,
            inst=inst,
            words=inst.words,
            pred=pred.tags[task],
            probs=pred.probs[task],
            gold=gold[task],
            tags=session.tag_names[task],
            latest=latest,
            progress=session.progress(),
            figures={k: json.loads(pio.to_json(f, validate=False)) for k, f in figures.items()},
            notes=notes,
            focus=focus,
            error=error,
            csrf=app.config["CSRF_TOKEN"],
            n_items=len(session),
        )
        return html, status

    @app.get("/item/<int:pos>")
    def item(pos: int):
        return render_item(pos)

    def after_decision(pos: int) -> Response:
        nxt = pos + 1 if pos + 1 < len(session) else None
        return redirect(url_for("item", pos=nxt) if nxt is not None else url_for("index"), code=303)

    @app.post("/item/<int:pos>/decide")
    def decide(pos: int):
        try:
            index, task = session.item(pos)
        except IndexError:
            abort(404)
        action = request.form.get("action", "")
        labels = None
        if action == "expert":
            n = len(session.instances[index].words)
            labels = [request.form.get(f"label-{i}") for i in range(n)]
        try:
            session.decide(index, task, action, labels)
        except ValueError as err:
            return render_item(pos, error=str(err), status=400)
        return after_decision(pos)

    @app.post("/item/<int:pos>/upload")
    def upload(pos: int):
        try:
            index, task = session.item(pos)
        except IndexError:
            abort(404)
        file = request.files.get("labels_file")
        if file is None or not file.filename:
            return render_item(pos, error="choose a JSON file of labels first", status=400)
        try:
            labels = parse_labels_json(file.read(), words=session.instances[index].words)
            session.decide(index, task, "upload", labels)
        except ValueError as err:
            return render_item(pos, error=f"{file.filename}: {err}", status=400)
        return after_decision(pos)

    @app.get("/export/feedback.json")
    def export_json() -> Response:
        from .export import feedback_json

        data = json.dumps(feedback_json(session.store), indent=1).encode("utf-8")
        return send_file(io.BytesIO(data), mimetype="application/json", as_attachment=True, download_name="feedback.json")

    @app.get("/export/feedback.spacy")
    def export_spacy() -> Response:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "feedback.spacy"
            export_feedback(session.store, out)
            data = out.read_bytes()
        return send_file(io.BytesIO(data), mimetype="application/octet-stream", as_attachment=True, download_name="feedback.spacy")

    return app


def serve(session: ReviewSession, host: str = "127.0.0.1", port: int = 8000, threads: int = 4) -> None:
    """Serve the app with waitress (a production WSGI server, pure Python)."""
    from waitress import serve as waitress_serve

    local = host in ("127.0.0.1", "localhost", "::1")
    app = create_app(session, allowed_hosts=local_hosts(port) if local else None)
    waitress_serve(app, host=host, port=port, threads=threads, ident="clinie-review")
