"""``clinie review``, ``clinie review-export`` and ``clinie refine``: thin
wrappers over :mod:`spacy_clinie.review`."""
from pathlib import Path
from typing import Optional

import typer

from ..errors import FormatError
from ._util import Arg, Opt, app

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@app.command("review")
def review_cli(
    model: str = Arg(..., help="Trained pipeline (folder or package) with a clinie_soft_prompt_tagger."),
    data: Path = Arg(..., help="Gold .spacy file to review instance by instance.", exists=True, dir_okay=False),
    store: Path = Opt(Path("feedback.sqlite"), "--store", "-s", help="SQLite feedback store (created if missing; reopening it resumes)."),
    host: str = Opt("127.0.0.1", "--host", help="Interface to bind. Anything but localhost needs --allow-remote."),
    port: int = Opt(8000, "--port", "-p", help="Port to serve on."),
    allow_remote: bool = Opt(False, "--allow-remote", help="Permit binding a non-local interface (the app has no login)."),
    max_tokens: int = Opt(64, "--max-tokens", help="Longest instance: sentences longer than this are cut into windows."),
    tagger: Optional[str] = Opt(None, "--tagger", help="Name of the tagger pipe, when the pipeline has several."),
    reviewer: Optional[str] = Opt(None, "--reviewer", help="Name stored with every decision."),
    threads: int = Opt(4, "--threads", help="Server worker threads."),
    order: str = Opt("document", "--order", help="document (corpus order) or confidence (least confident instance first: the model runs over DATA once at start; calibrated when the pipeline has a clinie_confidence_calibrator)."),
) -> None:
    """Serve the human-in-the-loop review app (seed 000).

    Per instance (a sentence or window of DATA) and task (concepts, aux): the
    alignment of predicted and gold tags and the encoder's attention
    (saliency, flow, bar and area plots). Accept the prediction (OK), take
    the gold, annotate tokens or upload labels as JSON. Each decision is
    committed to --store at once; a restart resumes at the first unreviewed
    item. Open http://HOST:PORT/ in a browser.
    """
    if host not in LOCAL_HOSTS and not allow_remote:
        typer.secho(f"error: refusing to bind {host}: the review app has no login; pass --allow-remote to do it anyway", fg="red", err=True)
        raise typer.Exit(2)
    from ..review.app import serve
    from ..review.session import open_session

    try:
        session = open_session(model, data, store, max_tokens=max_tokens, tagger=tagger, reviewer=reviewer, order=order)
    except (FormatError, ValueError, OSError) as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(1)
    p = session.progress()
    start = session.first_unreviewed()
    typer.echo(
        f"{len(session.instances)} instances x {len(session.tasks)} tasks ({', '.join(session.tasks)}); "
        f"{p['reviewed']} of {p['total']} reviewed; store {store}"
    )
    typer.echo(f"resuming at item {start + 1}" if start is not None else "all items reviewed")
    typer.echo(f"serving on http://{host}:{port}/ (Ctrl+C to stop; every decision is already saved)", err=False)
    serve(session, host=host, port=port, threads=threads)


@app.command("review-export")
def review_export_cli(
    store: Path = Arg(..., help="SQLite feedback store from clinie review.", exists=True, dir_okay=False),
    output: Path = Arg(..., help="Output file: .spacy (training docs) or .json (all decisions and history)."),
) -> None:
    """Export review feedback as .spacy training docs or JSON."""
    from ..review.export import export_feedback
    from ..review.store import FeedbackStore

    try:
        info = export_feedback(FeedbackStore(store), output)
    except ValueError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(", ".join(f"{k} {v}" for k, v in info.items()))


@app.command("refine")
def refine_cli(
    model: str = Arg(..., help="Pipeline (folder or package) whose tagger was reviewed."),
    store: Path = Arg(..., help="SQLite feedback store from clinie review.", exists=True, dir_okay=False),
    output_dir: Path = Arg(..., help="Gets checkpoints/epoch-N, model-best and refine_report.json."),
    dev: Optional[Path] = Opt(None, "--dev", help="Gold .spacy dev split for the forgetting guard (default: hold out --dev-fraction of the feedback).", exists=True, dir_okay=False),
    dev_fraction: float = Opt(0.2, "--dev-fraction", help="Share of feedback instances held out when --dev is not given."),
    epochs: int = Opt(2, "--epochs", "-n", help="Epochs over the feedback (seed 000: 2)."),
    learning_rate: float = Opt(5e-5, "--learning-rate", "--lr", help="Constant learning rate, with the optimiser of the pipeline's training config."),
    batch_size: int = Opt(8, "--batch-size", help="Instances per update."),
    seed: int = Opt(0, "--seed", help="Shuffling and dev hold-out seed."),
    metric: str = Opt("mention_strict", "--metric", help="Evaluation level whose micro F1 the guard watches."),
    tagger: Optional[str] = Opt(None, "--tagger", help="Name of the tagger pipe, when the pipeline has several."),
) -> None:
    """Retrain the tagger on review feedback with a forgetting guard.

    Checkpoints every epoch and scores it on the dev split; when dev F1 falls
    below the best so far (the starting model is epoch 0), the best
    checkpoint is restored. Prints what it kept and why.
    """
    from ..review.refine import refine

    try:
        refine(
            model, store, output_dir, dev=dev, dev_fraction=dev_fraction, epochs=epochs,
            learning_rate=learning_rate, batch_size=batch_size, seed=seed, metric=metric,
            tagger=tagger, log=typer.echo,
        )
    except (FormatError, ValueError, OSError) as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(1)
