"""``clinie kfold ...``: seed 003's k-fold resampled ensembles."""
from pathlib import Path
from typing import List, Optional

import typer

from ._util import Arg, Opt, app

kfold_app = typer.Typer(
    name="kfold",
    help="k-fold resampled ensembles (seed 003): split train by drug label, train one member per fold, assemble a voting ensemble.",
    no_args_is_help=True,
)
app.add_typer(kfold_app, name="kfold")

VOTING_HELP = "hard (strict majority of members), soft (mean confidence >= --threshold) or weighted_soft (needs --weights-from)."


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg="red", err=True)
    raise typer.Exit(1)


@kfold_app.command("split")
def split_cli(
    train: Path = Arg(..., help="Training corpus (.spacy), e.g. corpus/train.spacy.", exists=True, dir_okay=False),
    out_dir: Path = Arg(..., help="Folder for fold{i}/train.spacy, fold{i}/heldout.spacy and folds.json."),
    k: int = Opt(5, "--k", "-k", help="Number of folds (= members)."),
    seed: int = Opt(0, "--seed", help="Seed of the label shuffle."),
    full_member: bool = Opt(False, "--full-member", help="Also a member trained on all of train (seed 003's +1 model)."),
) -> None:
    """Split train into k folds by drug label and write each member's corpora.

    Example: clinie kfold split corpus/train.spacy training/kfold -k 5
    """
    from ..kfold import write_folds

    try:
        summary = write_folds(train, out_dir, k=k, seed=seed, full_member=full_member)
    except (ValueError, OSError) as err:
        _fail(err)
    for m in summary["members"]:
        typer.echo(f"{m['name']}: train {m['train_docs']} docs, held out {m['heldout_docs']} docs / {m['heldout_words']} words ({len(m['heldout_labels'])} labels)")
    typer.echo(f"-> {out_dir / 'folds.json'}")


@kfold_app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train_cli(
    ctx: typer.Context,
    config: Path = Arg(..., help="Training config, e.g. configs/ade_cpu.cfg.", exists=True, dir_okay=False),
    out_dir: Path = Arg(..., help="The folder written by 'clinie kfold split'."),
    dev: Optional[Path] = Opt(None, "--dev", help="Dev corpus for model selection (default: each member's held-out fold).", exists=True, dir_okay=False),
    seed: int = Opt(0, "--seed", help="Member i trains with --system.seed SEED+i."),
    gpu_id: int = Opt(-1, "--gpu-id", help="GPU id, -1 for CPU."),
    only: Optional[List[str]] = Opt(None, "--only", help="Train only these members (fold0, fold1, ..., full); repeatable."),
    dry_run: bool = Opt(False, "--dry-run", help="Print the spacy train commands only."),
) -> None:
    """Train one member per fold with 'spacy train', one after the other.

    Extra arguments are passed on to spacy train as config overrides, e.g.
    --training.max_steps 500. Members with a model-best are skipped.

    Example: clinie kfold train configs/ade_cpu.cfg training/kfold --dev corpus/dev.spacy
    """
    from ..kfold import train_members

    try:
        best = train_members(config, out_dir, dev=dev, seed=seed, gpu_id=gpu_id, overrides=list(ctx.args), only=only, dry_run=dry_run, echo=typer.echo)
    except (ValueError, OSError) as err:
        _fail(err)
    typer.echo("members: " + " ".join(map(str, best)))


@kfold_app.command("assemble")
def assemble_cli(
    members: List[Path] = Arg(..., help="Trained pipelines (e.g. training/kfold/fold*/model/model-best)."),
    output: Path = Opt(..., "--output", "-o", help="Where to save the ensemble pipeline."),
    voting: str = Opt("hard", "--voting", help=VOTING_HELP),
    threshold: float = Opt(0.5, "--threshold", help="Soft voting: accept spans with mean confidence >= this."),
    min_votes: Optional[int] = Opt(None, "--min-votes", help="Hard voting: votes needed (default: strict majority)."),
    weights_from: Optional[str] = Opt(None, "--weights-from", help="Weight members by meta['performance'][KEY], e.g. mentions_f (seed 002: dev F1)."),
) -> None:
    """Save a clinie_ensemble pipeline over trained members.

    The members are copied inside, so the result loads with spacy.load
    anywhere, without the member paths.

    Example: clinie kfold assemble training/kfold/fold*/model/model-best -o training/kfold/ensemble --voting soft
    """
    from ..kfold import assemble_ensemble

    try:
        path = assemble_ensemble(members, output, voting=voting, threshold=threshold, min_votes=min_votes, weights_from=weights_from)
    except (ValueError, OSError) as err:
        _fail(err)
    typer.echo(f"{voting} voting over {len(members)} members -> {path}")
