from pathlib import Path
from typing import Optional

import typer

from ..errors import FormatError
from ._util import Arg, Opt, app

VERIFIER_FACTORY = "clinie_reaction_verifier"


@app.command("tune-verifier")
def tune_verifier_cli(
    model: str = Arg(..., help="Pipeline with a clinie_reaction_verifier after its tagger (a folder or an installed package)."),
    dev_path: Path = Arg(..., help="Held-out gold .spacy file to choose the thresholds on (corpus/dev.spacy). Never the test split.", exists=True, dir_okay=False),
    predictions: Optional[Path] = Opt(None, "--predictions", "-p", help="The pipeline's output BEFORE the verifier on DEV_PATH (.spacy), to skip running it again.", exists=True, dir_okay=False),
    save: Optional[Path] = Opt(None, "--save", "-s", help="Save MODEL here with the chosen thresholds in the verifier's config."),
    output: Optional[Path] = Opt(None, "--output", "-o", help="Write the whole sweep (every threshold pair with P/R/F1) as JSON."),
    top: int = Opt(10, "--top", help="Rows of the sweep to print."),
    batch_size: int = Opt(16, "--batch-size", "-b", help="Docs per batch when running MODEL."),
    gpu_id: int = Opt(-1, "--gpu-id", "-g", help="GPU to run MODEL on; -1 for CPU."),
) -> None:
    """Choose the reaction verifier's thresholds on held-out data.

    Runs MODEL on DEV_PATH up to (not including) the verifier, scores every
    reaction candidate once, and tries every pair of keep_threshold (below
    it, a reaction the tagger predicted is dropped) and add_threshold (from
    it, a dictionary or coordination candidate is added), 0 to 1 in steps of
    0.05. Prints the best pairs by reaction-level F1 and the upstream
    pipeline's own score; --save writes MODEL with the best pair.
    """
    import spacy
    import srsly

    from ..readers import load_docs, unannotated
    from ..scoring import evaluate_docs

    try:
        if gpu_id >= 0:
            spacy.require_gpu(gpu_id)
        nlp = spacy.load(model)
        names = [n for n in nlp.pipe_names if nlp.get_pipe_meta(n).factory == VERIFIER_FACTORY]
        if not names:
            raise ValueError(f"{model} has no enabled {VERIFIER_FACTORY} component")
        verifier = nlp.get_pipe(names[0])
        gold = load_docs(dev_path)
        if predictions is not None:
            pred = load_docs(predictions)
        else:
            from tqdm import tqdm

            upstream = nlp.pipe_names[: nlp.pipe_names.index(names[0])]
            with nlp.select_pipes(enable=upstream):
                pred = list(tqdm(nlp.pipe(unannotated(nlp, gold), batch_size=batch_size), total=len(gold), desc="predicting dev", unit="doc"))
        rows = verifier.sweep(gold, pred)
        reaction = evaluate_docs(gold, pred, levels=("reaction",))["reaction"]
        before = reaction["per_type"].get(verifier.label, reaction["micro"])
    except (FormatError, ValueError, OSError) as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(f"without the verifier: reaction P {before['p']:.4f} R {before['r']:.4f} F1 {before['f']:.4f}")
    for row in rows[:top]:
        typer.echo(f"keep {row['keep_threshold']:.2f} add {row['add_threshold']:.2f}: P {row['p']:.4f} R {row['r']:.4f} F1 {row['f']:.4f}")
    best = rows[0]
    if output is not None:
        srsly.write_json(output, {"before": before, "sweep": rows, "best": best})
    if save is not None:
        from spacy.util import load_config

        nlp.to_disk(save)
        # thresholds are settings: they go into the saved config, which
        # builds the component whenever the pipeline is loaded or sourced
        config = load_config(save / "config.cfg", interpolate=False)
        config["components"][names[0]]["keep_threshold"] = best["keep_threshold"]
        config["components"][names[0]]["add_threshold"] = best["add_threshold"]
        config.to_disk(save / "config.cfg")
        typer.echo(f"pipeline with keep_threshold {best['keep_threshold']} and add_threshold {best['add_threshold']}: {save}")
